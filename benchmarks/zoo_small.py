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
from mnistbench.engine.device import flush_denormals
from mnistbench.engine.measure import cpu_description
from mnistbench.experiments import RunOutcome, run_config
from mnistbench.models import get_model_info
from mnistbench.report import format as fmt
from mnistbench.report import latest_per_config, markdown_table
from mnistbench.store import RunRecord, Store
from mnistbench.studies import recipe_figure

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
    recipe.update(get_model_info(config["model"]).recipe.defaults)
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
    published = recipe_figure(model, get_model_info(model).recipe.defaults)
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


def command_line() -> str:
    return shlex.join(["python", *sys.argv])


def record_command(store: Store, outcome: RunOutcome) -> None:
    """Keep the command that trained a new run with it, for `commands` to list later."""
    if not outcome.reused:
        store.add_artefact(outcome.record.run_id, "command", "text", command_line())


def commands(store: Store, models: list[str]) -> list[str]:
    """Every distinct command that trained a finished run of these models, oldest first."""
    seen: dict[str, None] = {}
    for run in store.list_runs(status="finished"):
        if run.model not in models:
            continue
        for artefact in store.artefacts(run.run_id):
            if artefact.name == "command":
                text = artefact.content
                seen.setdefault(text.decode() if isinstance(text, bytes) else text)
    return list(seen)


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
                listing([r.environment.get("torch_threads") for r in group]),
                "yes" if epoch_s <= STUDY_CUDA_EPOCH_S else "no",
                listing([load_text(store, r) for r in group]),
            ]
        )
    header = (
        "Model", "Data", "Params", "Settings (else recipe)", "Seeds", "Epochs run",
        "Test acc (final)", "Test acc @ best val", "Best val epoch",
        "Best test acc (max over epochs)", "Best test epoch", "First epoch ≥99% test",
        "Published (MNIST)", "Time/epoch (train)", "Threads", f"≤ {STUDY_CUDA_EPOCH_S:g} s",
        "Load avg before/after",
    )  # fmt: skip
    return markdown_table(header, rows)


def acceptance(store: Store, model: str = "small_cnn_bn") -> list[str]:
    """Issue 3's floor for `model`: test accuracy at the validation-chosen epoch, over seeds.

    Seeds may have run different epoch budgets. StepLR's schedule does not depend on the total
    number of epochs, so the first K epochs of a longer run are the same computation as a
    K-epoch run of the same seed; comparing every seed over its first K = (fewest epochs any
    seed ran) epochs is therefore like for like.
    """
    runs = [
        r
        for r in latest_per_config(store.list_runs(status="finished"))
        if r.model == model and r.dataset == "mnist" and r.config.get("subset") is None
    ]
    by_seed: dict[int, RunRecord] = {}
    for run in sorted(runs, key=lambda r: r.metrics.get("epochs_completed") or 0):
        by_seed[run.config["seed"]] = run  # the longest run of each seed
    if not by_seed:
        return []
    epochs = {seed: store.epochs(run.run_id) for seed, run in sorted(by_seed.items())}
    k = min(len(rows) for rows in epochs.values())
    picked = []
    for seed, rows in epochs.items():
        best = max(rows[:k], key=lambda e: e["val_accuracy"])  # earliest epoch wins ties
        picked.append((seed, best["epoch"], best["test_accuracy"]))
    accs = [acc for _, _, acc in picked]
    mean = 100 * statistics.mean(accs)
    detail = "; ".join(f"seed {s}: {100 * a:.2f}% (epoch {e})" for s, e, a in picked)
    return [
        f"**Acceptance ({model} >= 99.40% test accuracy at the epoch chosen on validation, mean "
        f"over seeds):** over the first {k} epochs of each seed's run, {len(picked)} seeds: "
        f"mean {mean:.2f}% ({detail}): {'met' if mean >= 99.40 else 'NOT met'}"
        f"{'' if len(picked) >= 3 else ' (fewer than 3 seeds)'}.",
        "",
    ]


