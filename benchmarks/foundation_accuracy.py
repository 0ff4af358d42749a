"""Accuracy and time of study A's mlp, cnn and microresnet on real MNIST, through the CLI's runner.

Each configuration is trained with `run_config` into a results store (finished configurations
are reused, so the script can be rerun to extend it) and the table is built from the store.

    python benchmarks/foundation_accuracy.py --data-dir ../shared/data \
        --store benchmarks/results/foundation.sqlite \
        --out benchmarks/results/foundation_accuracy.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
from pathlib import Path

import torch

from mnistbench.config import make_config
from mnistbench.engine.device import flush_denormals
from mnistbench.engine.measure import cpu_description
from mnistbench.experiments import run_config
from mnistbench.models import get_model_info
from mnistbench.report import format as fmt
from mnistbench.report import markdown_table
from mnistbench.store import Store
from mnistbench.studies import recipe_figure

# (model, overrides of the study A recipe, seeds, floor the foundation issue asks for)
RUNS = [
    ("mlp", {"epochs": 5}, 5, 0.978),
    ("mlp", {"epochs": 5, "val_size": 0}, 5, 0.978),  # all 60,000 training images, as study A
    ("mlp", {"epochs": 5, "scheduler": "onecycle"}, 5, 0.978),
    ("cnn", {"epochs": 5}, 3, 0.988),
    ("cnn", {"epochs": 5, "scheduler": "onecycle"}, 3, 0.988),
    ("microresnet", {"epochs": 10, "precision": "bf16"}, 1, 0.993),
    ("microresnet", {"epochs": 10, "precision": "bf16", "scheduler": "onecycle"}, 3, 0.993),
]


def mean_std(values: list[float | None]) -> str:
    if any(v is None for v in values):
        return "—"  # e.g. no validation split
    if len(values) == 1:
        return fmt.percent(values[0])
    return f"{100 * statistics.mean(values):.2f} ± {100 * statistics.stdev(values):.2f}%"


def main() -> None:
    flush_denormals()  # before any parallel torch op, as the CLI does (engine.device)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("MNISTBENCH_DATA"))
    parser.add_argument("--store", type=Path, default=Path("benchmarks/results/foundation.sqlite"))
    parser.add_argument("--max-seeds", type=int, help="cap every row's seed count (quick look)")
    parser.add_argument("--models", nargs="+", default=sorted({name for name, *_ in RUNS}))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    rows = []
    with Store(args.store) as store:
        for model, overrides, seeds, floor in RUNS:
            if model not in args.models:
                continue
            records = []
            for seed in range(min(seeds, args.max_seeds or seeds)):
                config = make_config(model, device="cpu", seed=seed, **overrides)
                outcome = run_config(config, store, data_dir=args.data_dir, progress=False)
                m = outcome.record.metrics
                print(
                    f"{model} seed {seed}: test {fmt.percent(m['test_accuracy'])}, "
                    f"{fmt.seconds(m['time_per_epoch_s'])}/epoch"
                    + (" (reused from the store)" if outcome.reused else ""),
                    flush=True,
                )
                records.append(outcome.record)
            finals = [r.metrics["test_accuracy"] for r in records]
            published = recipe_figure(model, get_model_info(model).recipe.defaults)
            rows.append(
                [
                    model,
                    ", ".join(f"{k}={v}" for k, v in overrides.items()),
                    str(len(records)),
                    mean_std(finals),
                    mean_std([r.metrics.get("test_accuracy_at_best_val") for r in records]),
                    mean_std([r.metrics["best_test_accuracy"] for r in records]),
                    fmt.percent(floor, 1),
                    f"{sum(a >= floor for a in finals)}/{len(finals)}",
                    f"{fmt.percent(published.test_accuracy)}, {published.time_per_epoch_s} s/epoch "
                    f"{published.time_device}",
                    fmt.seconds(statistics.median(r.metrics["time_per_epoch_s"] for r in records)),
                    fmt.seconds(statistics.median(r.metrics["wall_time_s"] for r in records)),
                ]
            )
    header = (
        "Model", "Settings (else study A recipe)", "Seeds", "Test acc (final)",
        "Test acc @ best val", "Best test acc (max over epochs)", "Floor", "Seeds ≥ floor",
        "Published (study A)", "Time/epoch (train, median)", "Wall time per run",
    )  # fmt: skip
    lines = [
        "# Study A foundation models on MNIST (2-core CPU)",
        "",
        "Command: `python benchmarks/foundation_accuracy.py --data-dir ../shared/data "
        f"--store {args.store} --out {args.out}`",
        f"Date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"Machine: {cpu_description()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, Python {platform.python_version()}",
        "",
        "Training on 55,000 images (5,000 held out for validation) unless val_size=0, which "
        "trains on all 60,000 as study A did. 'Test acc (final)' is the model at the end of "
        "training; mean ± std over seeds (seeds 0..N-1). "
        "Published times were taken on a CUDA GPU and included evaluation; ours are training "
        "only, on the CPU.",
        "",
        markdown_table(header, rows),
        "",
    ]
    if args.out:
        args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
