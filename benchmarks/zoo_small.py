"""Studies B, D and E on the CPU: each small model trained with its study's recipe, side by side
with the published figures.

Every configuration goes through `run_config` into one results store; finished configurations
are reused, so partial invocations (--models/--seeds/--datasets/--epochs) add up, and the
Markdown table is rebuilt from every finished run of these models in the store.

    flock /tmp/mnistbench-cpu.lock python benchmarks/zoo_small.py --data-dir ../shared/data \
        --models small_cnn_bn --seeds 3
    python benchmarks/zoo_small.py --report-only   # table from the store, no training
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import sys
from pathlib import Path

import torch

from mnistbench.config import RunConfig, make_config
from mnistbench.engine.measure import cpu_model_name
from mnistbench.experiments import run_config
from mnistbench.models import get_model_info
from mnistbench.report import format as fmt
from mnistbench.report import latest_per_config, markdown_table
from mnistbench.store import RunRecord, Store

# Priority order: the acceptance model first, then studies D, B, E (cheap before expensive).
MODELS = (
    "small_cnn_bn",
    "small_cnn_v2",
    "small_cnn_v1",
    "cnn_small",
    "mlp_784_512",
    "rnn_rows",
    "gru_rows",
    "lstm_rows",
    "diet_4",
    "diet_3",
    "diet_2",
    "diet_1",
)
STUDY_CUDA_EPOCH_S = 14.0  # fastest published CUDA time per epoch (study A, 14-24.5 s): target
IGNORED_IN_SETTINGS = {"model", "dataset", "device", "seed"}


def settings(config: dict) -> str:
    """What a run changed against its model's registered recipe (epochs included)."""
    recipe = json.loads(json.dumps({**RunConfig(model=config["model"]).to_dict()}))
    recipe.update(get_model_info(config["model"]).recipe)
    changed = [
        f"{key}={value}"
        for key, value in config.items()
        if key not in IGNORED_IN_SETTINGS and recipe.get(key) != value
    ]
    return ", ".join(changed) or "recipe"


def mean_std(values: list[float | None]) -> str:
    if not values or any(v is None for v in values):
        return "—"
    if len(values) == 1:
        return fmt.percent(values[0])
    return f"{100 * statistics.mean(values):.2f} ± {100 * statistics.stdev(values):.2f}%"


def listing(values: list[object]) -> str:
    return ", ".join("—" if v is None else str(v) for v in values)


def published_text(model: str, dataset: str) -> str:
    published = get_model_info(model).published
    if published is None or dataset != "mnist":
        return "—"
    parts = [f"study {published.study}"]
    if published.test_accuracy is None:
        parts.append("no accuracy stated")
    else:
        best = f" (ep {published.best_epoch})" if published.best_epoch else ""
        parts.append(f"{fmt.percent(published.test_accuracy)}{best}")
    if published.epochs_to_target:
        parts.append(f"≥99% at ep {published.epochs_to_target}")
    return ", ".join(parts)


def load_text(store: Store, run: RunRecord) -> str:
    for artefact in store.artefacts(run.run_id):
        if artefact.name == "load_average":
            before, after = json.loads(artefact.content)
            return f"{before:.1f}/{after:.1f}"
    return "—"


