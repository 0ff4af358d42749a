"""A whole suite at its recipes, measured: how long each trial took and what it reached.

Finished runs of the suite's exact configurations in other benchmark stores can be copied in
first (`--reuse`); the suite then skips them, as it skips any finished configuration, and the
table says which trials were run by this command and which were reused. The suite's measured
duration is the sum of its trials' wall times (each from start to the run's record, data
loading, evaluation and measurements included), so it also holds for a suite finished over
several resumed invocations.

    python benchmarks/suite_full.py architecture-showdown \
        --store benchmarks/results/architecture_showdown.sqlite \
        --reuse benchmarks/results/snn_dbn.sqlite --reuse benchmarks/results/pretrain_probe.sqlite
    python benchmarks/suite_full.py architecture-showdown --report-only --log suite.log \
        --store benchmarks/results/architecture_showdown.sqlite --reuse ...  # the same --reuse
"""

from __future__ import annotations

import argparse
import datetime
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

from mnistbench.engine.measure import cpu_description
from mnistbench.experiments.suites import get_suite, plan_suite
from mnistbench.models import get_model_info
from mnistbench.report import format as fmt
from mnistbench.report import markdown_table
from mnistbench.store import RunRecord, Store
from mnistbench.studies import recipe_figure


def reuse_runs(store: Store, sources: list[Path], wanted: set[str]) -> dict[str, str]:
    """Copy the finished runs of the wanted configurations from each source store; returns
    {config hash: source name} for every run copied now or on an earlier call."""
    reused: dict[str, str] = {}
    for source in sources:
        with Store(source) as other:
            for run in other.list_runs():
                if run.config_hash in wanted and run.status == "finished":
                    store.import_run(run, other.epochs(run.run_id), other.artefacts(run.run_id))
                    reused[run.config_hash] = source.name
    return reused


def trial_wall_s(run: RunRecord) -> float | None:
    """Seconds from the run's start to its record: everything the trial cost."""
    if run.finished_at is None:
        return None
    started = datetime.datetime.fromisoformat(run.started_at)
    return (datetime.datetime.fromisoformat(run.finished_at) - started).total_seconds()


def trial_row(run: RunRecord, source: str) -> list[str]:
    metrics, published = (
        run.metrics,
        recipe_figure(run.model, get_model_info(run.model).recipe.defaults),
    )
    reached = published is not None and (metrics.get("test_accuracy") or 0) >= (
        published.test_accuracy or 1
    )
    return [
        run.model,
        run.status,
        str(metrics.get("epochs_completed", "—")),
        fmt.percent(metrics.get("test_accuracy")),
        fmt.percent(metrics.get("test_accuracy_at_best_val")),
        fmt.percent(metrics.get("best_test_accuracy")),
        fmt.percent(published.test_accuracy) if published else "—",
        "yes" if reached else "no",
        fmt.seconds(metrics.get("time_per_epoch_s")),
        fmt.seconds(trial_wall_s(run)),
        source,
    ]


def clean_output(text: str) -> str:
    """The command's lines without tqdm's redrawn progress bars (kept in a log that is no TTY)."""
    kept = []
    for line in text.splitlines():
        kept += [part.rstrip() for part in line.split("\r") if part.strip() and "%|" not in part]
    return "\n".join(kept)


def logged_wall_s(text: str) -> float | None:
    """The wall time `/usr/bin/time -v` wrote into a log ("h:mm:ss" or "m:ss.ss"), if any."""
    match = re.search(r"Elapsed \(wall clock\) time.*: ([\d:.]+)", text)
    if match is None:
        return None
    seconds = 0.0
    for part in match.group(1).split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite")
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--reuse", type=Path, action="append", default=[], metavar="STORE")
    parser.add_argument("--out", type=Path, help="default benchmarks/results/<suite>.md")
    parser.add_argument("--report-only", action="store_true", help="no training: table only")
    parser.add_argument("--log", type=Path, help="the suite command's saved output to include")
    args = parser.parse_args()
    out = args.out or Path("benchmarks/results") / f"{args.suite.replace('-', '_')}.md"

    suite = get_suite(args.suite)
    plan = plan_suite(suite, device="cpu")
    wanted = {trial.config_hash for trial in plan.trials}
    command = ["mnistbench", "suite", args.suite, "--store", str(args.store)]
    with Store(args.store) as store:
        reused = reuse_runs(store, args.reuse, wanted)
    output = clean_output(args.log.read_text()) if args.log else ""
    command_wall_s = logged_wall_s(output)
    if not args.report_only:
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "mnistbench", *command[1:]],
            capture_output=True,
            text=True,
            check=False,
        )
        command_wall_s = time.perf_counter() - started
        output = clean_output(result.stdout + result.stderr)
        print(output)

    with Store(args.store) as store:
        runs = {run.config_hash: run for run in store.list_runs() if run.config_hash in wanted}
    rows, total_s, missing = [], 0.0, []
    for trial in plan.trials:
        run = runs.get(trial.config_hash)
        if run is None or run.status != "finished":
            missing.append(trial.config.model)
            continue
        rows.append(
            trial_row(
                run,
                f"reused ({reused[run.config_hash]})"
                if run.config_hash in reused
                else "this suite command",
            )
        )
        total_s += trial_wall_s(run) or 0.0

    header = (
        "Model", "Status", "Epochs (all stages)", "Test acc (final)", "Test acc @ best val",
        "Max test acc", "Published", "Final ≥ published", "Time/epoch", "Trial wall", "Run by",
    )  # fmt: skip
    lines = [
        f"# `mnistbench suite {args.suite}` at its recipes: measured",
        "",
        f"Written {datetime.date.today().isoformat()} on {cpu_description()}, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}, Python "
        f"{platform.python_version()}. Suite {suite.name} v{suite.version}: "
        f"{len(plan.trials)} trials, one seed, full data (55,000 training images, 5,000 for "
        "validation, the 10,000 test images), each model's recipe epochs.",
        "",
        "```",
        " ".join(command),
        "```",
        "",
        f"**Measured duration of the full suite: {total_s / 60:.0f} min ({total_s / 3600:.2f} h)**"
        f", the sum of the wall times of its {len(rows)} finished trials"
        + (f"; not finished yet: {', '.join(missing)}" if missing else "")
        + ". A trial's wall time runs from its start to its record (data loading, evaluation, "
        "FLOP counting, latency and energy measurements included). Reused trials were run "
        "earlier with the identical configuration (same config hash) by the benchmark named.",
        "",
        markdown_table(header, rows),
        "",
        "Test acc (final) is the model after its last epoch (for pretrained families: the probe's "
        "accuracy); @ best val is the honest pick, the epoch with the best validation accuracy; "
        "max test acc is the maximum over epochs, study A's protocol.",
        "",
    ]
    if command_wall_s is not None:
        lines += [f"Wall time of the suite command: {command_wall_s:.0f} s.", ""]
    if output:  # the raw log stays out of README (benchmarks/readme_results.py)
        lines += ["<!-- readme:stop -->", "", "## Output of the suite command", "", "```"]
        lines += [output.strip(), "```", ""]
    out.write_text("\n".join(lines))
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
