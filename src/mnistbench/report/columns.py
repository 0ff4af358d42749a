"""Named table columns over a configuration (its seeds pooled): every table and view picks from
these by name, so a figure is computed and worded the same wherever it appears.

A single run is a configuration of one seed (`RunGroup(key, [run])`), so per-run tables use the
same columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mnistbench.report import cards, energy, uncertainty
from mnistbench.report import format as fmt
from mnistbench.report.collect import (
    FINAL_PROTOCOL,
    HONEST_PROTOCOL,
    PUBLISHED_PROTOCOL,
    RunGroup,
)
from mnistbench.report.compare import (
    accuracy_text,
    protocol_metric,
    published_text,
    settings_vs_recipe,
)
from mnistbench.report.document import Column
from mnistbench.report.format import Stat


def listing(values: Sequence[Any]) -> str:
    """Per-seed values in seed order: '20, 20, 20'."""
    return ", ".join("—" if v is None else str(v) for v in values) or "—"


def max_over_epochs(group: RunGroup) -> str:
    """The published protocol's figure; runs that saw the test set only once have none."""
    if all(r.metrics.get("test_protocol") == "final_only" for r in group.runs):
        return "n/a (test set used once)"
    return uncertainty.accuracy_cell(group, PUBLISHED_PROTOCOL)


def device(group: RunGroup) -> str:
    env = group.first.environment
    return f"{env.get('device', group.device)}: {env.get('device_name', '?')}"


def _threads(group: RunGroup) -> str:
    threads = sorted({str(r.environment.get("torch_threads", "?")) for r in group.runs})
    return "/".join(threads)


# A CPU time is this machine's speed only when its training loops had their threads nearly to
# themselves; below this share (or with no share recorded) the time says how busy the machine
# was as much as how fast the model is.
CPU_SHARE_TRUSTED = 0.9
NOT_MACHINE_SPEED = "not this machine's speed"


def _cpu_share(group: RunGroup) -> str:
    """The lowest share of its threads' time any run of the group had the CPU while training,
    saying plainly when the time is not the machine's speed: a share under CPU_SHARE_TRUSTED
    (other work took the cores) or none recorded (runs made before the share was measured,
    which results/README.md lists as contended)."""
    shares = [r.metrics.get("train_cpu_share") for r in group.runs]
    if any(not isinstance(share, (int, float)) for share in shares):
        return f"CPU share not recorded: {NOT_MACHINE_SPEED}"
    low = min(shares)
    if low < CPU_SHARE_TRUSTED:
        return f"CPU {low:.0%}: contended, {NOT_MACHINE_SPEED}"
    return f"CPU {low:.0%}"


def _gpu_sharing(group: RunGroup) -> str:
    """'GPU shared: ≥6 processes' where pool workers trained side by side on one GPU (each
    records how many workers its pool put there; other processes on it are not known, hence
    '≥'), else plain 'GPU' (no claim either way)."""
    shared = [r.environment.get("gpu_shared_by_workers") or 1 for r in group.runs]
    return f"GPU shared: ≥{max(shared)} processes" if max(shared) > 1 else "GPU"


def time_with_threads(group: RunGroup) -> str:
    """'41.40 s (1 thr, CPU 98%)': a CPU time means little without the threads it ran on and
    whether it had them to itself; a GPU time, without whether other runs shared the GPU."""
    time = fmt.seconds_stat(group.stat("time_per_epoch_s"))
    return time if time == "—" else f"{time} ({sharing(group)})"


def sharing(group: RunGroup) -> str:
    """What a time shared: '1 thr, CPU 98%' on a CPU, 'GPU shared: ≥6 processes' on a GPU."""
    if group.first.environment.get("device", "cpu") != "cpu":
        return _gpu_sharing(group)
    return f"{_threads(group)} thr, {_cpu_share(group)}"


def published_figure(group: RunGroup) -> dict[str, Any] | None:
    return None if group.comparison.figure is None else dict(group.comparison.figure)


def published_params(figure: dict[str, Any] | None) -> str:
    """The parameter count the study prints; where it prints none ("N/A") and ours is a count
    of its spec (params_source "spec count"), says so instead of passing it off as published."""
    if not figure or figure.get("params") is None:
        return "—"
    source = figure.get("params_source", "study")
    count = fmt.count(figure.get("params"))
    return count if source == "study" else f"N/A in the study ({source}: {count})"


def published_accuracy(group: RunGroup) -> float | None:
    figure = group.comparison.figure
    return None if figure is None else figure.get("test_accuracy")


def group_protocol(group: RunGroup) -> tuple[str | None, str]:
    """(metric, name) of the protocol the study used for its published figure, as this
    group's runs can give it (None: no published figure)."""
    figure = group.comparison.figure
    if figure is None:
        return None, ""
    metric, name = protocol_metric(figure, group.card)
    if metric == PUBLISHED_PROTOCOL and max_over_epochs(group).startswith("n/a"):
        metric, name = FINAL_PROTOCOL, "final (test set used once)"
    return metric, name


def protocol_stat(group: RunGroup) -> tuple[Stat | None, str]:
    """Our figure under the protocol the study used for its published one, and its name."""
    metric, name = group_protocol(group)
    return (None, "") if metric is None else (group.stat(metric), name)


