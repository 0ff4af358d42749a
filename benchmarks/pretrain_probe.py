"""Study A's pretrained families (beta-VAE, GAN, U-Net, SimSiam) on real MNIST: pretrain without
labels, extract features once, probe; through the runner's `pretrain_probe` protocol.

Each configuration is trained with `run_config` into a results store (finished ones are reused,
so the script can run one model at a time under the CPU lock and then build the table):

    flock /tmp/mnistbench-cpu.lock python benchmarks/pretrain_probe.py --only beta_vae
    ...
    python benchmarks/pretrain_probe.py --out benchmarks/results/pretrain_probe.md

Where the study's full recipe does not fit this benchmark's CPU budget (25 minutes on a 2-core
machine for all of it), the cut is in the RUNS table below and in the Markdown, not hidden.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
from pathlib import Path

import torch

from mnistbench.config import make_config
from mnistbench.engine.measure import cpu_model_name
from mnistbench.experiments import run_config
from mnistbench.models import get_model_info
from mnistbench.report import format as fmt
from mnistbench.report import markdown_table
from mnistbench.store import Store

# (model, dataset, overrides of the study A recipe, what differs from the published recipe)
RUNS = [
    ("beta_vae", "mnist", {"model_options": {"beta": 1.0}}, "full recipe"),
    ("beta_vae", "mnist", {"model_options": {"beta": 4.0}}, "full recipe, beta 4"),
    ("gan", "mnist", {}, "full recipe"),
    (
        "unet",
        "mnist",
        {"epochs": 1, "subset": 10_000, "val_size": 1_000},
        "1 denoising epoch on 10,000 images (published: 5 on 60,000); probe on those 10,000",
    ),
    (
        "simsiam_lgbm",
        "mnist",
        {"epochs": 1, "model_options": {"lgbm_train_size": 10_000}},
        "1 SimSiam epoch (published: 5); LightGBM fitted on 10,000 of the 55,000 training "
        "features (linear probe on all)",
    ),
    ("beta_vae", "fashion-mnist", {"model_options": {"beta": 1.0}}, "full recipe"),
    ("beta_vae", "fashion-mnist", {"model_options": {"beta": 4.0}}, "full recipe, beta 4"),
]


def _settings(overrides: dict) -> str:
    parts = []
    for key, value in overrides.items():
        if key == "model_options":
            parts += [f"{k}={v}" for k, v in value.items()]
        else:
            parts.append(f"{key}={value}")
    return ", ".join(parts) or "—"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("MNISTBENCH_DATA"))
    parser.add_argument(
        "--store", type=Path, default=Path("benchmarks/results/pretrain_probe.sqlite")
    )
    parser.add_argument("--only", nargs="+", help="train only these models (others are reused)")
    parser.add_argument("--dataset", nargs="+", default=["mnist", "fashion-mnist"])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    rows = []
    with Store(args.store) as store:
        for model, dataset, overrides, cut in RUNS:
            if dataset not in args.dataset:
                continue
            config = make_config(model, device="cpu", dataset=dataset, **overrides)
            if args.only and model not in args.only:
                record = store.find_completed(config.config_hash())
                if record is None:
                    continue
                reused = True
            else:
                outcome = run_config(config, store, data_dir=args.data_dir, progress=False)
                record, reused = outcome.record, outcome.reused
            m = record.metrics
            print(
                f"{model} {dataset} {_settings(overrides)}: test {fmt.percent(m['test_accuracy'])}"
                f" ({m['probe']} probe), pretrain {fmt.seconds(m['time_per_epoch_s'])}/epoch, "
                f"wall {fmt.seconds(m['wall_time_s'])}" + (" (reused)" if reused else ""),
                flush=True,
            )
            published = get_model_info(model).published
            linear = m.get("linear_probe_test_accuracy")
            rows.append(
                [
                    model,
                    dataset,
                    _settings(overrides),
                    cut,
                    str(m["pretrain_epochs"]),
                    f"{m['probe']} ({m['probe_train_images']:,} imgs)",
                    fmt.percent(m["test_accuracy"]),
                    fmt.percent(linear) if linear is not None else "—",
                    fmt.percent(m.get("test_accuracy_at_best_val")),
                    fmt.percent(published.test_accuracy) if dataset == "mnist" else "—",
                    fmt.seconds(m["time_per_epoch_s"]),
                    fmt.seconds(m["feature_extraction_s"]),
                    fmt.seconds(m.get("probe_total_s")),
                    fmt.seconds(m["wall_time_s"]),
                ]
            )
    header = (
        "Model", "Data", "Settings (else study A recipe)", "Differs from published",
        "Pretrain epochs", "Probe", "Test acc (probe)", "Linear probe test acc",
        "Test acc @ best val", "Published", "Pretrain time/epoch", "Feature extraction",
        "Probe fit", "Wall time",
    )  # fmt: skip
    command = "python benchmarks/pretrain_probe.py" + (f" --out {args.out}" if args.out else "")
    lines = [
        "# Pretrained families of study A: pretrain without labels, then probe (2-core CPU)",
        "",
        f"Command: `{command}` (each model first trained by "
        "`flock /tmp/mnistbench-cpu.lock python benchmarks/pretrain_probe.py --only MODEL "
        "--dataset DATA`)",
        f"Date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"Machine: {cpu_model_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, Python {platform.python_version()}",
        "",
        "Pretraining on 55,000 images (5,000 held out for validation) unless a subset is "
        "given; `subset=10000` keeps the first 10,000 training images and all 10,000 test "
        "images. The probe is fitted on features extracted once from the frozen model "
        "(linear: the model's head, Adam 1e-3, clip 1.0, study A's probe epochs: VAE 10, "
        "GAN 5, U-Net 5, SimSiam 10; LightGBM: study A's settings). 'Test acc (probe)' is the "
        "final probe on the 10,000 test images; for SimSiam it is LightGBM's, the published "
        "protocol. Pretrain time/epoch is training only (median); the published times were "
        "CUDA. Other engineers' jobs shared the 2 cores, so times are upper bounds.",
        "",
        markdown_table(header, rows),
        "",
    ]
    if args.out:
        args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
