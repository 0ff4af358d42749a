"""fp16 autocast trains through a gradient scaler (Objective.optimizer_step), on the CPU too.

torch 2.13 runs float16 autocast on the CPU (linear and conv layers compute in fp16) and
`torch.amp.GradScaler("cpu")` works, so these run without a GPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
import torch
from torch import nn

from mnistbench.data import prepare_device_data
from mnistbench.engine import autocast_factory
from mnistbench.experiments.configure import make_config
from mnistbench.models import create_model, get_model_info
from mnistbench.objectives import Objective
from mnistbench.objectives.adversarial import AdversarialObjective
from mnistbench.recipes import SUPERVISED, RecipeContext, run_recipe
from synthetic import learnable_raw

FP16 = autocast_factory("cpu", "fp16")


class TinyLossObjective(Objective):
    """A linear layer whose loss is so small (1e-9 x the output) that its fp16 gradients
    (about 1e-9, below fp16's smallest subnormal 6e-8) round to zero unless scaled."""

    def configure_optimizers(self, build: Callable) -> list[torch.optim.Optimizer]:
        self.parameters = list(self.model.parameters())
        self.optimizers = [torch.optim.SGD(self.parameters, lr=1.0)]
        return self.optimizers

    def step(self, batch):
        images, _ = batch
        with self.autocast():
            loss = self.model(images).float().sum() * 1e-9
        self.optimizer_step(loss, self.optimizers[0], self.parameters)
        return {"loss": loss.detach(), "count": torch.tensor(len(images))}

    def eval_step(self, batch):
        raise NotImplementedError


@pytest.mark.parametrize("scale", [True, False])
def test_without_the_scaler_fp16_gradients_underflow_and_nothing_learns(scale: bool) -> None:
    torch.manual_seed(0)
    layer = nn.Linear(8, 4)
    before = layer.weight.detach().clone()
    objective = TinyLossObjective(layer, autocast=FP16, scale_gradients=scale)
    objective.configure_optimizers(lambda params: None)
    objective.step((torch.randn(16, 8), torch.zeros(16)))
    moved = (layer.weight - before).abs().max().item()
    if scale:
        assert moved > 0  # scaled by 2**16 before backward, unscaled after: ~1e-9 survives
        assert objective._scalers[id(objective.optimizers[0])].get_scale() == 2.0**16
    else:
        assert moved == 0  # every gradient rounded to zero in fp16


def test_fp16_training_on_the_cpu_lowers_the_loss_through_a_scaler(monkeypatch) -> None:
    """The recipe path: precision fp16 in the run's settings -> the stage's objective scales
    its loss (a GradScaler enabled for the CPU) -> the model learns."""
    scalers = []
    real = torch.amp.GradScaler

    def recording(*args, **kwargs):
        scaler = real(*args, **kwargs)
        scalers.append(scaler)
        return scaler

    monkeypatch.setattr(torch.amp, "GradScaler", recording)
    # fp16 on the CPU: set past validation, which (until the CLI owner relaxes it) wants CUDA
    config = replace(make_config("mlp", epochs=2, batch_size=32, val_size=100), precision="fp16")
    data = prepare_device_data(learnable_raw(400, 100), val_size=100)
    torch.manual_seed(0)
    rows = []
    ctx = RecipeContext(create_model("mlp"), data, config, rows.append, lambda *a: None,
                        progress=False)  # fmt: skip
    result = run_recipe(ctx, SUPERVISED)
    assert result.status == "finished"
    assert [s.is_enabled() for s in scalers] == [True] and scalers[0].get_scale() > 1
    losses = [row.train_loss for row in rows]
    assert losses[-1] < 0.5 * losses[0] and rows[-1].val_accuracy > 0.9


def test_a_gan_scales_each_players_gradients_on_its_own() -> None:
    torch.manual_seed(0)
    model = create_model("gan")
    assert get_model_info("gan").input_scaling == "symmetric"
    objective = AdversarialObjective(model, autocast=FP16, scale_gradients=True)
    objective.configure_optimizers(lambda params: torch.optim.Adam(params, lr=1e-3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.rand(8, 1, 28, 28) * 2 - 1
    out = objective.step((images, torch.zeros(8)))
    assert torch.isfinite(out["loss"])
    assert len(objective._scalers) == 2  # one per optimizer: D's and G's
    changed = {
        k.split(".")[0] for k, v in model.state_dict().items() if not torch.equal(v, before[k])
    }
    assert {"generator", "discriminator"} <= changed
