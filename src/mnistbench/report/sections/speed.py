"""Speed: the same configuration on a CPU and a GPU, and the speedruns (test set sealed)."""

from __future__ import annotations

from pathlib import Path

from mnistbench.report import columns, uncertainty
from mnistbench.report import figures as figs
from mnistbench.report import format as fmt
from mnistbench.report.collect import (
    FINAL_PROTOCOL,
    ReportData,
    RunGroup,
    group_labels,
    varying_families,
)
from mnistbench.report.document import Column, Paragraph, Section, Table
from mnistbench.statistics import time_to_target_figures, wilson_interval
from mnistbench.store import RunRecord

Pair = tuple[RunGroup, RunGroup]  # (CPU configuration, the same on another device)


def _ratio(pair: Pair) -> str:
    cpu, gpu = (g.stat("time_per_epoch_s") for g in pair)
    if cpu is None or gpu is None or gpu.mean <= 0:
        return "—"
    return f"{cpu.mean / gpu.mean:.1f}×"


def _time_on(group: RunGroup) -> str:
    name = group.first.environment.get("device_name", "?")
    return f"{fmt.seconds_stat(group.stat('time_per_epoch_s'))} ({name})"


SPEEDUP_CAPTION = (
    "The same configuration apart from the device and the precision picked for it (each bar "
    "names both). Each bar also says what its run shared: on a CPU the torch threads and the "
    "lowest share of their time any seed had the cores (well under 100%: other work ran "
    "beside it, so the time is slower than the machine); on a GPU how many pool workers "
    "trained side by side on it (≥N: others may have too). Neither time is the device's alone "
    "where the bar says it shared, so the ratio is this session's, not the hardware's. Linear "
    "axis from zero: bar heights are in proportion to the times; error bars = std over seeds."
)


def _bar_label(group: RunGroup) -> str:
    """'cpu fp32\n1 thr, CPU 41%' / 'cuda bf16\nGPU shared: ≥6 processes'."""
    env = group.first.environment
    where = str(env.get("device", group.device))
    precision = str(group.config.get("precision", "?"))
    return f"{where} {precision}\n{columns.sharing(group).replace('GPU shared: ', 'shared: ')}"


def speedup(data: ReportData, out: Path | None) -> list[Section]:
    if not data.finished:
        return []
    found = Section("speedup", "CPU vs GPU speed-up")
    labels = group_labels(data.groups)
    pairs: list[Pair] = []
    bars: list[tuple[str, list[figs.TimeBar]]] = []
    for family in varying_families(data.groups, ("device", "precision"), label=lambda g: g.device):
        cpu = [g for g in family if g.device == "cpu"]
        others = [g for g in family if g.device != "cpu"]
        if not cpu or not others:
            continue
        pairs += [(cpu[0], gpu) for gpu in others]
        timed = [
            figs.TimeBar(_bar_label(g), t)
            for g in (cpu[0], *others)
            if (t := g.stat("time_per_epoch_s")) is not None
        ]
        if len(timed) > 1:
            bars.append((f"{cpu[0].model} — {cpu[0].dataset}", timed))
    if not pairs:
        devices = sorted({g.device for g in data.groups})
        gpus = [d for d in devices if d != "cpu"]
        found.blocks.append(
            Paragraph(
                "No GPU runs in the store: every finished run used "
                f"{', '.join(devices) or 'no device'}. Run the same configuration with "
                "`--device cuda` (e.g. the cpu-vs-gpu suite) on a machine with a GPU to fill "
                "this section."
                if not gpus
                else f"The store has {', '.join(gpus)} runs, but none has a CPU run of the "
                "same configuration to compare with."
            )
        )
        return [found]
    if out is not None and (figure := figs.speedup(bars, out, SPEEDUP_CAPTION)) is not None:
        found.blocks.append(figure)
    pair_columns: list[Column[Pair]] = [
        Column("Configuration", lambda p: labels[p[0].key]),
        Column("Dataset", lambda p: p[0].dataset),
        Column("CPU time/epoch", lambda p: _time_on(p[0])),
        Column("GPU time/epoch", lambda p: _time_on(p[1])),
        Column("Speed-up", _ratio),
        Column(
            "Precision (CPU / GPU)",
            lambda p: f"{p[0].config.get('precision', '?')} / {p[1].config.get('precision', '?')}",
        ),
        Column(
            f"CPU acc @ best val {uncertainty.CI_HEADER}", lambda p: uncertainty.honest_cell(p[0])
        ),
        Column(
            f"GPU acc @ best val {uncertainty.CI_HEADER}", lambda p: uncertainty.honest_cell(p[1])
        ),
    ]
    found.blocks.append(Table.of(pair_columns, pairs))
    return [found]


