"""`mnistbench run`: one model, trained, measured, recorded and summarised; a plan of one
trial through the same pipeline as suites and sweeps (experiments/batch.py)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
from typing import TYPE_CHECKING

from mnistbench.cli.common import (
    add_executor_options,
    add_io_options,
    add_run_settings,
    eprint,
    executor_of,
    open_store,
    run_overrides,
    session_of,
    start_training,
)
from mnistbench.config import RunConfig, check_overrides

if TYPE_CHECKING:
    from mnistbench.experiments.plan import TrialResult
    from mnistbench.store import RunRecord, Store

DESCRIPTION = (
    "Train MODEL with its study's recipe (override any part), evaluate it on validation and "
    "test every epoch, record everything in the store and print a summary, with one line per "
    "epoch while it trains. A config that already finished is not trained again unless "
    "--force; the summary then says which machine measured it."
)


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser(
        "run", help="train, evaluate and record one model", description=DESCRIPTION
    )
    p.add_argument("model", help=RunConfig.__dataclass_fields__["model"].metadata["help"])
    add_run_settings(p, dataset_default="mnist")
    p.add_argument("--json", action="store_true", help="print the run record as JSON")
    add_executor_options(p)
    add_io_options(
        p, dry_run_help="two training steps on a tiny subset, one evaluation, nothing recorded"
    )
    p.set_defaults(handler=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    overrides = check_overrides(run_overrides(args))  # a bad value fails before torch loads
    start_training()
    from mnistbench.engine import resolve_device
    from mnistbench.experiments.batch import run_trials
    from mnistbench.experiments.configure import make_config
    from mnistbench.experiments.plan import Trial

    config = make_config(args.model, device=resolve_device(args.device), **overrides)
    executor = executor_of(args)
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(executor.close)
        store = None if args.dry_run else cleanup.enter_context(open_store(args.store))
        summary = run_trials(
            [Trial(config)],
            store,
            session_of(args),
            executor=executor,
            force=args.force,
            dry_run=args.dry_run,
        )
        (result,) = summary.results
        if result.state == "skipped" and store is not None:
            result = _retarget(store, result, config.target_accuracy)
    status = result.record.status if result.record else result.state
    if args.dry_run:
        print(f"dry run of {config.model} on {config.dataset}: {status}; nothing recorded")
        return 0 if status == "finished" else 1
    if args.json:
        # the store already turned NaN/inf into null, so strict JSON cannot fail here
        print(json.dumps(run_json(result), allow_nan=False))
    else:
        print("\n".join(summary_lines(result)))
    if status not in ("finished", "diverged") and result.error:
        eprint(f"mnistbench: the run {status}: {result.error}")
    return 0 if status in ("finished", "diverged") else 1


def _retarget(store: Store, result: TrialResult, target: float) -> TrialResult:
    """A reused run's target figures for this --target: an analysis setting, so they are
    recomputed from the stored epochs instead of training again."""
    from mnistbench.engine import EpochRecord, summarize_epochs

    record = result.record
    assert record is not None
    if record.metrics.get("target_accuracy") in (None, target):
        return result
    names = [f.name for f in dataclasses.fields(EpochRecord)]
    epochs = []
    for stored in store.epochs(record.run_id):
        values = {name: stored.get(name) for name in names}
        values["train_time_s"] = values["train_time_s"] or 0.0  # type: ignore[assignment]
        values["eval_time_s"] = values["eval_time_s"] or 0.0  # type: ignore[assignment]
        epochs.append(EpochRecord(**values))  # type: ignore[arg-type]
    keys = ("target_accuracy", "epochs_to_target", "seconds_to_target", "epochs_to_target_test",
            "seconds_to_target_test")  # fmt: skip
    figures = summarize_epochs(epochs, target)
    metrics = {**record.metrics, **{key: figures.get(key) for key in keys}}
    return dataclasses.replace(result, record=dataclasses.replace(record, metrics=metrics))


def run_json(result: TrialResult) -> dict[str, object]:
    assert result.record is not None
    payload = result.record.to_dict()
    payload["epochs"] = result.record.config.get("epochs")
    payload["reused"] = result.state == "skipped"
    payload["measured_on"] = result.measured_on
    return payload


def _scale_lines(record: RunRecord) -> list[str]:
    """What makes this run smaller or larger than its recipe, and what --subset trims."""
    from mnistbench.errors import MnistbenchError
    from mnistbench.experiments.configure import scale_changes
    from mnistbench.report.compare import compare

    lines = []
    subset = record.config.get("subset")
    if subset is not None:
        lines.append(
            f"  --subset {subset:,}: trained on the first {subset:,} training images and scored "
            f"on at most the first {subset:,} test images, not the whole test set "
            f"(validation: {record.config.get('val_size', 0):,} images)"
        )
    try:
        changes = scale_changes(RunConfig.from_dict(record.config))
    except (MnistbenchError, TypeError):  # a model or setting this version no longer knows
        return lines
    if changes:
        text = ", ".join(
            f"{k} {v} (recipe {'none' if r is None else r})" for k, (r, v) in changes.items()
        )
        # the report's rule, so the summary and the tables never disagree: a run that trains on
        # less than its study (fewer epochs, a subset, more held out) is not set against it
        shortfall = compare(record.config, record.model_card or {}).shortfall
        verdict = (
            "not comparable to published figures"
            if shortfall
            else ("no smaller than the study's, so reports set it against the published figure")
        )
        lines.append(f"  not the recipe's scale: {text}; {verdict}")
    return lines


def _ci_text(metrics: dict) -> str:
    """' [95% CI, Wilson 97.29-97.89% of 10,000 images]' for a run that stored its interval."""
    ci, n = metrics.get("test_accuracy_ci95"), metrics.get("n_test")
    if not (isinstance(ci, list) and len(ci) == 2 and isinstance(n, int)):
        return ""
    return f" [95% CI, Wilson {100 * ci[0]:.2f}–{100 * ci[1]:.2f}% of {n:,} images]"


def _energy_text(record: RunRecord) -> str:
    """Energy in Wh, saying whether a power counter measured it or CodeCarbon estimated it (a
    TDP model, energy = power x time, where no counter exists): the report's own reading of
    the run (report.energy), so the summary and the tables never disagree."""
    from mnistbench.report import energy
    from mnistbench.report import format as fmt

    if not energy.has_energy(record):
        return "not measured"
    kind = "measured" if energy.is_measured(record) else "estimated"
    value = fmt.number_stat(energy.energy_wh([record]))
    return f"{value} {energy.UNIT} ({kind}: {record.metrics.get('energy_method', '?')})"


def _flop_rate_text(metrics: dict) -> str:
    """The training FLOP rate (an estimate: 3 x forward FLOPs) and its fraction of the peak."""
    from mnistbench.report import format as fmt

    rate = metrics.get("train_flops_per_s")
    if rate is None:
        return "FLOP rate unknown"
    fraction = metrics.get("fraction_of_peak")
    against = (
        f"{fmt.percent(fraction, 1)} of this machine's peak"
        if fraction is not None
        else metrics.get("fraction_of_peak_note") or "peak unknown"
    )
    return f"{fmt.si(rate, 'FLOP/s')} (estimate, 3 x forward), {against}"


def summary_lines(result: TrialResult) -> list[str]:
    """The run's figures in a few lines; a reused run says when and where it was measured."""
    from mnistbench.report import format as fmt

    record = result.record
    assert record is not None
    m = record.metrics
    header = f"run {record.run_id}: {record.model} on {record.dataset}, {record.status}"
    if result.state == "skipped":
        header += (
            f" (already in the store, measured {record.started_at}; nothing trained; "
            "--force trains it again)"
        )
    elsewhere = ""
    if result.measured_on:
        elsewhere = f"   [measured on {result.measured_on}, not this one; --force measures here]"
    lines = [
        header,
        f"  config {record.config_hash}  device {record.environment.get('device_name', '?')}"
        f"  epochs {m.get('epochs_completed', '?')}/{record.config.get('epochs')}",
        f"  test accuracy {fmt.percent(m.get('test_accuracy'))}{_ci_text(m)}"
        f"   best val {fmt.percent(m.get('best_val_accuracy'))}"
        f" at epoch {m.get('best_val_epoch', '—')}"
        f"   test @ best val {fmt.percent(m.get('test_accuracy_at_best_val'))}",
        f"  params {fmt.count(m.get('params'))}   FLOPs/sample {fmt.si(m.get('flops_per_sample'))}"
        f"   size {fmt.si(m.get('model_size_bytes'), 'B')}",
        f"  time/epoch {fmt.seconds(m.get('time_per_epoch_s'))} (training only, median)"
        f"   wall {fmt.seconds(m.get('wall_time_s'))}"
        f"   {fmt.si(m.get('train_images_per_s'))} images/s" + elsewhere,
        f"  latency batch 1 {fmt.number(m.get('latency_batch1_ms'))} ms, batch 1000 "
        f"{fmt.number(m.get('latency_batch1000_ms'))} ms   peak memory "
        f"{fmt.number(m.get('peak_memory_mb'), 4)} MB ({m.get('peak_memory_kind', '?')})"
        + elsewhere,
        f"  energy {_energy_text(record)}" + elsewhere,
        f"  training {_flop_rate_text(m)}" + elsewhere,
    ]
    if m.get("epochs_to_target") is not None:
        lines.append(
            f"  reached {fmt.percent(m.get('target_accuracy'), 1)} validation accuracy in "
            f"{m['epochs_to_target']} epoch(s), "
            f"{fmt.seconds(m.get('seconds_to_target'))} of training" + elsewhere
        )
    lines += _scale_lines(record)
    if record.error:
        lines.append(f"  note: {record.error}")
    return lines
