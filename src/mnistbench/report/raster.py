"""Spike raster of one input as PNG bytes (a run artefact of the spiking models).

Uses `matplotlib.figure.Figure` directly (Agg canvas, no pyplot): no global state, no display.
"""

from __future__ import annotations

import io

import torch
from matplotlib.figure import Figure

MAX_NEURONS = 256  # neurons drawn per layer; wider layers show the most active ones


def spike_raster_png(
    image: torch.Tensor,
    spikes: dict[str, torch.Tensor],
    title: str | None = None,
    dpi: int = 100,
) -> bytes:
    """The input digit, one raster per layer and the layers' firing rates over time.

    `image` is (1, H, W) or (H, W) with pixels in [0, 1]; `spikes` maps a layer name to its
    spikes for this one input, (T, ...) with the time axis first (any neuron layout after it).
    A raster shows up to MAX_NEURONS neurons (the most active ones, in index order).
    """
    layers = {name: s.detach().float().cpu().flatten(1) for name, s in spikes.items()}  # (T, N)
    fig = Figure(figsize=(3.0 + 3.2 * len(layers), 3.4))
    grid = fig.add_gridspec(2, 1 + len(layers), height_ratios=(3, 1.2), hspace=0.5, wspace=0.35)
    ax = fig.add_subplot(grid[:, 0])
    pixels = image.detach().float().cpu().reshape(image.shape[-2:]).numpy()
    ax.imshow(pixels, cmap="gray", vmin=0, vmax=1)
    ax.set_axis_off()
    ax.set_title("input", fontsize=9)
    for column, (name, trains) in enumerate(layers.items(), start=1):
        steps, neurons = trains.shape
        shown = trains
        if neurons > MAX_NEURONS:
            keep = trains.sum(0).topk(MAX_NEURONS).indices.sort().values
            shown = trains[:, keep]
        times, index = shown.nonzero(as_tuple=True)
        ax = fig.add_subplot(grid[0, column])
        ax.scatter(times.numpy(), index.numpy(), s=2, marker="|", color="black", linewidths=0.6)
        ax.set_xlim(-0.5, steps - 0.5)
        ax.set_ylim(-0.5, shown.shape[1] - 0.5)
        ax.set_title(f"{name} ({neurons} neurons)", fontsize=9)
        ax.set_ylabel("neuron", fontsize=8)
        ax.tick_params(labelsize=7)
        rate = fig.add_subplot(grid[1, column], sharex=ax)
        rate.plot(range(steps), trains.mean(1).numpy(), color="tab:red", linewidth=1)
        rate.set_xlabel("time step", fontsize=8)
        rate.set_ylabel("rate", fontsize=8)
        rate.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()
