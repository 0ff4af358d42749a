"""Study A's pretrained families (beta-VAE, GAN, U-Net, SimSiam) on real MNIST: pretrain without
labels, extract features once, probe; through the runner's `pretrain_probe` protocol.

Each configuration is trained with `run_config` into a results store (finished ones are reused,
so the script can run one model at a time under the CPU lock and then build the table):

    flock /tmp/mnistbench-cpu.lock python benchmarks/pretrain_probe.py --only beta_vae
    ...
    python benchmarks/pretrain_probe.py --table-only --out benchmarks/results/pretrain_probe.md

Every run uses its study A recipe and one seed; what differs from the published recipe is in
the RUNS table below and in the Markdown, not hidden.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
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

# (model, dataset, overrides of the study A recipe, what differs from the published recipe).
# Default settings (no overrides) are the configurations `mnistbench suite
# architecture-showdown` runs, so a store merged from the suite's reuses them.
RUNS = [
    (model, dataset, overrides, cut)
    for dataset in ("mnist", "fashion-mnist")
    for model, overrides, cut in (
        ("beta_vae", {}, "full recipe (beta 1.0, the default)"),
        ("beta_vae", {"model_options": {"beta": 4.0}}, "full recipe, beta 4"),
        ("gan", {}, "full recipe"),
        ("unet", {}, "full recipe; output and target both in [0, 1] (see the model)")
        if dataset == "mnist"
        else (
            "unet",
            {"precision": "bf16"},
            "full recipe under bf16 autocast (to fit the session's CPU budget)",
        ),
        ("simsiam_lgbm", {}, "full recipe; LightGBM on 55,000 (published: 60,000) features"),
    )
]


def _settings(overrides: dict) -> str:
    parts = []
    for key, value in overrides.items():
        if key == "model_options":
            parts += [f"{k}={v}" for k, v in value.items()]
        else:
            parts.append(f"{key}={value}")
    return ", ".join(parts) or "—"


def _published_time(published) -> str:
    if published.time_per_epoch_s is None:
        return "—"
    return f"{fmt.seconds(published.time_per_epoch_s)} ({published.time_device})"


def _vae_terms(store: Store, record, dataset: str, overrides: dict) -> str:
    """One Markdown bullet: the last pretraining epoch's reconstruction and KL terms."""
    last = [e for e in store.epochs(record.run_id) if e["stage"] == "pretrain"][-1]
    terms = last["pretext"]
    return (
        f"- {dataset} {_settings(overrides)}: loss {last['train_loss']:.2f} = reconstruction "
        f"{terms['reconstruction']:.2f} + beta x KL {terms['kl']:.2f}"
    )


def main() -> None:
    flush_denormals()  # before any parallel torch op, as the CLI does (engine.device)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("MNISTBENCH_DATA"))
    parser.add_argument(
        "--store", type=Path, default=Path("benchmarks/results/pretrain_probe.sqlite")
    )
    parser.add_argument("--only", nargs="+", help="train only these models (others are reused)")
    parser.add_argument("--dataset", nargs="+", default=["mnist", "fashion-mnist"])
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--table-only", action="store_true", help="train nothing: the table of the stored runs"
    )
    args = parser.parse_args()

    rows: list[list[str]] = []
    vae_notes: list[str] = []
    with Store(args.store) as store:
        for model, dataset, overrides, cut in RUNS:
            if dataset not in args.dataset:
                continue
            config = make_config(model, device="cpu", dataset=dataset, **overrides)
            if args.table_only or (args.only and model not in args.only):
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
            published = recipe_figure(model, get_model_info(model).recipe.defaults)
            linear = m.get("linear_probe_test_accuracy")
            probe_s = m.get("probe_total_s")
            probe_time = fmt.seconds(probe_s)
            if linear is not None:  # SimSiam: the shared linear probe ran first
                probe_time = (
                    f"LightGBM {fmt.seconds(probe_s)}, linear "
                    f"{fmt.seconds(m.get('linear_probe_total_s'))}"
                )
            if model == "beta_vae":
                vae_notes.append(_vae_terms(store, record, dataset, overrides))
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
                    str(record.environment.get("torch_threads", "—")),
                    _published_time(published) if dataset == "mnist" else "—",
                    fmt.seconds(m["feature_extraction_s"]),
                    probe_time,
                    fmt.seconds(m["wall_time_s"]),
                ]
            )
    header = (
        "Model", "Data", "Settings (else study A recipe)", "Differs from published",
        "Pretrain epochs", "Probe", "Test acc (probe)", "Linear probe test acc",
        "Test acc @ best val", "Published", "Pretrain time/epoch", "Threads",
        "Published time/epoch", "Feature extraction", "Probe fit", "Wall time",
    )  # fmt: skip
    command = "python benchmarks/pretrain_probe.py --table-only" + (
        f" --out {args.out}" if args.out else ""
    )
    lines = [
        "# Pretrained families of study A: pretrain without labels, then probe (2-core CPU)",
        "",
        f"Command: `{command}` (each model first trained by "
        "`flock /tmp/mnistbench-cpu.lock python benchmarks/pretrain_probe.py --only MODEL "
        "--dataset DATA`)",
        f"Date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"Machine: {cpu_description()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, Python {platform.python_version()}",
        "",
        "One seed (0). Pretraining on 55,000 images (5,000 held out for validation). "
        "The probe is fitted on features extracted once from the frozen model "
        "(linear: the model's head, Adam 1e-3, clip 1.0, batch = the pretraining batch, study "
        "A's probe epochs: VAE 10, GAN 5, U-Net 5, SimSiam 10; LightGBM: study A's settings, "
        "1 thread). 'Test acc (probe)' is the final probe on the test images; for SimSiam it is "
        "LightGBM's, the published protocol, and the shared linear probe on the same features "
        "is beside it. 'Test acc @ best val' is the honest figure: the test accuracy at the "
        "probe epoch with the best validation accuracy. Pretrain time/epoch is training only "
        "(median over epochs, no evaluation); the published times were CUDA and included "
        "evaluation. Feature extraction covers train, validation and test. Threads are the "
        "run's torch threads: runs with 1 trained beside another 1-thread run, one per core, "
        "so their times are not those of the machine alone.",
        "",
        markdown_table(header, rows),
        "",
        "beta-VAE ELBO terms of the last pretraining epoch (per image, training split), which "
        "show that beta reached the loss:",
        "",
        *vae_notes,
        "",
    ]
    if args.out:
        args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
