"""Named training-time augmentation policies, each one batched tensor work on the device.

`RunConfig.augment` names a policy; the engine applies it to every training batch. SimSiam's
views are here too. The studies' own pipelines (torchvision on PIL images) are rebuilt below
with their semantics (`study_d_torchvision`, `simsiam_view_torchvision`); the older combined
single-resample versions stay for the runs recorded with them and as mnistbench's variants.
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
    if policy == "study_d_torchvision":  # study D's notebook, torchvision's semantics
        return study_d_torchvision(images, generator, mean=mean, std=std)
    # mnistbench's earlier reading of study D: one bilinear resample, brightness always first
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


# ---------------------------------------------------------------------------------------------
# torchvision's semantics, batched: what the studies' own pipelines did to each PIL image
# (RandomResizedCrop, RandomHorizontalFlip, RandomRotation, RandomAffine, ColorJitter), written
# as tensor work over a batch because torchvision is not a dependency and a per-image PIL loop
# would cost more than the small models' training steps. Differences left: PIL rounds every
# intermediate image to 8 bits and ColorJitter's contrast to a whole grey level; these work in
# floats.
# ---------------------------------------------------------------------------------------------


def nearest_affine(
    images: torch.Tensor,
    angle_deg: torch.Tensor,
    translate_px: torch.Tensor,
    scale: torch.Tensor,
    shear_deg: torch.Tensor,
    fill: float = 0.0,
) -> torch.Tensor:
    """torchvision's affine of a PIL image with NEAREST sampling, per image of a (B, C, H, W)
    batch: angle (B,) in degrees, translation (B, 2) in pixels (x, y), scale (B,), x-shear (B,)
    in degrees, about the image centre (W/2, H/2).

    As PIL does it: each output pixel's centre (x + 0.5, y + 0.5) goes through the inverse map
    (torchvision's `_get_inverse_affine_matrix`) and takes the source pixel it lands in
    (floor); outside the image it gets `fill`. Positive angles turn the picture clockwise on
    screen (y points down), as torchvision's affine does.
    """
    b, c, h, w = images.shape
    dev = images.device
    rot = torch.deg2rad(angle_deg.to(dev, torch.float64))
    sx = torch.deg2rad(shear_deg.to(dev, torch.float64))
    s = scale.to(dev, torch.float64)
    # forward linear part [[a, b], [c, d]] = rotation x shear (determinant 1); its inverse
    # [[d, -b], [-c, a]] over the scale
    a, bb = torch.cos(rot), -torch.cos(rot) * torch.tan(sx) - torch.sin(rot)
    cc, d = torch.sin(rot), -torch.sin(rot) * torch.tan(sx) + torch.cos(rot)
    m00, m01, m10, m11 = (v[:, None, None] / s[:, None, None] for v in (d, -bb, -cc, a))
    t = translate_px.to(dev, torch.float64)
    cx, cy = w * 0.5, h * 0.5
    ys = torch.arange(h, device=dev, dtype=torch.float64)[None, :, None] + 0.5  # (1, H, 1)
    xs = torch.arange(w, device=dev, dtype=torch.float64)[None, None, :] + 0.5  # (1, 1, W)
    px = xs - cx - t[:, 0, None, None]  # (B, 1, W)
    py = ys - cy - t[:, 1, None, None]  # (B, H, 1)
    src_x = torch.floor(m00 * px + m01 * py + cx).long()  # (B, H, W)
    src_y = torch.floor(m10 * px + m11 * py + cy).long()
    inside = (src_x >= 0) & (src_x < w) & (src_y >= 0) & (src_y < h)
    flat = (src_y.clamp(0, h - 1) * w + src_x.clamp(0, w - 1)).flatten(1)  # (B, H*W)
    out = images.flatten(2).gather(2, flat[:, None, :].expand(-1, c, -1)).view(b, c, h, w)
    return torch.where(inside[:, None], out, torch.full_like(out, fill))


def resized_crop_boxes(
    u: torch.Tensor,
    height: int,
    width: int,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> torch.Tensor:
    """RandomResizedCrop's boxes (B, 4) as (top, left, h, w) from uniforms `u` (attempts, 4, B).

    Per attempt, as torchvision draws it: area fraction in `scale`, log aspect ratio in `ratio`,
    w = round(sqrt(area * ratio)), h = round(sqrt(area / ratio)); an attempt whose box does not
    fit the image is redrawn; the first box that fits is placed uniformly (top in 0..H-h). After
    every attempt fails (torchvision tries 10 times): the centre crop clamped to `ratio`.
    """
    attempts, _, b = u.shape
    area = height * width * (scale[0] + (scale[1] - scale[0]) * u[:, 0].double())
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u[:, 1].double())
    w = torch.round(torch.sqrt(area * aspect)).long()  # half to even, like Python's round
    h = torch.round(torch.sqrt(area / aspect)).long()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)  # (attempts, B)
    top = torch.floor(u[:, 2].double() * (height - h + 1)).long().clamp(min=0)
    left = torch.floor(u[:, 3].double() * (width - w + 1)).long().clamp(min=0)
    # the fallback: centre crop, the whole image unless its ratio is outside `ratio`
    in_ratio = width / height
    if in_ratio < min(ratio):
        fw, fh = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        fw, fh = round(height * max(ratio)), height
    else:
        fw, fh = width, height
    fallback = torch.tensor([(height - fh) // 2, (width - fw) // 2, fh, fw], device=u.device)
    first = torch.where(fits.any(0), fits.long().argmax(0), attempts)  # (B,) attempts = none
    boxes = torch.stack([top, left, h, w], dim=-1)  # (attempts, B, 4)
    boxes = torch.cat([boxes, fallback.expand(1, b, 4)])  # (attempts + 1, B, 4)
    return boxes[first, torch.arange(b, device=u.device)]


def _bilinear_taps(
    start: torch.Tensor, size: torch.Tensor, out: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source taps of resizing a span of `size` pixels at `start` (each (B,)) to `out` pixels
    (half-pixel centres, edges clamped): (i0, i1, weight of i1), each (B, out)."""
    dst = torch.arange(out, device=start.device, dtype=torch.float64)[None] + 0.5
    src = ((dst * size[:, None] / out) - 0.5).clamp(min=0.0)  # within the span
    i0 = torch.floor(src).long()
    i1 = torch.minimum(i0 + 1, size[:, None] - 1)
    return start[:, None] + i0, start[:, None] + i1, src - i0


def resized_crop(images: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Each image's box (top, left, h, w) resized to the full (H, W), bilinear as
    `F.interpolate(..., mode="bilinear", align_corners=False)` (and PIL's bilinear when it
    enlarges, as a crop of the image always does)."""
    b, c, h, w = images.shape
    y0, y1, wy = _bilinear_taps(boxes[:, 0], boxes[:, 2], h)  # (B, H)
    x0, x1, wx = _bilinear_taps(boxes[:, 1], boxes[:, 3], w)  # (B, W)

    def rows(index: torch.Tensor) -> torch.Tensor:  # (B, C, H_out, W)
        return images.gather(2, index[:, None, :, None].expand(b, c, h, w))

    wy = wy.to(images.dtype)[:, None, :, None]
    mixed = rows(y0) * (1 - wy) + rows(y1) * wy

    def cols(index: torch.Tensor) -> torch.Tensor:  # (B, C, H, W_out)
        return mixed.gather(3, index[:, None, None, :].expand(b, c, h, w))

    wx = wx.to(images.dtype)[:, None, None, :]
    return cols(x0) * (1 - wx) + cols(x1) * wx


def _uniform(generator: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=generator, device=generator.device)


def random_affine_params(
    generator: torch.Generator,
    b: int,
    size: tuple[int, int],
    degrees: float,
    translate: float = 0.0,
    scale: tuple[float, float] = (1.0, 1.0),
    shear_deg: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """RandomAffine's draws per image: angle in [-degrees, degrees], a translation of whole
    pixels (round(uniform(-translate * side, translate * side)), half to even), scale, x-shear."""
    h, w = size
    u = _uniform(generator, 5, b).double()
    angle = degrees * (2 * u[0] - 1)
    max_shift = torch.tensor([translate * w, translate * h], dtype=torch.float64, device=u.device)
    shift = torch.round(max_shift[None] * (2 * u[1:3].t() - 1))  # (B, 2)
    s = scale[0] + (scale[1] - scale[0]) * u[3]
    shear = shear_deg * (2 * u[4] - 1)
    return angle, shift, s, shear


def color_jitter(
    images: torch.Tensor,
    generator: torch.Generator,
    strength: float,
    mean: float,
    std: float,
    order: torch.Tensor | None = None,
) -> torch.Tensor:
    """ColorJitter(brightness=s, contrast=s) on grey images, torchvision's way: a factor each in
    [1 - s, 1 + s], applied in a random order per image (its randperm), each step clamped to
    [0, 1] in pixel space: brightness x -> f x; contrast x -> f x + (1 - f) mean(x).
    `order` (B,) bool forces it (True: brightness first), for tests."""
    b = images.shape[0]
    u = _uniform(generator, 3, b).to(images.device)
    brightness = 1 - strength + 2 * strength * u[0]
    contrast = 1 - strength + 2 * strength * u[1]
    brightness_first = (u[2] < 0.5) if order is None else order.to(images.device)
    pixels = jitter_pixels(images * std + mean, brightness, contrast, brightness_first)
    return (pixels - mean) / std


def jitter_pixels(
    pixels: torch.Tensor,
    brightness: torch.Tensor,
    contrast: torch.Tensor,
    brightness_first: torch.Tensor,
) -> torch.Tensor:
    """Brightness and contrast factors (B,) applied to (B, C, H, W) pixels in [0, 1] in the order
    `brightness_first` (B,) picks, clamping after each as torchvision does."""
    b = pixels.shape[0]
    brightness, contrast = brightness.view(b, 1, 1, 1), contrast.view(b, 1, 1, 1)

    def bright(x: torch.Tensor) -> torch.Tensor:
        return (x * brightness).clamp(0, 1)

    def contrasted(x: torch.Tensor) -> torch.Tensor:
        grey = x.mean(dim=(1, 2, 3), keepdim=True)
        return (contrast * x + (1 - contrast) * grey).clamp(0, 1)

    first = brightness_first.view(b, 1, 1, 1)
    return torch.where(first, contrasted(bright(pixels)), bright(contrasted(pixels)))


def study_d_torchvision(
    images: torch.Tensor, generator: torch.Generator, *, mean: float, std: float
) -> torch.Tensor:
    """Study D's notebook: RandomRotation(5), RandomAffine(0, translate 0.05, scale 0.9-1.1,
    shear 10), both NEAREST with black fill, then ColorJitter(brightness 0.1, contrast 0.1)."""
    b, _, h, w = images.shape
    fill = -mean / std
    angle, _, _, _ = random_affine_params(generator, b, (h, w), degrees=5.0)
    no_shift = torch.zeros(b, 2, dtype=torch.float64)
    ones, zeros = torch.ones(b, dtype=torch.float64), torch.zeros(b, dtype=torch.float64)
    rotated = nearest_affine(images, angle, no_shift, ones, zeros, fill)
    _, shift, s, shear = random_affine_params(
        generator, b, (h, w), degrees=0.0, translate=0.05, scale=(0.9, 1.1), shear_deg=10.0
    )
    moved = nearest_affine(rotated, torch.zeros_like(s), shift, s, shear, fill)
    return color_jitter(moved, generator, 0.1, mean, std)


def simsiam_view_torchvision(
    images: torch.Tensor,
    generator: torch.Generator,
    *,
    fill: float = 0.0,
    attempts: int = 10,
) -> torch.Tensor:
    """One SimSiam view per image as study A's pipeline makes it: RandomResizedCrop(28, scale
    0.2-1) (oversized boxes redrawn, up to 10 times), RandomHorizontalFlip, then
    RandomAffine(15°, translate 0.1, scale 0.9-1.1) with NEAREST sampling and whole-pixel
    shifts. `fill` is the scaled value of black."""
    b, _, h, w = images.shape
    boxes = resized_crop_boxes(_uniform(generator, attempts, 4, b), h, w, scale=(0.2, 1.0))
    view = resized_crop(images, boxes.to(images.device))
    flip = (_uniform(generator, b) < 0.5).to(images.device)
    view = torch.where(flip.view(b, 1, 1, 1), view.flip(3), view)
    angle, shift, s, shear = random_affine_params(
        generator, b, (h, w), degrees=15.0, translate=0.1, scale=(0.9, 1.1)
    )
    return nearest_affine(view, angle, shift, s, shear, fill)
