"""Tiny data sets for tests that need no real MNIST: learnable, seeded, written as IDX files."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
from pathlib import Path

import numpy as np
import torch

from mnistbench.data import DATASETS, RawDataset
from mnistbench.data.catalog import STANDARD_FILES


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as IDX: 0, 0, type 0x08, ndim, big-endian dims, payload."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_dataset(folder: Path, contents: dict[str, bytes], gz: bool = True) -> Path:
    """Write the four files into `folder` (created), gzip-compressed or decompressed."""
    folder.mkdir(parents=True, exist_ok=True)
    for role, content in contents.items():
        name = STANDARD_FILES[role]
        if gz:
            (folder / name).write_bytes(gzip.compress(content))
        else:
            (folder / name.removesuffix(".gz")).write_bytes(content)
    return folder


def learnable_arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 28, 28) uint8 images whose class is a bright 6x6 patch at a class-specific place."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)  # dim noise
    for k in range(10):
        row, col = 2 + 5 * (k // 5) * 2, 2 + 5 * (k % 5)  # two rows of five patches
        images[labels == k, row : row + 6, col : col + 6] = 230
    return images, labels.astype(np.uint8)


def learnable_raw(n_train: int = 1200, n_test: int = 300, seed: int = 0) -> RawDataset:
    """A RawDataset named "mnist" that a small model learns to ~100% in a couple of epochs."""
    train_images, train_labels = learnable_arrays(n_train, seed)
    test_images, test_labels = learnable_arrays(n_test, seed + 1)
    return RawDataset(
        name="mnist",
        train_images=torch.from_numpy(train_images),
        train_labels=torch.from_numpy(train_labels).long(),
        test_images=torch.from_numpy(test_images),
        test_labels=torch.from_numpy(test_labels).long(),
        source_dir=Path("<memory>"),
    )


def learnable_contents(n_train: int = 1200, n_test: int = 300, seed: int = 0) -> dict[str, bytes]:
    train_images, train_labels = learnable_arrays(n_train, seed)
    test_images, test_labels = learnable_arrays(n_test, seed + 1)
    return {
        "train_images": idx_bytes(train_images),
        "train_labels": idx_bytes(train_labels),
        "test_images": idx_bytes(test_images),
        "test_labels": idx_bytes(test_labels),
    }


def install_as_mnist(root: Path, monkeypatch, contents: dict[str, bytes] | None = None) -> Path:
    """Write a learnable data set to `root/mnist` and make the "mnist" spec accept its checksums."""
    contents = contents or learnable_contents()
    write_dataset(root / "mnist", contents)
    spec = dataclasses.replace(
        DATASETS["mnist"],
        sha256={role: hashlib.sha256(c).hexdigest() for role, c in contents.items()},
        mirrors=(),
    )
    monkeypatch.setitem(DATASETS, "mnist", spec)
    return root
