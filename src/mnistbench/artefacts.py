"""Run artefacts as data: image grids as grey PNG bytes, spike trains as compact JSON, per-image
test predictions as compressed arrays.

Training stores what a run produced, not a drawing of it; report/ decides how it looks (it
embeds the PNGs and draws the spike rasters with matplotlib). The PNG writer is a few lines of
zlib by hand because a grey 8-bit image needs nothing more, and training must not load an
imaging or plotting library (matplotlib costs seconds of import and a font cache).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

# the predictions' artefact kind; the store knows it too (exports carry them), so it lives there
from mnistbench.store.records import PREDICTIONS_KIND as PREDICTIONS_KIND

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
PREDICTIONS_FINAL = "predictions_final"  # the final model's test predictions
PREDICTIONS_BEST_VAL = "predictions_best_val"  # the best-validation epoch's, where it differs
PREDICTIONS_MAGIC = b"mnistbench/predictions/1\n"
CORRUPTED_OUTCOMES = "correct_corrupted"  # per-image right/wrong on each corrupted test set
CORRUPTED_MAGIC = b"mnistbench/corrupted-outcomes/1\n"
MAX_CONDITIONS = 64  # a blob claiming more corruptions is refused
_CONDITION = re.compile(r"[a-z][a-z0-9_]{0,31}")  # a corruption's name, as printed
MAX_TEST_IMAGES = 1_000_000  # a blob claiming more is refused (a bad or hostile file)


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


# ------------------------------------------------------------------------------ predictions


@dataclass(frozen=True)
class Predictions:
    """One model's scores on each test image it was scored on, in test-set order."""

    predicted: np.ndarray  # (N,) uint8 predicted class
    labels: np.ndarray  # (N,) uint8 true class
    top_probability: np.ndarray | None  # (N,) float16 probability of the predicted class
    true_probability: np.ndarray | None  # (N,) float16 probability of the true class
    probabilities_absent: str | None = None  # why there are none (e.g. an SVC without them)

    @property
    def n(self) -> int:
        return int(self.labels.size)

    @property
    def correct(self) -> np.ndarray:
        return self.predicted == self.labels

    @property
    def labels_sha256(self) -> str:
        """Tells runs scored on the same test images from others (subsets, other data sets)."""
        return labels_sha256(self.labels)


def labels_sha256(labels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(labels, dtype=np.uint8).tobytes()).hexdigest()


def _planes(values: np.ndarray) -> bytes:
    """float16 values as their high bytes then their low bytes: probabilities near 1 share
    their high byte, so zlib packs the split planes about twice as tight as interleaved."""
    raw = np.ascontiguousarray(values, dtype="<f2").view(np.uint8).reshape(-1, 2)
    return raw[:, 1].tobytes() + raw[:, 0].tobytes()


def _unplanes(data: bytes, n: int) -> np.ndarray:
    planes = np.frombuffer(data, dtype=np.uint8).reshape(2, n)
    return np.stack([planes[1], planes[0]], axis=1).reshape(-1).view("<f2").copy()


def predictions_blob(
    predicted: np.ndarray,
    labels: np.ndarray,
    top_probability: np.ndarray | None = None,
    true_probability: np.ndarray | None = None,
    probabilities_absent: str | None = None,
) -> bytes:
    """The artefact content: a magic line, a JSON header line, then zlib of the uint8 classes,
    the uint8 labels and (when present) the two float16 probabilities (17 KB for a synthetic
    set of 10,000 images). Written by hand: numpy's .npz is a zip of pickle-capable .npy
    files, and this content crosses machines inside JSON-lines exports."""
    predicted = np.asarray(predicted)
    labels = np.asarray(labels)
    n = int(labels.size)
    if predicted.shape != (n,) or labels.shape != (n,):
        raise ValueError(f"predicted {predicted.shape} and labels {labels.shape} differ")
    if n and (
        predicted.min() < 0 or predicted.max() > 255 or labels.min() < 0 or labels.max() > 255
    ):
        raise ValueError("classes must fit in a byte (0-255)")
    has_probabilities = top_probability is not None and true_probability is not None
    header = {
        "n": n,
        "labels_sha256": labels_sha256(labels.astype(np.uint8)),
        "probabilities": has_probabilities,
        "probabilities_absent": None if has_probabilities else (probabilities_absent or "unknown"),
    }
    payload = predicted.astype(np.uint8).tobytes() + labels.astype(np.uint8).tobytes()
    if has_probabilities:
        payload += _planes(np.asarray(top_probability)) + _planes(np.asarray(true_probability))
    line = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("ascii") + b"\n"
    return PREDICTIONS_MAGIC + line + zlib.compress(payload, 9)


def _split_blob(content: bytes, magic: bytes, what: str) -> tuple[dict, bytes]:
    """(JSON header, compressed payload) of a magic-line + header-line + zlib artefact."""
    if not content.startswith(magic):
        raise ValueError(f"not a mnistbench {what} artefact (wrong first line)")
    line, newline, compressed = content[len(magic) :].partition(b"\n")
    if not newline:
        raise ValueError(f"{what} artefact without its header line")
    try:
        header = json.loads(line)
    except ValueError as error:
        raise ValueError(f"{what} header is not JSON: {error}") from error
    if not isinstance(header, dict):
        raise ValueError(f"{what} header is not a JSON object")
    return header, compressed


