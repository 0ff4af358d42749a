"""The large half of the model zoo on this CPU: study C's SVMs and ResNet-18/50, study A's ViT.

Full runs go through `run_config` into a results store (finished configurations are reused, so
the script can be rerun section by section) and the tables are built from the store. ResNet
step timings (synthetic batches of the right shape through the real objective, optimizer and
autocast) are kept in a JSON file beside the Markdown; an epoch time derived from them is
labelled "extrapolated".

    flock /tmp/mnistbench-cpu.lock python benchmarks/zoo_large.py --data-dir ../shared/data \
        --sections svm vit steps resnet18_epoch --out benchmarks/results/zoo_large.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from mnistbench.config import RunConfig, make_config
from mnistbench.engine import autocast_factory
from mnistbench.engine.device import flush_denormals
from mnistbench.engine.measure import cpu_description, flops_per_sample
from mnistbench.engine.optim import build_optimizer
from mnistbench.experiments import run_config
from mnistbench.models import create_model, get_model_info
from mnistbench.objectives import CrossEntropyObjective
from mnistbench.report import format as fmt
from mnistbench.report import markdown_table
from mnistbench.store import Store
from mnistbench.studies import recipe_figure

TRAIN_IMAGES = 55_000  # the default split: 60,000 - 5,000 held out for validation

# Published Fashion-MNIST figures (study C); MNIST ones are in the registry.
FASHION_PUBLISHED = {"svm_rbf": 0.8567, "svm_poly": 0.8067, "resnet18": 0.9154}


def full_runs(
    sections: list[str], vit_epochs: int, resnet50_epochs: int, precision: str | None
) -> list[tuple[str, str, dict]]:
    """(model, dataset, overrides of the model's recipe) for the sections asked for."""
    # Study C trained with AMP; on this CPU its counterpart is bf16 autocast (--precision bf16).
    speed = {"precision": precision} if precision else {}
    runs: list[tuple[str, str, dict]] = []
    if "svm" in sections:
        runs += [(m, d, {}) for d in ("mnist", "fashion-mnist") for m in ("svm_rbf", "svm_poly")]
    if "vit" in sections:
        runs.append(("vit", "mnist", {"epochs": vit_epochs, **speed}))
    if "vit_fashion" in sections:
        runs.append(("vit", "fashion-mnist", {"epochs": vit_epochs, **speed}))
    if "resnet18_subset" in sections:  # one epoch over 10,000 of the 55,000 images
        runs.append(("resnet18", "mnist", {"epochs": 1, "subset": 10_000, **speed}))
    if "resnet18_epoch" in sections:
        runs.append(("resnet18", "mnist", {"epochs": 1, **speed}))
    if "resnet18" in sections:  # study C's best MNIST run: SGD 1e-3, 5 epochs
        runs.append(("resnet18", "mnist", speed))
    if "resnet18_fashion" in sections:  # study C's best Fashion-MNIST run: Adam 1e-3, 5 epochs
        runs.append(("resnet18", "fashion-mnist", {"optimizer": "adam", **speed}))
    if "resnet50" in sections:
        runs.append(("resnet50", "mnist", {"epochs": resnet50_epochs, **speed}))
    if "resnet50_fashion" in sections:
        runs.append(
            ("resnet50", "fashion-mnist", {"optimizer": "adam", "epochs": resnet50_epochs, **speed})
        )
    return runs


# (model, image side, batch, precision, channels_last, compile, measured steps)
STEP_VARIANTS = [
    ("resnet18", 64, 16, "fp32", True, False, 60),  # 0
    ("resnet18", 64, 16, "fp32", False, False, 30),
    ("resnet18", 64, 16, "bf16", True, False, 30),
    ("resnet18", 64, 128, "fp32", True, False, 10),
    ("resnet18", 64, 16, "fp32", False, True, 30),  # 4: torch.compile
    ("resnet18", 64, 128, "fp32", False, False, 10),
    ("resnet18", 64, 16, "bf16", False, False, 10),
    ("resnet50", 64, 16, "fp32", False, False, 20),  # 7
    ("resnet50", 224, 16, "fp32", False, False, 3),
    ("resnet50", 64, 16, "bf16", False, False, 10),  # 9
    ("resnet50", 64, 16, "bf16", True, False, 10),
    ("resnet18", 64, 16, "bf16", True, True, 10),  # 11: bf16, channels-last, torch.compile
]


def time_steps(
    model_name: str,
    side: int,
    batch_size: int,
    precision: str,
    channels_last: bool,
    compile_model: bool,
    steps: int,
    warmup: int | None = None,
) -> dict[str, object]:
    """Median seconds per optimizer step of the model's recipe on random (B, 1, side, side)."""
    warmup = warmup if warmup is not None else (1 if steps <= 3 else 3)
    torch.manual_seed(0)
    config = make_config(model_name, precision=precision, batch_size=batch_size)
    model = create_model(model_name)
    if channels_last:  # forced here, whatever place_model would choose for the model
        model = model.to(memory_format=torch.channels_last)
    compile_s = None
    if compile_model:
        started = time.perf_counter()
        model = torch.compile(model)
    objective = CrossEntropyObjective(
        model, autocast=autocast_factory("cpu", precision), grad_clip=config.grad_clip
    )
    objective.configure_optimizers(lambda params: build_optimizer(params, config))
    images = torch.randn(batch_size, 1, side, side)
    labels = torch.randint(0, 10, (batch_size,))
    times = []
    for step in range(warmup + steps):
        t0 = time.perf_counter()
        objective.step((images, labels))["loss"].item()  # .item(): wait for the step to finish
        if compile_model and step == 0:
            compile_s = time.perf_counter() - started
        if step >= warmup:
            times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    steps_per_epoch = math.ceil(TRAIN_IMAGES / batch_size)
    return {
        "model": model_name,
        "side": side,
        "batch_size": batch_size,
        "precision": precision,
        "channels_last": channels_last,
        "compile": compile_model,
        "steps": steps,
        "median_step_s": median,
        "min_step_s": min(times),
        "images_per_s": batch_size / median,
        "epoch_extrapolated_s": median * steps_per_epoch,
        "compile_s": compile_s,
        "load_average": os.getloadavg()[0],
    }


def step_rows(results: list[dict]) -> list[list[str]]:
    return [
        [
            r["model"],
            f"{r['side']}x{r['side']}",
            str(r["batch_size"]) + ("" if r["batch_size"] == 16 else " (not the recipe)"),
            r["precision"],
            "channels-last" if r["channels_last"] else "NCHW",
            "yes" if r["compile"] else "no",
            str(r["steps"]),
            f"{1000 * r['median_step_s']:.0f}",
            f"{r['images_per_s']:.0f}",
            f"{r['epoch_extrapolated_s']:.0f} (extrapolated)",
            "—" if r["compile_s"] is None else f"{r['compile_s']:.0f}",
            f"{r['load_average']:.1f}",
        ]
        for r in results
    ]


def macs_per_image(config: dict) -> float | None:
    """Counted again now rather than read from the run, so a fix to the counter reaches old runs
    (runs before it stored the ViT's fused attention as 0.1 M); None for the SVMs."""
    run_config = RunConfig.from_dict(config)
    info = get_model_info(run_config.model)
    if "sklearn" in info.tags:
        return None
    model = create_model(run_config.model, **run_config.options())
    input_shape = (info.input_shape[0], run_config.image_size, run_config.image_size)
    return flops_per_sample(model, input_shape, "cpu") / 2


def published_text(model: str, dataset: str) -> str:
    published = recipe_figure(model, get_model_info(model).recipe.defaults)
    if dataset == "fashion-mnist":
        value = FASHION_PUBLISHED.get(model)
        return fmt.percent(value) + " (study C)" if value else "—"
    if published is None or published.test_accuracy is None:
        return "— (study C gives only its best run, a ResNet-18)"
    time_text = (
        f", {published.time_per_epoch_s} s/epoch {published.time_device}"
        if published.time_per_epoch_s
        else ""
    )
    return (
        f"{fmt.percent(published.test_accuracy)} ({published.setting.get('epochs')} ep){time_text}"
    )


def main() -> None:
    flush_denormals()  # before any parallel torch op, as the CLI does (engine.device)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("MNISTBENCH_DATA"))
    parser.add_argument("--store", type=Path, default=Path("benchmarks/results/zoo_large.sqlite"))
    parser.add_argument(
        "--sections",
        nargs="*",  # none: only rebuild the Markdown from the store and the step file
        default=["svm", "vit", "steps", "resnet18"],
        choices=[
            "svm",
            "vit",
            "vit_fashion",
            "steps",
            "resnet18_subset",
            "resnet18_epoch",
            "resnet18",
            "resnet18_fashion",
            "resnet50",
            "resnet50_fashion",
        ],
    )
    parser.add_argument(
        "--precision", choices=["fp32", "bf16"], help="override the recipes' precision"
    )
    parser.add_argument("--resnet50-epochs", type=int, default=5, help="study C's grid has 3 and 5")
    parser.add_argument("--vit-epochs", type=int, default=5, help="study A's recipe: 5")
    parser.add_argument("--steps-variants", help="comma-separated indices into STEP_VARIANTS")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/zoo_large.md"))
    args = parser.parse_args()
    steps_file = args.out.with_suffix(".steps.json")
    commands_file = args.out.with_suffix(".commands.json")
    steps = json.loads(steps_file.read_text()) if steps_file.exists() else []
    commands = json.loads(commands_file.read_text()) if commands_file.exists() else []
    commands.append(
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC: python benchmarks/zoo_large.py "
        + " ".join(sys.argv[1:])
    )

    if "steps" in args.sections:
        chosen = (
            [STEP_VARIANTS[int(i)] for i in args.steps_variants.split(",")]
            if args.steps_variants
            else STEP_VARIANTS
        )
        for variant in chosen:
            result = time_steps(*variant)
            print(json.dumps(result), flush=True)
            key = [result[k] for k in ("model", "side", "batch_size", "precision")]
            key += [result["channels_last"], result["compile"]]
            steps = [
                s
                for s in steps
                if [s[k] for k in ("model", "side", "batch_size", "precision")]
                + [s["channels_last"], s["compile"]]
                != key
            ]
            steps.append(result)
            steps_file.write_text(json.dumps(steps, indent=1))

    with Store(args.store) as store:
        for model, dataset, overrides in full_runs(
            args.sections, args.vit_epochs, args.resnet50_epochs, args.precision
        ):
            config = make_config(model, device="cpu", dataset=dataset, **overrides)
            print(f"running {model} on {dataset} {overrides} ...", flush=True)
            outcome = run_config(config, store, data_dir=args.data_dir, progress=False)
            m = outcome.record.metrics
            print(
                f"{model} {dataset}: test {fmt.percent(m['test_accuracy'])}, "
                f"{fmt.seconds(m['time_per_epoch_s'])}/epoch (train), "
                f"wall {fmt.seconds(m['wall_time_s'])}"
                + (" (reused from the store)" if outcome.reused else ""),
                flush=True,
            )
        records = [r for r in store.list_runs() if r.status == "finished"]

    run_rows = []
    for r in records:
        m, c = r.metrics, r.config
        info = get_model_info(c["model"])
        recipe_keys = ("epochs", "batch_size", "optimizer", "lr", "image_size", "precision")
        run_rows.append(
            [
                c["model"],
                c["dataset"],
                ", ".join(f"{k}={c[k]}" for k in recipe_keys if "sklearn" not in info.tags)
                or f"subset={c['subset']}, val_size={c['val_size']}",
                fmt.percent(m.get("test_accuracy")),
                fmt.percent(m.get("test_accuracy_at_best_val")),
                published_text(c["model"], c["dataset"]),
                fmt.seconds(m.get("time_per_epoch_s")),
                fmt.seconds(m.get("total_eval_time_s")),
                fmt.seconds(m.get("wall_time_s")),
                f"{macs / 1e6:.1f} M"
                if (macs := macs_per_image(c)) is not None
                else f"{m.get('support_vectors')} SVs",
            ]
        )
    lines = [
        "# Large zoo models on this CPU: SVMs and ResNet-18/50 (study C), ViT (study A)",
        "",
        "Commands (each run under `flock /tmp/mnistbench-cpu.lock`; runs already in the store "
        "are reused):",
        "",
        *[f"- `{c}`" for c in commands],
        "",
        f"Updated: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"Machine: {cpu_description()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"Python {platform.python_version()}. The machine is shared: its load average is "
        "given with each timing, and times above ~2 mean other jobs took CPU.",
        "",
        "## Full runs (from the store)",
        "",
        "Training on 55,000 images (5,000 held out for validation) unless stated; the SVMs "
        "fit on the recipe's 10,000 (subset) as study C did. Time/epoch is training only "
        "(for the SVMs: the libsvm fit). MACs are per image at the run's input size, counted "
        "by torch's FlopCounterMode when this table is built (convolutions, matmuls, attention).",
        "",
        markdown_table(
            (
                "Model",
                "Data",
                "Settings",
                "Test acc (final)",
                "Test acc @ best val",
                "Published",
                "Time/epoch (train)",
                "Eval time",
                "Wall",
                "MACs/image",
            ),
            run_rows,
        ),
        "",
        "## ResNet step times (synthetic batches, real objective and optimizer)",
        "",
        "Median wall time of one SGD step (forward, backward, update) after 3 warm-up steps "
        "(1 where only 3 steps are timed); "
        "the epoch time is median x ceil(55,000 / batch), i.e. extrapolated, not measured.",
        "",
        markdown_table(
            (
                "Model",
                "Input",
                "Batch",
                "Precision",
                "Layout",
                "compile",
                "Steps timed",
                "ms/step",
                "Images/s",
                "Epoch s",
                "Compile s",
                "Load avg",
            ),
            step_rows(steps),
        ),
        "",
    ]
    commands_file.write_text(json.dumps(commands, indent=1))
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
