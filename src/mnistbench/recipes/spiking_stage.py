"""The spike_activity stage kind: after training, the spiking network's firing rates per layer
on held-out images and the spike trains of one digit (stored as data; report/ draws them)."""

from __future__ import annotations

import torch

from mnistbench.artefacts import SPIKE_TRAINS_KIND, spike_trains_json
from mnistbench.engine import FitResult
from mnistbench.recipes.kinds import StageKind, StageRun, held_out_images, register_stage_kind

SPIKE_PROBE_IMAGES = 500  # held-out images whose spikes give the recorded firing rates


def _spike_activity(run: StageRun) -> FitResult:
    """Metrics `spike_rate_<layer>` (spikes per neuron per time step) and `spike_time_steps`;
    artefact `spike_raster` (kind SPIKE_TRAINS_KIND). The model offers `spike_trains(x)` ->
    per-layer (T, B, ...) spikes, time axis first, and `layer_names`."""
    model, data = run.model, run.data
    images, labels = held_out_images(data, SPIKE_PROBE_IMAGES)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            spikes = model.spike_trains(images)
    finally:
        model.train(was_training)
    layers = dict(zip(model.layer_names, spikes, strict=True))
    run.record(
        spike_time_steps=spikes[0].shape[0],
        **{f"spike_rate_{name}": float(layer.float().mean()) for name, layer in layers.items()},
    )
    label = int(labels[0])
    run.ctx.add_artefact(
        "spike_raster",
        SPIKE_TRAINS_KIND,
        spike_trains_json(
            image=images[0] * data.std + data.mean,  # (1, H, W) back to pixels in [0, 1]
            spikes={name: layer[:, 0] for name, layer in layers.items()},  # (T, ...) of digit 0
            title=f"{run.ctx.config.model}: spikes for one held-out digit (label {label})",
        ),
    )
    return FitResult(status="finished")


register_stage_kind(
    StageKind(
        "spike_activity",
        _spike_activity,
        labelled=False,
        records_epochs=False,
        supports_compile=True,  # reads the trained weights; compiling the training changes nothing
        requires=("spike_trains", "layer_names"),
    )
)