def _inflate(compressed: bytes, expected: int, what: str) -> bytes:
    """Exactly `expected` bytes out of one whole zlib stream, never inflating past them."""
    try:
        inflater = zlib.decompressobj()
        payload = inflater.decompress(compressed, expected + 1)
    except zlib.error as error:
        raise ValueError(f"{what} payload is not zlib data: {error}") from error
    if not inflater.eof or inflater.unused_data:  # cut short, or something after the end
        raise ValueError(f"{what} payload is not one whole zlib stream")
    if len(payload) != expected:
        raise ValueError(f"{what} payload holds {len(payload)} bytes, not {expected}")
    return payload


def read_predictions(content: bytes) -> Predictions:
    """A predictions artefact back as arrays; ValueError with what is wrong for anything that
    is not one (files are untrusted: every size is checked before it is used)."""
    header, compressed = _split_blob(content, PREDICTIONS_MAGIC, "predictions")
    n = header.get("n")
    if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= MAX_TEST_IMAGES:
        raise ValueError("predictions header has no valid image count 'n'")
    has_probabilities = header.get("probabilities") is True
    payload = _inflate(compressed, n * (6 if has_probabilities else 2), "predictions")
    predicted = np.frombuffer(payload[:n], dtype=np.uint8).copy()
    labels = np.frombuffer(payload[n : 2 * n], dtype=np.uint8).copy()
    if header.get("labels_sha256") != labels_sha256(labels):
        raise ValueError("predictions labels do not match their checksum")
    top = true = None
    if has_probabilities:
        top = _unplanes(payload[2 * n : 4 * n], n)
        true = _unplanes(payload[4 * n : 6 * n], n)
    absent = header.get("probabilities_absent")
    return Predictions(predicted, labels, top, true, str(absent) if absent is not None else None)


# ------------------------------------------------------------------ outcomes on corruptions


@dataclass(frozen=True)
class CorruptedOutcomes:
    """Which test images a model got right on each corrupted copy of the test set: what the
    paired test needs to say whether one model is more robust than another on the same
    corrupted images (`mnistbench compare --on corrupted`)."""

    names: tuple[str, ...]  # the corruptions, in row order
    correct: np.ndarray  # (corruptions, N) bool
    labels_sha256: str  # the clean test labels the images carry
    images_sha256: dict[str, str]  # per corruption: exactly which corrupted images were scored

    @property
    def n(self) -> int:
        return int(self.correct.shape[1])


def corrupted_outcomes_blob(outcomes: CorruptedOutcomes) -> bytes:
    """A magic line, a JSON header line, then zlib of the bits (numpy packbits, one row per
    corruption): 15 corruptions of 10,000 images take at most 19 KB. Bits, not classes: a
    paired test needs only right or wrong, and the classes would be eight times the size in
    every committed run line."""
    correct = np.asarray(outcomes.correct, dtype=bool)
    if correct.ndim != 2 or correct.shape[0] != len(outcomes.names):
        raise ValueError(f"need one row per corruption, got shape {correct.shape}")
    header = {
        "n": int(correct.shape[1]),
        "names": list(outcomes.names),
        "labels_sha256": outcomes.labels_sha256,
        "images_sha256": dict(outcomes.images_sha256),
    }
    line = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("ascii") + b"\n"
    return CORRUPTED_MAGIC + line + zlib.compress(np.packbits(correct, axis=1).tobytes(), 9)


def _hex_digest(value: object) -> bool:
    return (
        isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    )


def read_corrupted_outcomes(content: bytes) -> CorruptedOutcomes:
    """The artefact back as arrays; ValueError with what is wrong for anything else (files
    are untrusted: the header's sizes are checked before the payload is inflated)."""
    header, compressed = _split_blob(content, CORRUPTED_MAGIC, "corrupted-outcomes")
    n, names = header.get("n"), header.get("names")
    if not isinstance(n, int) or isinstance(n, bool) or not 0 < n <= MAX_TEST_IMAGES:
        raise ValueError("corrupted-outcomes header has no valid image count 'n'")
    if (
        not isinstance(names, list)
        or not 0 < len(names) <= MAX_CONDITIONS
        or not all(isinstance(x, str) and _CONDITION.fullmatch(x) for x in names)
        or len(set(names)) != len(names)
    ):
        raise ValueError("corrupted-outcomes header has no valid list of corruption names")
    images = header.get("images_sha256")
    if not isinstance(images, dict) or set(images) != set(names):
        raise ValueError("corrupted-outcomes header needs one images_sha256 per corruption")
    if not all(_hex_digest(v) for v in images.values()) or not _hex_digest(
        header.get("labels_sha256")
    ):
        raise ValueError("corrupted-outcomes header has a checksum that is not SHA-256 hex")
    row_bytes = (n + 7) // 8
    payload = _inflate(compressed, row_bytes * len(names), "corrupted-outcomes")
    packed = np.frombuffer(payload, dtype=np.uint8).reshape(len(names), row_bytes)
    bits = np.unpackbits(packed, axis=1).astype(bool)
    if bits[:, n:].any():  # packbits pads with zeros: a set bit past n means a wrong n
        raise ValueError(f"corrupted-outcomes payload holds more than n = {n} images per row")
    correct = bits[:, :n]
    return CorruptedOutcomes(tuple(names), correct, header["labels_sha256"], dict(images))