def _hits(group: RunGroup) -> list[RunRecord]:
    target = group.first.config.get("target_accuracy")
    return [
        r
        for r in group.runs
        if isinstance(a := r.metrics.get(FINAL_PROTOCOL), (int, float)) and a >= (target or 1.0)
    ]


def _reached(group: RunGroup) -> str:
    """'2/3 (95% CI, Wilson 20.8-93.9%)': the success rate with its interval."""
    hits, n = len(_hits(group)), len(group.runs)
    low, high = wilson_interval(hits, n)
    return f"{hits}/{n} (95% CI, Wilson {100 * low:.1f}–{100 * high:.1f}%)"


def _time_to_target(group: RunGroup) -> str:
    """Mean, median and IQR of the training time of the seeds that reached the target."""
    times = [t for r in _hits(group) if isinstance(t := r.metrics.get("total_train_time_s"), float)]
    figures = time_to_target_figures(times)
    if figures["time_to_target_median_s"] is None:
        return "—"
    q1, q3 = figures["time_to_target_iqr_s"]  # type: ignore[misc]
    return (
        f"mean {fmt.seconds(figures['time_to_target_mean_s'])}, "  # type: ignore[arg-type]
        f"median {fmt.seconds(figures['time_to_target_median_s'])}, "  # type: ignore[arg-type]
        f"IQR {fmt.seconds(q1)}–{fmt.seconds(q3)}"
    )


def _target(group: RunGroup) -> str:
    target = group.first.config.get("target_accuracy")
    return f"≥ {fmt.percent(target)}" if isinstance(target, (int, float)) else "—"


SPEEDRUN_COLUMNS: list[Column[RunGroup]] = [
    *columns.pick("model", "dataset"),
    Column("Device", lambda g: str(g.first.environment.get("device_name", g.device))),
    *columns.pick("params", "seeds"),
    Column(
        f"Final test acc {uncertainty.CI_HEADER}",
        lambda g: uncertainty.accuracy_cell(g, FINAL_PROTOCOL),
    ),
    Column("Target", _target),
    Column("Seeds ≥ target (success rate)", _reached),
    Column("Time-to-target (seeds ≥ target)", _time_to_target),
    Column("Training time", lambda g: fmt.seconds_stat(g.stat("total_train_time_s"))),
    Column("Compile warm-up", lambda g: fmt.seconds_stat(g.stat("compile_time_s"))),
]


def speedruns(data: ReportData, out: Path | None) -> list[Section]:
    """Runs whose test set stayed sealed until one final score (`mnistbench speedrun`)."""
    sealed = {r.run_id for r in data.finished if r.metrics.get("test_protocol") == "final_only"}
    groups = [g for g in data.groups if any(r.run_id in sealed for r in g.runs)]
    if not groups:
        return []
    return [
        Section(
            "speedruns",
            "Speedruns (test set sealed until the final score)",
            [
                Paragraph(
                    "Each seed is scored once on the test set, after its last epoch; nothing "
                    "was chosen on test (docs/speedrun.md). 'Seeds ≥ target' counts seeds whose "
                    "final test accuracy reached the run's target; training time is the sum of "
                    "the epochs' training time, without data loading, evaluation or compile "
                    "warm-up."
                ),
                Table.of(SPEEDRUN_COLUMNS, groups),
            ],
        )
    ]
