"""How long a suite takes: runs `mnistbench suite NAME ...` as a user would and times it.

The command's output is kept verbatim; a table built from the store gives each trial's wall
time and time/epoch, and an ESTIMATE of the full suite (every model's recipe epochs on all
55,000 training images) from the measured time/epoch scaled by the number of images.

    python benchmarks/suites.py architecture-showdown --subset 2000 --epochs 1 \
        --store benchmarks/results/suites.sqlite --out benchmarks/results/suites.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from mnistbench.config import make_config
from mnistbench.engine.measure import cpu_description
from mnistbench.experiments.suites import get_suite, plan_suite, suite_runs
from mnistbench.report import format as fmt
from mnistbench.report import markdown_table
from mnistbench.store import Store

FULL_TRAIN_IMAGES = 55_000  # 60,000 minus the 5,000 held out for validation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite")
    parser.add_argument("--subset", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--store", type=Path, default=Path("benchmarks/results/suites.sqlite"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/suites.md"))
    parser.add_argument("--timeout", type=float, default=560, help="seconds for the suite")
    args = parser.parse_args()

    command = [
        "mnistbench", "suite", args.suite, "--subset", str(args.subset), "--epochs",
        str(args.epochs), "--store", str(args.store), "--quiet",
    ]  # fmt: skip
    started = time.perf_counter()
    timed_out = False
    try:
        result = subprocess.run(
            [sys.executable, "-m", "mnistbench", *command[1:]],
            capture_output=True,
            text=True,
            timeout=args.timeout,
            check=False,
        )
        output, code = result.stdout + result.stderr, result.returncode
    except subprocess.TimeoutExpired as error:
        timed_out, code = True, None
        output = (error.stdout or b"").decode() + (error.stderr or b"").decode()
    duration = time.perf_counter() - started
    print(output)

    suite = get_suite(args.suite)
    plan = plan_suite(suite, device="cpu", epochs=args.epochs, subset=args.subset)
    planned = {t.config_hash for t in plan.trials}
    rows, total_estimate = [], 0.0
    with Store(args.store) as store:
        runs = [r for r in suite_runs(store, args.suite) if r.config_hash in planned]
    for run in runs:
        m = run.metrics
        recipe_epochs = make_config(run.model).epochs
        per_epoch = m.get("time_per_epoch_s")
        estimate = None
        if per_epoch is not None and run.status == "finished":
            estimate = per_epoch * FULL_TRAIN_IMAGES / args.subset * recipe_epochs
            total_estimate += estimate
        rows.append(
            [
                run.model,
                run.status,
                fmt.percent(m.get("test_accuracy")),
                fmt.seconds(per_epoch),
                fmt.seconds(m.get("wall_time_s")),
                str(recipe_epochs),
                fmt.seconds(estimate) if estimate is not None else "—",
            ]
        )
    lines = [
        f"# `mnistbench suite {args.suite}`: a quick look, timed",
        "",
        f"Measured {datetime.date.today().isoformat()} on {cpu_description()}, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"Python {platform.python_version()}, under `flock /tmp/mnistbench-cpu.lock` (other "
        "engineers' jobs waited; light processes of theirs may still have shared the 2 cores).",
        "",
        "```",
        " ".join(command),
        "```",
        "",
        f"Wall time of the whole command: **{duration:.0f} s**"
        + (f" (timed out after {args.timeout:.0f} s: partial)" if timed_out else "")
        + f", exit status {code}. Suite {suite.name} v{suite.version}: "
        f"{len(plan.trials)} trial(s) planned"
        + (
            f", skipped (not registered): {', '.join(plan.skipped_models)}"
            if plan.skipped_models
            else ""
        )
        + f". {args.subset:,} training images and the first {min(args.subset, 10_000):,} test "
        f"images (`--subset` trims both), {args.epochs} epoch(s) each.",
        "",
        "## Per trial, from the store",
        "",
        f"Accuracies here are from {args.epochs} epoch(s) on {args.subset:,} images and say only "
        "that each model trains end to end; they are not comparable with the published figures "
        "(full data, the recipes' epochs).",
        "",
        markdown_table(
            (
                "Model",
                "Status",
                "Test acc (subset)",
                "Time/epoch",
                "Trial wall",
                "Recipe epochs",
                "Full-run estimate",
            ),
            rows,
        ),
        "",
        "## Full suite: an estimate, not a measurement",
        "",
        f"Sum of the estimates: **{total_estimate / 60:.0f} min** "
        f"({total_estimate / 3600:.1f} h) of training for the finished trials above, one "
        "seed. Each estimate is the measured training time per epoch on the subset x "
        f"({FULL_TRAIN_IMAGES:,} / {args.subset:,}) x the model's recipe epochs. It leaves out "
        "evaluation, data loading and the measurements after training, and assumes time "
        "scales linearly with images, which holds roughly for these batch sizes. For the "
        "pretrain-then-probe models (simsiam_lgbm, gan, unet, beta_vae) time/epoch is the "
        "median pretraining epoch and the recipe epochs are pretraining epochs; their probe "
        "stages (a few epochs on extracted features, or LightGBM) are left out, so those "
        "estimates are low. `--seeds N` multiplies the total by N.",
        "",
        "## Output of the command",
        "",
        "```",
        output.strip(),
        "```",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}", file=sys.stderr)
    os.sync()


if __name__ == "__main__":
    main()
