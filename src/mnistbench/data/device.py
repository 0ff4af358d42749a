"""Whole data sets as tensors on the training device; batches are index slices, augmentation is
batched tensor ops (the airbench way: no DataLoader, no per-sample Python)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from mnistbench.data.catalog import get_dataset_spec
from mnistbench.data.fetch import RawDataset
from mnistbench.errors import ConfigError

# Every scaling is x -> (x/255 - mean) / std; "unit" and "symmetric" are fixed (mean, std) pairs,
# so DeviceData.mean/std always describe exactly what was applied.
SCALINGS: tuple[str, ...] = ("standard", "unit", "symmetric")


@dataclass
class Split:
    """One split on the device: images (N, 1, H, W) float32, scaled; labels (N,) int64.

    `resize_to` set means the stored images are native size and every batch is resized on the
    fly (used when resizing the whole split at once would not fit in memory).
    """

    images: torch.Tensor
    labels: torch.Tensor
    resize_to: int | None = None

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class DeviceData:
    """A data set ready for training: train/val/test splits on one device plus metadata."""

    name: str
    train: Split
    val: Split | None  # None when val_size was 0
    test: Split
    mean: float  # scaled = (x/255 - mean) / std; see SCALINGS
    std: float
    num_classes: int
    class_names: tuple[str, ...]

    @property
    def device(self) -> torch.device:
        """The device every split lives on."""
        return self.train.images.device


def scaling_stats(scaling: str, mean: float, std: float) -> tuple[float, float]:
    """The (mean, std) that implement `scaling` given the data set's own statistics."""
    stats = {
        "standard": (mean, std),  # zero mean, unit variance over the training set
        "unit": (0.0, 1.0),  # [0, 1], for Bernoulli likelihoods (DBN, VAE)
        "symmetric": (0.5, 0.5),  # [-1, 1], for tanh generators (GAN)
    }
    if scaling not in stats:
        raise ConfigError(
            f"Unknown scaling '{scaling}'. Choose one of {', '.join(SCALINGS)}: 'standard' "
            "normalises with the data set's mean and std, 'unit' maps pixels to [0, 1], "
            "'symmetric' to [-1, 1]."
        )
    return stats[scaling]


def background_value(data: DeviceData) -> float:
    """The scaled value of a black (0) pixel: the right `fill` for `random_affine`."""
    return (0.0 - data.mean) / data.std


def _to_split(
    images: torch.Tensor, labels: torch.Tensor, device: torch.device, mean: float, std: float
) -> Split:
    # Move uint8 (4x smaller than float32), then convert on the device.
    x = images.to(device).unsqueeze(1)  # (N, H, W) -> (N, 1, H, W)
    x = x.to(torch.float32).div_(255.0).sub_(mean).div_(std)
    return Split(images=x.contiguous(), labels=labels.to(device, dtype=torch.int64))


