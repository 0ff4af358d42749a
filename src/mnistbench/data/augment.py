"""Named training-time augmentation policies, each one batched tensor work on the device.

`RunConfig.augment` names a policy; the engine applies it to every training batch.
"""

from __future__ import annotations

import torch

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