def table(store: Store, models: list[str]) -> str:
    """One row per (model, dataset, settings): seeds pooled, newest run of each config."""
    runs = latest_per_config([r for r in store.list_runs(status="finished") if r.model in models])
    groups: dict[tuple[str, str, str], list[RunRecord]] = {}
    for run in runs:
        groups.setdefault((run.model, run.dataset, settings(run.config)), []).append(run)
    order = {name: i for i, name in enumerate(MODELS)}
    rows = []
    for (model, dataset, changed), group in sorted(
        groups.items(), key=lambda kv: (kv[0][1] != "mnist", order.get(kv[0][0], 99), kv[0][2])
    ):
        group.sort(key=lambda r: r.config["seed"])
        m = [r.metrics for r in group]
        epoch_s = statistics.median(x["time_per_epoch_s"] for x in m)
        rows.append(
            [
                model,
                dataset,
                fmt.count(m[0].get("params")),
                changed,
                listing([r.config["seed"] for r in group]),
                listing([x.get("epochs_completed") for x in m]),
                mean_std([x.get("test_accuracy") for x in m]),
                mean_std([x.get("test_accuracy_at_best_val") for x in m]),
                listing([x.get("best_val_epoch") for x in m]),
                mean_std([x.get("best_test_accuracy") for x in m]),
                listing([x.get("best_test_epoch") for x in m]),
                listing([x.get("epochs_to_target_test") for x in m]),
                published_text(model, dataset),
                fmt.seconds(epoch_s),
                "yes" if epoch_s <= STUDY_CUDA_EPOCH_S else "no",
                listing([load_text(store, r) for r in group]),
            ]
        )
    header = (
        "Model", "Data", "Params", "Settings (else recipe)", "Seeds", "Epochs run",
        "Test acc (final)", "Test acc @ best val", "Best val epoch",
        "Best test acc (max over epochs)", "Best test epoch", "First epoch ≥99% test",
        "Published (MNIST)", "Time/epoch (train)", f"≤ {STUDY_CUDA_EPOCH_S:g} s",
        "Load avg before/after",
    )  # fmt: skip
    return markdown_table(header, rows)


def train(args: argparse.Namespace, store: Store) -> None:
    for dataset in args.datasets:
        for model in args.models:
            for seed in range(args.seeds):
                config = make_config(model, device="cpu", dataset=dataset, seed=seed,
                                     epochs=args.epochs, subset=args.subset)  # fmt: skip
                load_before = os.getloadavg()[0]
                outcome = run_config(
                    config, store, data_dir=args.data_dir, progress=False, measure_energy=False
                )
                record, m = outcome.record, outcome.record.metrics
                if not outcome.reused:
                    # The CPU is shared: keep the load average with the run, next to its times.
                    load = json.dumps([load_before, os.getloadavg()[0]])
                    store.add_artefact(record.run_id, "load_average", "json", load)
                print(
                    f"{model} {dataset} seed {seed}: test {fmt.percent(m.get('test_accuracy'))}, "
                    f"@best val {fmt.percent(m.get('test_accuracy_at_best_val'))}, "
                    f"max {fmt.percent(m.get('best_test_accuracy'))}, "
                    f"{fmt.seconds(m.get('time_per_epoch_s'))}/epoch, "
                    f"wall {fmt.seconds(m.get('wall_time_s'))}"
                    + (" (reused from the store)" if outcome.reused else ""),
                    flush=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("MNISTBENCH_DATA"))
    parser.add_argument("--store", type=Path, default=Path("benchmarks/results/zoo_small.sqlite"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/zoo_small.md"))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 per model")
    parser.add_argument("--datasets", nargs="+", default=["mnist"])
    parser.add_argument("--epochs", type=int, help="override every recipe's epochs")
    parser.add_argument("--subset", type=int, help="train on this many images (quick looks)")
    parser.add_argument("--report-only", action="store_true", help="no training, table only")
    args = parser.parse_args()

    args.store.parent.mkdir(parents=True, exist_ok=True)
    with Store(args.store) as store:
        if not args.report_only:
            train(args, store)
        body = table(store, list(MODELS))
    lines = [
        "# Studies B, D and E: the small supervised models on a 2-core CPU",
        "",
        f"Last command: `{shlex.join(['python', *sys.argv])}` (earlier invocations' runs are "
        f"kept in `{args.store}` and shown too)",
        f"Date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"Machine: {cpu_model_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, Python {platform.python_version()}, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}",
        "",
        "Each model trains with its study's registered recipe on 55,000 training images (5,000 "
        "held out for validation, seeded); accuracies are on the 10,000 test images, mean ± std "
        "over seeds. 'Test acc @ best val' is the honest figure (epoch chosen on validation); "
        "'Best test acc' is the max over epochs of test accuracy, the protocol studies A and D "
        "published. Time/epoch is training only (no evaluation), median over epochs. The "
        f"target column compares it with the studies' fastest CUDA time per epoch "
        f"({STUDY_CUDA_EPOCH_S:g} s). The CPU is shared with other jobs: the load average "
        "(1 min) before and after each run says how busy it was.",
        "",
        body,
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