def train(args: argparse.Namespace, store: Store) -> None:
    for dataset in args.datasets:
        for model in args.models:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                overrides = {
                    "epochs": args.epochs,
                    "subset": args.subset,
                    "val_size": args.val_size,
                    "precision": args.precision,
                }
                config = make_config(
                    model, device="cpu", dataset=dataset, seed=seed,
                    **{key: value for key, value in overrides.items() if value is not None},
                )  # fmt: skip
                load_before = os.getloadavg()[0]
                outcome = run_config(
                    config, store, data_dir=args.data_dir, progress=False, measure_energy=False
                )
                record, m = outcome.record, outcome.record.metrics
                if not outcome.reused:
                    # The CPU is shared: keep the load average with the run, next to its times.
                    load = json.dumps([load_before, os.getloadavg()[0]])
                    store.add_artefact(record.run_id, "load_average", "json", load)
                record_command(store, outcome)
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
    flush_denormals()  # before any parallel torch op, as the CLI does (engine.device)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("MNISTBENCH_DATA"))
    parser.add_argument("--store", type=Path, default=Path("benchmarks/results/zoo_small.sqlite"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/zoo_small.md"))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--seeds", type=int, default=1, help="how many seeds per model")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run from this one up")
    parser.add_argument("--datasets", nargs="+", default=["mnist"])
    parser.add_argument("--epochs", type=int, help="override every recipe's epochs")
    parser.add_argument("--subset", type=int, help="train on this many images (quick looks)")
    parser.add_argument("--val-size", type=int, help="held-out validation images (default 5000)")
    parser.add_argument(
        "--precision", choices=["fp32", "bf16"], help="override every recipe's precision"
    )
    parser.add_argument("--report-only", action="store_true", help="no training, table only")
    args = parser.parse_args()

    args.store.parent.mkdir(parents=True, exist_ok=True)
    with Store(args.store) as store:
        if not args.report_only:
            train(args, store)
        body = table(store, list(MODELS))
        trained_by = commands(store, list(MODELS))
        floor = acceptance(store)
        finished = {(r.model, r.dataset) for r in store.list_runs(status="finished")}
    missing = {
        dataset: [m for m in MODELS if (m, dataset) not in finished]
        for dataset in ("mnist", "fashion-mnist")
    }
    lines = [
        "# Studies B, D and E: the small supervised models on a 2-core CPU",
        "",
        f"Last command: `{command_line()}`. The runs in the table were trained by these "
        f"commands (each under `flock /tmp/mnistbench-cpu.lock`, from the repository root, "
        f"MNISTBENCH_DATA set; finished runs are kept in `{args.store}` and reused):",
        "",
        *[f"- `{c}`" for c in trained_by],
        "",
        f"Date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"Machine: {cpu_description()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, Python {platform.python_version()}, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}",
        "",
        "Each model trains with its study's registered recipe on 55,000 training images (5,000 "
        "held out for validation, seeded); accuracies are on the 10,000 test images, mean ± std "
        "over seeds. 'Test acc @ best val' is the honest figure (epoch chosen on validation); "
        "'Best test acc' is the max over epochs of test accuracy, the protocol studies A and D "
        "published. Time/epoch is training only (no evaluation), median over epochs. The "
        f"target column compares it with the studies' fastest CUDA time per epoch "
        f"({STUDY_CUDA_EPOCH_S:g} s). Threads are each run's torch threads: runs with 1 "
        "trained two at a time, one per core, so their times are not those of the machine "
        "alone; the load average (1 min) before and after each run says how busy it was. "
        "Rows whose settings say "
        "epochs=N were cut short to fit a shared CPU budget; their schedules (none, or StepLR) "
        "do not depend on the epoch total, so they are the first N epochs of the recipe's run.",
        "",
        body,
        "",
        *floor,
        *[
            f"Not run yet on {dataset} (no finished run in the store): {', '.join(names)}."
            for dataset, names in missing.items()
            if names
        ],
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
