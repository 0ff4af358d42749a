"""Run artefacts stored as data: grey PNGs written by hand, spike trains as JSON."""

from __future__ import annotations

import io
import json

import torch
from PIL import Image

from mnistbench.artefacts import (
    GRID_KEY,
    MAX_NEURONS,
    SPIKE_TRAINS_FORMAT,
    grey_png,
    image_grid_png,
    png_text,
    spike_trains_json,
)
from mnistbench.objectives.base import ImageGrid
from mnistbench.report.raster import spike_raster_png


def test_grey_png_decodes_to_the_same_pixels() -> None:
    rows = [bytes([0, 64, 128]), bytes([255, 1, 2])]
    content = grey_png(rows, {"Title": "two rows"})
    image = Image.open(io.BytesIO(content))
    assert image.mode == "L" and image.size == (3, 2)
    assert image.tobytes() == bytes([0, 64, 128, 255, 1, 2])
    assert png_text(content) == {"Title": "two rows"}


def test_image_grid_png_tiles_scales_and_describes_itself() -> None:
    images = torch.zeros(5, 1, 4, 3)
    images[1] = 1.0  # the second tile white
    content = image_grid_png(ImageGrid(images, "five tiles", ncols=2, row_labels=("a", "b", "c")),
                             scale=2)  # fmt: skip
    image = Image.open(io.BytesIO(content))
    # 3 rows x (4 + 2 pad) + 2, 2 columns x (3 + 2) + 2, each pixel 2 x 2
    assert image.size == ((2 * 5 + 2) * 2, (3 * 6 + 2) * 2)
    pixels = image.load()
    assert pixels[0, 0] == 128  # padding is mid grey
    assert pixels[2 * (2 + 5), 2 * 2] == 255 and pixels[2 * 2, 2 * 2] == 0  # tile 2 white, 1 black
    text = png_text(content)
    assert text["Title"] == "five tiles"
    layout = json.loads(text[GRID_KEY])
    assert layout == {
        "ncols": 2,
        "tile": [4, 3],
        "pad": 2,
        "scale": 2,
        "row_labels": ["a", "b", "c"],
    }


def test_spike_trains_keep_the_most_active_neurons_and_every_rate() -> None:
    steps, neurons = 3, MAX_NEURONS + 4
    spikes = torch.zeros(steps, neurons)
    spikes[:, :MAX_NEURONS] = 1.0  # the first MAX_NEURONS fire at every step
    spikes[1, neurons - 1] = 1.0  # one of the quiet ones fires once
    image = torch.full((1, 2, 2), 0.5)
    stored = json.loads(spike_trains_json(image, {"fc1": spikes}, title="a digit"))
    assert stored["format"] == SPIKE_TRAINS_FORMAT and stored["title"] == "a digit"
    assert stored["image"] == [[128, 128], [128, 128]]
    (layer,) = stored["layers"]
    assert (layer["name"], layer["neurons"], layer["steps"]) == ("fc1", neurons, steps)
    assert layer["shown"] == list(range(MAX_NEURONS))
    assert layer["spike_times"][0] == [0, 1, 2]
    expected_rate = [MAX_NEURONS / neurons, (MAX_NEURONS + 1) / neurons, MAX_NEURONS / neurons]
    assert layer["rate"] == [round(r, 6) for r in expected_rate]
    assert spike_raster_png(json.dumps(stored)).startswith(b"\x89PNG\r\n\x1a\n")
