"""Run artefacts as data: image grids as grey PNG bytes, spike trains as compact JSON.

Training stores what a run produced, not a drawing of it; report/ decides how it looks (it
embeds the PNGs and draws the spike rasters with matplotlib). The PNG writer is a few lines of
zlib by hand because a grey 8-bit image needs nothing more, and training must not load an
imaging or plotting library (matplotlib costs seconds of import and a font cache).
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from mnistbench.objectives.base import ImageGrid

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GRID_KEY = "mnistbench-grid"  # tEXt keyword of an image grid's layout (JSON)
SPIKE_TRAINS_KIND = "spike_trains"  # artefact kind: JSON, see spike_trains_json
SPIKE_TRAINS_FORMAT = "mnistbench/spike-trains/1"
MAX_NEURONS = 256  # neurons kept per layer; wider layers keep the most active ones
PAD = 2  # pixels of background between tiles
SCALE = 2  # each image pixel becomes SCALE x SCALE PNG pixels (28-pixel digits are tiny)


# ------------------------------------------------------------------------------------- PNG


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def grey_png(rows: list[bytes], text: Mapping[str, str] | None = None) -> bytes:
    """An 8-bit greyscale PNG of `rows` (equal-length bytes, one per pixel row, top first),
    with `text` as tEXt chunks (Latin-1 keyword and value)."""
    height, width = len(rows), len(rows[0]) if rows else 0
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # depth 8, grey, no interlace
    raw = b"".join(b"\x00" + row for row in rows)  # filter type 0 (none) before every row
    texts = [
        _chunk(b"tEXt", key.encode("latin-1") + b"\x00" + value.encode("latin-1"))
        for key, value in (text or {}).items()
    ]
    return b"".join(
        [
            PNG_SIGNATURE,
            _chunk(b"IHDR", header),
            *texts,
            _chunk(b"IDAT", zlib.compress(raw, 9)),
            _chunk(b"IEND", b""),
        ]
    )


def png_text(content: bytes) -> dict[str, str]:
    """The tEXt chunks of a PNG, keyword -> value (an image grid's title and layout)."""
    if not content.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG")
    texts, offset = {}, len(PNG_SIGNATURE)
    while offset + 8 <= len(content):
        length, kind = struct.unpack(">I4s", content[offset : offset + 8])
        data = content[offset + 8 : offset + 8 + length]
        if kind == b"tEXt":
            key, _, value = data.partition(b"\x00")
            texts[key.decode("latin-1")] = value.decode("latin-1")
        offset += 12 + length
    return texts


# ------------------------------------------------------------------------------ image grids


def tile_images(images: torch.Tensor, ncols: int, pad: int = PAD) -> torch.Tensor:
    """(N, 1, H, W) or (N, H, W) images -> one (rows*(H+pad)+pad, ncols*(W+pad)+pad) mosaic.

    Empty cells and padding are 0.5 grey, so black and white tiles both stand out.
    """
    import torch

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


def image_grid_png(grid: ImageGrid, scale: int = SCALE) -> bytes:
    """An ImageGrid (values in [0, 1], clamped) as grey PNG bytes. Its title and layout
    travel in tEXt chunks: "Title", and GRID_KEY = {"ncols", "tile": [h, w], "pad", "scale",
    "row_labels"}, so a report can caption it and label its rows."""
    import torch

    mosaic = tile_images(grid.images.clamp(0, 1), grid.ncols)
    pixels = (mosaic * 255).round().to(torch.uint8)
    pixels = pixels.repeat_interleave(scale, 0).repeat_interleave(scale, 1)
    layout = {
        "ncols": max(1, min(grid.ncols, len(grid.images))),
        "tile": list(grid.images.shape[-2:]),
        "pad": PAD,
        "scale": scale,
        "row_labels": list(grid.row_labels),
    }
    rows = [bytes(row) for row in pixels.numpy()]
    return grey_png(rows, {"Title": grid.title, GRID_KEY: json.dumps(layout)})


# ------------------------------------------------------------------------------ spike trains


def spike_trains_json(
    image: torch.Tensor, spikes: Mapping[str, torch.Tensor], title: str = ""
) -> str:
    """One input's spikes as compact JSON, for report/raster.py to draw.

    `image` is (1, H, W) or (H, W) in [0, 1]; `spikes` maps a layer name to its spikes for
    this input, (T, ...) with the time axis first. Stored per layer: "neurons" (its width),
    "rate" (its firing rate at each step, all neurons), "shown" (up to MAX_NEURONS neuron
    indices, the most active, in index order) and "spike_times" (for each shown neuron, the
    steps it fired at). The image is stored as rows of 0-255 grey values.
    """
    import torch

    pixels = (image.detach().float().cpu().reshape(image.shape[-2:]).clamp(0, 1) * 255).round()
    layers = []
    for name, layer in spikes.items():
        trains = layer.detach().float().cpu().flatten(1)  # (T, ...) -> (T, N)
        steps, neurons = trains.shape
        shown = trains.sum(0).topk(min(MAX_NEURONS, neurons)).indices.sort().values
        layers.append(
            {
                "name": name,
                "neurons": neurons,
                "steps": steps,
                "rate": [round(float(r), 6) for r in trains.mean(1)],
                "shown": shown.tolist(),
                "spike_times": [trains[:, i].nonzero().flatten().tolist() for i in shown.tolist()],
            }
        )
    payload = {
        "format": SPIKE_TRAINS_FORMAT,
        "title": title,
        "image": pixels.to(torch.uint8).tolist(),
        "layers": layers,
    }
    return json.dumps(payload, separators=(",", ":"))