def met(group: RunGroup) -> str:
    """The one verdict rule (mnistbench.statistics) on the study's published accuracy, under
    the study's own protocol."""
    comparison = group.comparison
    if not comparison.comparable:
        return comparison.not_comparable()
    figure = published_figure(group)
    metric, protocol = group_protocol(group)
    if figure is None or figure.get("test_accuracy") is None or group.stat(metric or "") is None:
        return "—"
    needed = uncertainty.SEEDS_NEEDED.get(str(figure.get("study")), 3)
    verdict = uncertainty.published_verdict(group, metric, figure, needed)
    return f"{verdict.text} [{protocol}]"


def honest_gap(group: RunGroup) -> str:
    published, honest = published_accuracy(group), group.stat(HONEST_PROTOCOL)
    if published is None or honest is None:
        return "—"
    return f"{100 * (honest.mean - published):+.2f} pt"


def published_time(group: RunGroup) -> str:
    figure = group.comparison.figure
    if figure is None or figure.get("time_per_epoch_s") is None:
        return "—"
    where = figure.get("time_device") or ""
    text = f"{figure['time_per_epoch_s']:g} s {where}".rstrip()
    if figure.get("time_includes_eval"):
        # Study A's README calls its times the average training time per epoch; its scripts
        # time training and the per-epoch test pass in one timer. Both are said.
        text += " (README: training; its scripts' timer: training + test pass)"
    return text


def study(group: RunGroup) -> str:
    """The study of the figure the row is set against, else every study the card names."""
    figure = group.comparison.figure
    ids = [str(figure["study"])] if figure else sorted(group.card.get("studies") or {})
    return ", ".join(cards.study_link(group.card, i, i) for i in ids) or "—"


def _epochs(group: RunGroup) -> str:
    return listing(group.values("epochs_completed"))


def _int_stat(group: RunGroup, metric: str) -> str:
    stat = group.stat(metric)
    return fmt.count(None if stat is None else round(stat.mean))


COLUMNS: dict[str, Column[RunGroup]] = {
    "model": Column("Model", lambda g: g.model),
    "architecture": Column("Architecture", lambda g: cards.architecture(g.card)),
    "family": Column("Family", lambda g: cards.family(g.card)),
    "study": Column("Study", study),
    "dataset": Column("Dataset", lambda g: g.dataset),
    "settings": Column("Settings (vs recipe)", lambda g: settings_vs_recipe(g.config, g.card)),
    "device": Column("Device", device),
    "seeds": Column("Seeds", lambda g: str(len(g.runs))),
    "seed_list": Column("Seeds", lambda g: listing(g.seeds)),
    "seed": Column("Seed", lambda g: listing(g.seeds)),
    "epochs": Column("Epochs run", _epochs),
    "acc_final": Column(
        f"Test acc (final) {uncertainty.CI_HEADER}",
        lambda g: uncertainty.accuracy_cell(g, FINAL_PROTOCOL),
    ),
    "acc_best_val": Column(
        f"Test acc @ best val (honest) {uncertainty.CI_HEADER}",
        lambda g: uncertainty.accuracy_cell(g, HONEST_PROTOCOL),
    ),
    "acc_max": Column(f"Best test acc (max over epochs) {uncertainty.CI_HEADER}", max_over_epochs),
    "best_val_epoch": Column("Best val epoch", lambda g: listing(g.values("best_val_epoch"))),
    "best_test_epoch": Column("Best test epoch", lambda g: listing(g.values("best_test_epoch"))),
    "epochs_to_target": Column(
        "First epoch ≥ target (test)", lambda g: listing(g.values("epochs_to_target_test"))
    ),
    "published": Column(
        "Published (same dataset, closest setting)", lambda g: published_text(g.comparison, g.card)
    ),
    "published_acc": Column(
        "Published acc",
        lambda g: accuracy_text(published_figure(g) or {}) if g.comparison.figure else "—",
    ),
    "met": Column("Verdict vs published (one-run 95% PI; [study's protocol])", met),
    "honest_gap": Column("Honest − published", honest_gap),
    "params": Column("Params", lambda g: _int_stat(g, "params")),
    "params_published": Column(
        "Params (published)", lambda g: published_params(published_figure(g))
    ),
    "flops": Column("FLOPs/sample", lambda g: fmt.si(_mean(g.stat("flops_per_sample")))),
    # Every view shows a time with what it ran on and whether it had the machine to itself:
    # a bare '51.81 s' beside a study's '21 s cuda' reads as this CPU's speed when it is not.
    "time_epoch": Column("Time/epoch (train, threads, CPU share)", time_with_threads),
    "time_epoch_threads": Column("Time/epoch (train, threads, CPU share)", time_with_threads),
    "time_published": Column("Time/epoch published", published_time),
    "eval_time": Column("Eval time", lambda g: fmt.seconds_stat(g.stat("total_eval_time_s"))),
    "wall": Column("Wall", lambda g: fmt.seconds_stat(g.stat("wall_time_s"))),
    "energy": Column(f"Energy ({energy.UNIT})", lambda g: energy.cell(g.runs)),
    "status": Column("Status", lambda g: listing([r.status for r in g.runs])),
}


def _mean(stat: Stat | None) -> float | None:
    return None if stat is None else stat.mean


def pick(*names: str) -> list[Column[RunGroup]]:
    """The named columns, in that order (a KeyError names a column that does not exist)."""
    return [COLUMNS[name] for name in names]
