"""Named training-time augmentation policies, each one batched tensor work on the device.

`RunConfig.augment` names a policy; the engine applies it to every training batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mnistbench.data.device import random_affine


def _brightness_contrast(
    images: torch.Tensor,
    generator: torch.Generator,
    strength: float,
    mean: float,
    std: float,
) -> torch.Tensor:
    """torchvision ColorJitter(brightness=s, contrast=s) on grey images, a factor per image.

    Works in pixel space ([0, 1]) and maps back, because jitter factors are defined there.
    """
    b = images.shape[0]
    u = torch.rand(2, b, 1, 1, 1, generator=generator, device=generator.device).to(images.device)
    brightness = 1 - strength + 2 * strength * u[0]
    contrast = 1 - strength + 2 * strength * u[1]
    pixels = (images * std + mean) * brightness
    grey_mean = pixels.mean(dim=(1, 2, 3), keepdim=True)
    pixels = ((pixels - grey_mean) * contrast + grey_mean).clamp(0, 1)
    return (pixels - mean) / std


def augment_batch(
    policy: str,
    images: torch.Tensor,
    generator: torch.Generator,
    *,
    mean: float,
    std: float,
) -> torch.Tensor:
    """Apply the policy named `policy` (config.AUGMENTATIONS) to a (B, C, H, W) batch.

    `mean`/`std` describe the batch's scaling (DeviceData.mean/std), so the background fill and
    the brightness/contrast jitter happen at the right pixel values.
    """
    fill = -mean / std  # where a black pixel lands after scaling
    if policy == "none":
        return images
    if policy == "affine":  # generic: rotation 10°, translation 10%, scale 0.9-1.1
        return random_affine(images, generator, fill=fill)
    if policy == "study_d":  # rotation 5°, affine(translate 0.05, scale 0.9-1.1, shear 10), jitter
        moved = random_affine(
            images,
            generator,
            degrees=5.0,
            translate=0.05,
            scale=(0.9, 1.1),
            shear_deg=10.0,
            fill=fill,
        )
        return _brightness_contrast(moved, generator, 0.1, mean, std)
    if policy == "rotate7":  # study E's diet_4: RandomRotation(±7°)
        return random_affine(
            images, generator, degrees=7.0, translate=0.0, scale=(1.0, 1.0), fill=fill
        )
    raise ValueError(f"unknown augmentation policy {policy!r}")


def simsiam_view(
    images: torch.Tensor,
    generator: torch.Generator,
    *,
    fill: float = 0.0,
    crop_scale: tuple[float, float] = (0.2, 1.0),
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip_p: float = 0.5,
    degrees: float = 15.0,
    translate: float = 0.1,
    scale: tuple[float, float] = (0.9, 1.1),
) -> torch.Tensor:
    """One random SimSiam view of each image of a (B, C, H, W) batch (study A's SimSiam).

    torchvision's RandomResizedCrop(scale 0.2-1, ratio 3/4-4/3) + RandomHorizontalFlip +
    RandomAffine(15°, translate 0.1, scale 0.9-1.1), composed into one affine map per image and
    sampled once (one `grid_sample`, so one bilinear interpolation instead of three). Unlike
    torchvision, a crop whose side would exceed the image is clamped to the image instead of
    redrawn (up to 10 times, then centre-cropped). `fill` is the scaled value of black.
    """
    b, _, h, w = images.shape
    u = torch.rand(9, b, generator=generator, device=generator.device).to(images.device)
    # Crop: area fraction and log aspect ratio, as torchvision draws them.
    area = crop_scale[0] + (crop_scale[1] - crop_scale[0]) * u[0]
    log_lo, log_hi = math.log(crop_ratio[0]), math.log(crop_ratio[1])
    ratio = torch.exp(log_lo + (log_hi - log_lo) * u[1])
    half_w = torch.sqrt(area * ratio).clamp(max=1.0)  # crop half-width in normalised coords
    half_h = torch.sqrt(area / ratio).clamp(max=1.0)
    centre_x = (1 - half_w) * (2 * u[2] - 1)  # the crop stays inside the image
    centre_y = (1 - half_h) * (2 * u[3] - 1)
    flip = torch.where(u[4] < flip_p, -1.0, 1.0)
    # Affine on the cropped view, as its inverse map (output -> view), like random_affine.
    angle = (2 * u[5] - 1) * math.radians(degrees)
    s = scale[0] + (scale[1] - scale[0]) * u[6]
    tx = (2 * u[7] - 1) * 2 * translate  # normalised coords span 2 per image side
    ty = (2 * u[8] - 1) * 2 * translate
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    a00, a01, a10, a11 = cos, sin * (h / w), -sin * (w / h), cos
    b0, b1 = -(a00 * tx + a01 * ty), -(a10 * tx + a11 * ty)
    # source = Crop(Flip(view)): x_src = half_w * flip * x_view + centre_x, y likewise.
    sx, sy = half_w * flip, half_h
    theta = torch.stack(
        [
            torch.stack([sx * a00, sx * a01, sx * b0 + centre_x], dim=1),
            torch.stack([sy * a10, sy * a11, sy * b1 + centre_y], dim=1),
        ],
        dim=1,
    ).to(images.dtype)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)  # (B, H, W, 2)
    shifted = images - fill if fill else images  # grid_sample pads with zeros only
    out = F.grid_sample(shifted, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out + fill if fill else out
