"""Image grids as PNG bytes, stored as run artefacts (GAN samples, VAE reconstructions, U-Net
denoising, DBN filters, ...). One helper for every family, so the pictures look alike.

Uses `matplotlib.figure.Figure` directly (Agg canvas, no pyplot): no global state, no display.
"""

from __future__ import annotations

import io
import math

import torch
from matplotlib.figure import Figure

PAD = 2  # pixels of background between tiles


def tile_images(images: torch.Tensor, ncols: int, pad: int = PAD) -> torch.Tensor:
    """(N, 1, H, W) or (N, H, W) images -> one (rows*(H+pad)+pad, ncols*(W+pad)+pad) mosaic.

    Empty cells and padding are 0.5 grey, so black and white tiles both stand out.
    """
    if images.ndim == 4:
        images = images[:, 0]  # (N, 1, H, W) -> (N, H, W); grey images only
    if images.ndim != 3:
        raise ValueError(f"tile_images expects (N, 1, H, W) or (N, H, W), got {images.shape}")
    n, h, w = images.shape
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    mosaic = torch.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad), 0.5)
    for index, tile in enumerate(images.detach().float().cpu()):
        row, col = divmod(index, ncols)
        top, left = pad + row * (h + pad), pad + col * (w + pad)
        mosaic[top : top + h, left : left + w] = tile
    return mosaic


def image_grid_png(
    images: torch.Tensor,
    ncols: int = 8,
    title: str | None = None,
    row_labels: list[str] | None = None,
    scale: float = 0.45,
    dpi: int = 100,
) -> bytes:
    """A grid of grey images with values in [0, 1] (clamped) as PNG bytes.

    `row_labels` names each row of the grid (e.g. "clean", "noisy", "denoised"); `scale` is
    inches per tile.
    """
    mosaic = tile_images(images.clamp(0, 1), ncols)
    n = images.shape[0]
    nrows = math.ceil(n / max(1, min(ncols, n)))
    label_space = 0.9 if row_labels else 0.0
    fig = Figure(figsize=(min(ncols, n) * scale + label_space, nrows * scale + 0.4 * bool(title)))
    ax = fig.add_axes(
        (label_space / fig.get_figwidth(), 0, 1 - label_space / fig.get_figwidth(), 1)
    )
    if title:
        ax.set_position(
            (ax.get_position().x0, 0, ax.get_position().width, 1 - 0.4 / fig.get_figheight())
        )
        fig.suptitle(title, fontsize=9, y=0.995, va="top")
    ax.imshow(mosaic.numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if row_labels:
        tile_h = images.shape[-2] + PAD
        ax.set_yticks([PAD + tile_h * i + (tile_h - PAD) / 2 for i in range(len(row_labels))])
        ax.set_yticklabels(row_labels, fontsize=8)
        ax.tick_params(axis="y", length=0)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()
