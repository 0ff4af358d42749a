"""Spike raster of one input as PNG bytes, drawn from a run's stored spike trains.

The spiking models' `spike_raster` artefact (kind "spike_trains") is data: JSON written by
`mnistbench.artefacts.spike_trains_json` at train time. This draws it. Uses
`matplotlib.figure.Figure` directly (Agg canvas, no pyplot): no global state, no display.
"""

from __future__ import annotations

import io
import json

import numpy as np
from matplotlib.figure import Figure

from mnistbench.artefacts import SPIKE_TRAINS_FORMAT


def spike_raster_png(trains: str | bytes | dict, dpi: int = 100) -> bytes:
    """The input digit, one raster per layer (its stored, most active neurons) and the
    layers' firing rates over time, from a stored `spike_trains` artefact (JSON or its dict)."""
    data = trains if isinstance(trains, dict) else json.loads(trains)
    if data.get("format") != SPIKE_TRAINS_FORMAT:
        raise ValueError(f"not a {SPIKE_TRAINS_FORMAT} artefact: format {data.get('format')!r}")
    layers = data["layers"]
    fig = Figure(figsize=(3.0 + 3.2 * len(layers), 3.4))
    grid = fig.add_gridspec(2, 1 + len(layers), height_ratios=(3, 1.2), hspace=0.5, wspace=0.35)
    ax = fig.add_subplot(grid[:, 0])
    ax.imshow(np.asarray(data["image"], dtype=np.uint8), cmap="gray", vmin=0, vmax=255)
    ax.set_axis_off()
    ax.set_title("input", fontsize=9)
    for column, layer in enumerate(layers, start=1):
        steps = layer["steps"]
        times = [t for train in layer["spike_times"] for t in train]
        rows = [row for row, train in enumerate(layer["spike_times"]) for _ in train]
        ax = fig.add_subplot(grid[0, column])
        ax.scatter(times, rows, s=2, marker="|", color="black", linewidths=0.6)
        ax.set_xlim(-0.5, steps - 0.5)
        ax.set_ylim(-0.5, len(layer["shown"]) - 0.5)
        ax.set_title(f"{layer['name']} ({layer['neurons']} neurons)", fontsize=9)
        ax.set_ylabel("neuron", fontsize=8)
        ax.tick_params(labelsize=7)
        rate = fig.add_subplot(grid[1, column], sharex=ax)
        rate.plot(range(steps), layer["rate"], color="tab:red", linewidth=1)
        rate.set_xlabel("time step", fontsize=8)
        rate.set_ylabel("rate", fontsize=8)
        rate.tick_params(labelsize=7)
    if data.get("title"):
        fig.suptitle(data["title"], fontsize=10)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()
