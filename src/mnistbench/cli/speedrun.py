"""`mnistbench speedrun`: speed and parameter-efficiency records (experiments/speedrun.py),
and how they are shown: the summary lines and the records table."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mnistbench.cli.common import (
    add_io_options,
    open_store,
    session_of,
    start_training,
    whole_number,
)
from mnistbench.config import DEVICE_CHOICES, parse_model_option

if TYPE_CHECKING:
    from mnistbench.config import RunConfig
    from mnistbench.experiments.speedrun import SpeedrunResult

DESCRIPTION = (
    "Train the project's fastest recipe for a target accuracy (--track time) or its best model "
    "under a parameter budget (--track params), for N seeds. The test set is sealed until each "
    "seed's one final score; every seed is a stored run and every seed counts (one that fails "
    "or diverges is a miss at 0%). Prints training time (mean ± std), the accuracy "
    "distribution, seeds reaching the target, and the one-time costs (data load, compile "
    "warm-up) apart. Rules: docs/speedrun.md."
)
RECORD_COLUMNS = (
    "Track", "Dataset", "Target", "Model", "Params", "Seeds", "Test acc (mean ± std)",
    "Min / max", "Seeds ≥ target (success, 95% CI Wilson; time-to-target mean, median, IQR)",
    "Train time (mean ± std)", "Compile warm-up", "Met",
)  # fmt: skip


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser(
        "speedrun",
        help="speed and parameter-efficiency records (time-to-accuracy, <= N params)",
        description=DESCRIPTION,
    )
    p.add_argument("--dataset", default="mnist", help="mnist or fashion-mnist (default mnist)")
    p.add_argument("--track", default="time", choices=("time", "params"))
    p.add_argument(
        "--target", type=float, help="accuracy fraction (default 0.99 time, 0.994 params)"
    )
    p.add_argument("--seeds", type=whole_number, default=5, help="default 5")
    p.add_argument(
        "--budget-params",
        type=whole_number,
        help="params track budget: every parameter and persistent buffer counts (default 5000)",
    )
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    p.add_argument("--model", help="explore: another model than the recipe's (name or spec)")
    p.add_argument("--recipe-of", help="explore: the registered model whose recipe --model uses")
    p.add_argument(
        "--set",
        dest="settings",
        action="append",
        metavar="FIELD=VALUE",
        type=parse_model_option,
        help="explore: override a run setting of the recipe (e.g. epochs=3), repeatable",
    )
    p.add_argument("--compile", action="store_true", help="torch.compile (warm-up timed apart)")
    p.add_argument("--json", help="also write the figures (every seed) to this JSON file")
    add_io_options(p)
    p.set_defaults(handler=cmd_speedrun)


def cmd_speedrun(args: argparse.Namespace) -> int:
    start_training()
    from mnistbench.engine import resolve_device
    from mnistbench.errors import MnistbenchError
    from mnistbench.experiments.speedrun import plan_speedrun, run_speedrun

    settings = dict(args.settings or [])
    if args.compile:
        settings["compile"] = True
    plan = plan_speedrun(
        track=args.track, dataset=args.dataset, target=args.target, seeds=args.seeds,
        device=resolve_device(args.device), budget=args.budget_params, model=args.model,
        settings=settings, recipe_of=args.recipe_of,
    )  # fmt: skip
    with open_store(args.store) as store:
        result = run_speedrun(plan, store, session_of(args))
    print("\n".join(summary_lines(result)))
    print()
    print(records_table([result]))
    if args.json:
        figures = {**result.to_dict(), "settings": settings_text(result.config),
                   "table_row": records_row(result)}  # fmt: skip
        try:
            Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
        except OSError as error:
            raise MnistbenchError(
                f"Cannot write --json {args.json}: {error.strerror or error}. The runs are in "
                "the store; pass --json a file path you can write to."
            ) from None
    return 0 if not result.misses() else 1


def settings_text(config: RunConfig) -> str:
    """The settings that shape a speedrun, in one line."""
    sgd_nesterov = " nesterov" if config.nesterov and config.optimizer == "sgd" else ""
    parts = [
        f"epochs={config.epochs}", f"batch={config.batch_size}",
        f"{config.optimizer}{sgd_nesterov} lr={config.lr:g}", f"sched={config.scheduler}",
        f"ls={config.label_smoothing:g}", f"aug={config.augment}", f"prec={config.precision}",
        f"val={config.val_size}",
    ]  # fmt: skip
    return ", ".join([*parts, "compile"] if config.compile else parts)


def _stats(values: Sequence[float]):
    from mnistbench.report.collect import Stat

    return Stat.of(values)


def summary_lines(result: SpeedrunResult) -> list[str]:
    from mnistbench.report import format as fmt

    acc, times = result.accuracies(), result.train_times()
    compile_s = [s.compile_time_s for s in result.seeds if s.compile_time_s is not None]
    prepare_s = [s.data_prepare_s for s in result.seeds if s.data_prepare_s is not None]
    n = len(result.seeds)
    lines = [
        f"speedrun {result.track} track: {result.model} on {result.dataset}, "
        f"target {fmt.percent(result.target)}, {n} seed(s)"
        + (f", budget {result.budget:,} params" if result.budget is not None else ""),
        f"  machine {result.machine}",
        f"  params {result.params:,} (every parameter and buffer)   "
        f"settings {settings_text(result.config)}",
        f"  recipe chosen on: {result.chosen_on}",
    ]
    for s in result.seeds:
        line = f"  seed {s.seed}: run {s.run_id} {s.status}, test {fmt.percent(s.test_accuracy)}"
        line += f", train {fmt.seconds(s.train_time_s)} over {s.epochs} epoch(s)"
        line += f", compile {fmt.seconds(s.compile_time_s)}" if s.compile_time_s else ""
        line += f" — a miss, counted as 0%: {s.error or s.status}" if s.status != "finished" else ""
        lines.append(line)
    met = result.target_met
    lines += [
        f"  test accuracy {fmt.percent_stat(_stats(acc))} over all {n} seeds, misses at 0% "
        f"(min {fmt.percent(min(acc))}, max {fmt.percent(max(acc))}); "
        f"{result.reached}/{n} seeds >= {fmt.percent(result.target)}",
        f"  training time {fmt.seconds_stat(_stats(times))} per finished seed"
        f" (time-to-target: final test accuracy >= target in {result.reached} seed(s))",
        "  " + success_text(result),
        f"  one-time costs: dataset load {fmt.seconds(result.dataset_load_s)}, "
        f"device prep {fmt.seconds_stat(_stats(prepare_s))} per seed"
        + (f", compile warm-up {fmt.seconds_stat(_stats(compile_s))}" if compile_s else "")
        + ("" if compile_s else ", no compile"),
        f"  target {'MET' if met else 'NOT met'}: mean test accuracy over every seed "
        f"{'>=' if met else '<'} {fmt.percent(result.target)}",
    ]
    return lines


def success_text(result: SpeedrunResult) -> str:
    """'success 3/3 = 100% (95% CI, Wilson 43.9-100%); time-to-target mean 9.8 s, median 9.7 s,
    IQR 9.6-9.9 s (3 seeds)'."""
    from mnistbench.report import format as fmt
    from mnistbench.statistics import time_to_target_figures

    n = len(result.seeds)
    ci = result.success_ci95()
    text = f"success {result.reached}/{n} = {result.success_rate:.0%}"
    if ci is not None:
        text += f" (95% CI, Wilson {100 * ci[0]:.1f}–{100 * ci[1]:.1f}%)"
    figures = time_to_target_figures(result.times_to_target())
    if figures["time_to_target_median_s"] is None:
        return text + "; no seed reached the target"
    q1, q3 = figures["time_to_target_iqr_s"]  # type: ignore[misc]
    return (
        f"{text}; time-to-target mean {fmt.seconds(figures['time_to_target_mean_s'])}, "  # type: ignore[arg-type]
        f"median {fmt.seconds(figures['time_to_target_median_s'])}, "  # type: ignore[arg-type]
        f"IQR {fmt.seconds(q1)}–{fmt.seconds(q3)} ({figures['time_to_target_seeds']} seeds)"
    )


def records_row(result: SpeedrunResult) -> list[str]:
    from mnistbench.report import format as fmt

    acc = result.accuracies()
    compile_s = [s.compile_time_s for s in result.seeds if s.compile_time_s is not None]
    return [
        result.track + (f" (≤ {result.budget:,} params)" if result.budget is not None else ""),
        result.dataset,
        f"≥ {fmt.percent(result.target)}",
        result.model,
        f"{result.params:,}",
        str(len(result.seeds)),
        fmt.percent_stat(_stats(acc)),
        f"{fmt.percent(min(acc))} / {fmt.percent(max(acc))}",
        success_text(result).removeprefix("success "),
        fmt.seconds_stat(_stats(result.train_times())),
        fmt.seconds_stat(_stats(compile_s)) if compile_s else "none",
        "yes" if result.target_met else "no",
    ]


def records_table(results: Sequence[SpeedrunResult]) -> str:
    """Markdown table of several speedruns; refuses figures from different machines."""
    from mnistbench.experiments.speedrun import same_machine
    from mnistbench.report import markdown_table

    same_machine([r.machine for r in results])
    return markdown_table(RECORD_COLUMNS, [records_row(r) for r in results])