def split_indices(n: int, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded (train, val) index sets over `n` training samples, each in ascending order."""
    if not 0 <= val_size < n:
        raise ConfigError(
            f"val_size={val_size} is out of range: it must be at least 0 and smaller than the "
            f"{n} training images it is held out from. Use e.g. 5000, or 0 for no validation."
        )
    # A CPU generator so the same seed gives the same split on every device.
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[val_size:].sort().values, perm[:val_size].sort().values


def prepare_device_data(
    raw: RawDataset,
    device: torch.device | str = "cpu",
    val_size: int = 5000,
    seed: int = 0,
    scaling: str = "standard",
    subset: int | None = None,
) -> DeviceData:
    """Split off validation from the training set, scale, and move everything to `device`.

    Validation is a random `val_size` part of the training set drawn with `seed` (the test set
    is never touched). `subset` keeps the first `subset` remaining training images and the
    first min(subset, len(test)) test images, for quick runs; validation is unaffected.
    """
    spec = get_dataset_spec(raw.name)
    mean, std = scaling_stats(scaling, spec.mean, spec.std)
    if subset is not None and subset <= 0:
        raise ConfigError(f"subset={subset} must be a positive number of images, or None.")
    device = torch.device(device)
    train_idx, val_idx = split_indices(len(raw.train_labels), val_size, seed)
    test_images, test_labels = raw.test_images, raw.test_labels
    if subset is not None:
        train_idx = train_idx[:subset]
        test_images, test_labels = test_images[:subset], test_labels[:subset]
    images, labels = raw.train_images, raw.train_labels
    # index_select is about twice as fast as advanced indexing for this gather on CPU.
    train = _to_split(
        images.index_select(0, train_idx), labels.index_select(0, train_idx), device, mean, std
    )
    val = (
        _to_split(
            images.index_select(0, val_idx), labels.index_select(0, val_idx), device, mean, std
        )
        if val_size
        else None
    )
    return DeviceData(
        name=spec.name,
        train=train,
        val=val,
        test=_to_split(test_images, test_labels, device, mean, std),
        mean=mean,
        std=std,
        num_classes=spec.num_classes,
        class_names=spec.class_names,
    )


def batch_indices(
    n: int,
    batch_size: int,
    shuffle: bool,
    generator: torch.Generator | None,
    device: torch.device | str,
    drop_last: bool = False,
) -> Iterator[torch.Tensor]:
    """Yield index tensors on `device` that cover range(n) once (an epoch), in batches.

    With `shuffle`, the order is a `torch.randperm` drawn from `generator` (reproducible from its
    seed); the generator may live on another device than `device`.
    """
    if batch_size <= 0:
        raise ConfigError(f"batch_size={batch_size} must be a positive integer.")
    device = torch.device(device)
    if shuffle:
        draw_on = generator.device if generator is not None else device
        order = torch.randperm(n, generator=generator, device=draw_on).to(device)
    else:
        order = torch.arange(n, device=device)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


def iterate_batches(
    split: Split,
    batch_size: int,
    shuffle: bool,
    generator: torch.Generator | None,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (images, labels) batches of `split` by gathering index slices on its device."""
    for idx in batch_indices(
        len(split), batch_size, shuffle, generator, split.images.device, drop_last
    ):
        images = split.images[idx]
        if split.resize_to is not None:
            images = resize_images(images, split.resize_to)
        yield images, split.labels[idx]


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear (antialiased when shrinking) resize of a (B, C, H, W) batch to size x size."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    shrinking = size < images.shape[-1]
    return F.interpolate(
        images, size=(size, size), mode="bilinear", align_corners=False, antialias=shrinking
    )


RESIZE_ONCE_BUDGET_BYTES = 4 << 30  # above this, splits are resized per batch instead


def resize_data(
    data: DeviceData, size: int, budget_bytes: int = RESIZE_ONCE_BUDGET_BYTES
) -> DeviceData:
    """Every split resized to size x size: once, batched, when the result fits `budget_bytes`,
    otherwise marked to be resized batch by batch (224x224 MNIST would need 11 GiB)."""
    splits = [s for s in (data.train, data.val, data.test) if s is not None]
    if all(s.images.shape[-1] == size for s in splits):
        return data
    total_bytes = sum(len(s) * s.images.shape[1] * size * size * 4 for s in splits)
    once = total_bytes <= budget_bytes

    def resized(split: Split | None) -> Split | None:
        if split is None:
            return None
        if not once:
            return Split(split.images, split.labels, resize_to=size)
        chunks = [resize_images(chunk, size) for chunk in split.images.split(4096)]
        return Split(torch.cat(chunks), split.labels)

    return replace(data, train=resized(data.train), val=resized(data.val), test=resized(data.test))


def random_affine(
    images: torch.Tensor,
    generator: torch.Generator,
    degrees: float = 10.0,
    translate: float = 0.1,
    scale: tuple[float, float] = (0.9, 1.1),
    shear_deg: float = 0.0,
    fill: float = 0.0,
) -> torch.Tensor:
    """Apply a different random affine transform to each image of a (B, C, H, W) batch.

    Rotation in [-degrees, degrees], translation up to `translate` x the image size on each
    axis, isotropic scale in `scale`, x-shear in [-shear_deg, shear_deg]; bilinear sampling,
    with `fill` outside the source image. One `affine_grid` + `grid_sample` for the batch.
    """
    if images.ndim != 4:
        raise ValueError(f"random_affine expects (B, C, H, W) images, got {tuple(images.shape)}")
    b, _, h, w = images.shape
    # All parameters in one draw on the generator's device, then moved (B floats each).
    u = torch.rand(5, b, generator=generator, device=generator.device)
    u = u.to(images.device) * 2 - 1  # uniform in [-1, 1)
    angle = u[0] * math.radians(degrees)
    shear = torch.tan(u[1] * math.radians(shear_deg))
    lo, hi = scale
    s = lo + (hi - lo) * (u[2] + 1) / 2
    t_norm = u[3:5] * (2 * translate)  # (2, B); normalised coords span 2 per image side
    # affine_grid wants the inverse map (output -> input): M^-1 = S^-1 Sh^-1 R(-angle), with
    # forward M = R(angle) Sh S. Worked out in closed form so any device can do it.
    cos, sin = torch.cos(angle), torch.sin(angle)
    m00, m01 = (cos + shear * sin) / s, (sin - shear * cos) / s
    m10, m11 = -sin / s, cos / s
    # Pixel to normalised coords is diag(w/2, h/2); conjugating keeps angles right when h != w.
    a00, a01, a10, a11 = m00, m01 * (h / w), m10 * (w / h), m11
    tx, ty = t_norm[0], t_norm[1]
    theta = torch.stack(
        [
            torch.stack([a00, a01, -(a00 * tx + a01 * ty)], dim=1),
            torch.stack([a10, a11, -(a10 * tx + a11 * ty)], dim=1),
        ],
        dim=1,
    ).to(images.dtype)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)  # (B, H, W, 2)
    # grid_sample pads with zeros only, so shift the fill value to zero and back.
    shifted = images - fill if fill else images
    out = F.grid_sample(shifted, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out + fill if fill else out
