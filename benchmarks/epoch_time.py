"""Epoch time: mnistbench's engine against the per-item DataLoader pipeline of published scripts.

The baselines do what the published MNIST studies do: a Dataset that builds each sample in
Python, a DataLoader with batch 64 and 2 workers, the same model, Adam 1e-3 and gradient
clipping 1.0 (study A's recipe), torch's default optimizer implementation. Two per-item
datasets are timed: `torchvision-style` makes a PIL image per sample, then ToTensor and
Normalize, as `torchvision.datasets.MNIST` does in those scripts; `numpy` skips PIL (uint8 ->
float, /255, normalise), which is faster than what the studies ran, so the ratio against it is
the conservative one. All sides train on the same 55,000-image training split; times are
training only (no evaluation), median over epochs, in one process, one after another.

    python benchmarks/epoch_time.py --data-dir ../shared/data --epochs 3 \
        --out benchmarks/results/epoch_time.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from mnistbench.data import get_dataset_spec, load_dataset, prepare_device_data
from mnistbench.data.device import split_indices
from mnistbench.engine import fit
from mnistbench.engine.device import flush_denormals, place_model
from mnistbench.engine.measure import cpu_description
from mnistbench.experiments.configure import make_config
from mnistbench.models import create_model
from mnistbench.objectives import CrossEntropyObjective

VAL_SIZE = 5000
SEED = 0


class PerItemMNIST(Dataset):
    """One sample at a time, in Python, like torchvision's MNIST + ToTensor + Normalize."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean: float, std: float):
        self.images = images.numpy()  # (N, 28, 28) uint8
        self.labels = labels.numpy()
        self.mean, self.std = mean, std

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = torch.from_numpy(self.images[index].copy()).float().div(255.0)  # ToTensor
        image = (image - self.mean) / self.std  # Normalize
        return image.unsqueeze(0), int(self.labels[index])  # (1, 28, 28)


class TorchvisionStyleMNIST(PerItemMNIST):
    """What torchvision's MNIST does per sample: PIL image, ToTensor, Normalize."""

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image  # benchmark-only dependency (the dev extra); never in mnistbench

        image = Image.fromarray(self.images[index], mode="L")
        pixels = torch.from_numpy(np.array(image, np.uint8, copy=True))  # ToTensor: HWC uint8
        tensor = pixels.view(28, 28, 1).permute(2, 0, 1).contiguous().float().div(255)
        mean = torch.as_tensor([self.mean])  # Normalize builds its tensors per call
        std = torch.as_tensor([self.std])
        return tensor.sub_(mean[:, None, None]).div_(std[:, None, None]), int(self.labels[index])


def baseline_epoch_times(
    model_name: str, dataset: PerItemMNIST, epochs: int, batch_size: int = 64, workers: int = 2
) -> list[float]:
    torch.manual_seed(SEED)
    model = create_model(model_name)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)  # torch defaults, as the scripts
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers)
    times_s = []
    for _ in range(epochs):
        model.train()
        started = time.perf_counter()
        for images, labels in loader:
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        times_s.append(time.perf_counter() - started)
    return times_s


def engine_epoch_times(model_name: str, data, epochs: int, batch_size: int | None) -> list[float]:
    config = make_config(model_name, epochs=epochs, batch_size=batch_size, val_size=VAL_SIZE)
    torch.manual_seed(SEED)
    model = place_model(create_model(model_name), "cpu")
    objective = CrossEntropyObjective(model, grad_clip=config.grad_clip)
    result = fit(objective, data, config, progress=False, test_every_epoch=False)
    return [record.train_time_s for record in result.epochs]


def main() -> None:
    flush_denormals()  # before any parallel torch op, as the CLI does (engine.device)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("MNISTBENCH_DATA"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    parser.add_argument("--out", type=Path, help="also write the Markdown result here")
    args = parser.parse_args()

    raw = load_dataset("mnist", data_dir=args.data_dir, download=False, progress=False)
    spec = get_dataset_spec("mnist")
    data = prepare_device_data(raw, "cpu", val_size=VAL_SIZE, seed=SEED)
    train_idx, _ = split_indices(len(raw.train_labels), VAL_SIZE, SEED)  # the same 55,000 images
    train = (raw.train_images[train_idx], raw.train_labels[train_idx], spec.mean, spec.std)
    baselines = {"torchvision-style": TorchvisionStyleMNIST(*train), "numpy": PerItemMNIST(*train)}

    rows = []
    for model_name in args.models:
        recipe_batch = make_config(model_name).batch_size
        baseline_s = {
            name: statistics.median(baseline_epoch_times(model_name, dataset, args.epochs))
            for name, dataset in baselines.items()
        }
        for batch_size in sorted({64, recipe_batch}):
            ours = statistics.median(engine_epoch_times(model_name, data, args.epochs, batch_size))
            rows.append((model_name, batch_size, baseline_s, ours))
            print(
                f"{model_name:12s} batch {batch_size:4d}: mnistbench {ours:6.2f} s/epoch; "
                + ", ".join(
                    f"{name} {seconds:.2f} s/epoch (ratio {ours / seconds:.2f})"
                    for name, seconds in baseline_s.items()
                ),
                flush=True,
            )

    lines = [
        "# Epoch time: mnistbench engine vs per-item DataLoader pipeline",
        "",
        f"Command: `python benchmarks/epoch_time.py --epochs {args.epochs} "
        f"--models {' '.join(args.models)}`",
        f"Date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"Machine: {cpu_description()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, Python {platform.python_version()}, "
        f"{platform.system()}",
        "",
        "Training time per epoch (median of "
        f"{args.epochs} epochs, 55,000 training images, no evaluation). The baselines always "
        "use batch 64 and 2 DataLoader workers, as the published scripts do; mnistbench is "
        "shown at batch 64 (like for like) and at the model's recipe batch size. Ratio = "
        "mnistbench time / baseline time (lower is better).",
        "",
        "| Model | mnistbench batch | mnistbench (s/epoch) | torchvision-style per-item "
        "(s/epoch) | Ratio | numpy per-item, no PIL (s/epoch) | Ratio |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *(
            f"| {m} | {b} | {ours:.2f} | {base['torchvision-style']:.2f} | "
            f"{ours / base['torchvision-style']:.2f} | {base['numpy']:.2f} | "
            f"{ours / base['numpy']:.2f} |"
            for m, b, base, ours in rows
        ),
        "",
    ]
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
