"""Shared pieces of the label-free (pretext) objectives: SimSiam, VAE, denoising, adversarial.

Pretext objectives never read labels. Their `eval_step` reports the pretext loss with
`correct` = 0 and no predictions, because the engine's evaluate expects those keys; the stage
runner records those epochs with no accuracy (None), not 0%. A recipe names one with
`recipes.pretext(TheObjective)`; its `options` are the stage's `--model-option`s.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable

import torch
from torch import nn

from mnistbench.objectives.base import Batch, EpochMeans, Objective

__all__ = ["EpochMeans", "PretextObjective", "pretext_eval_sums", "pretext_parameters"]


def pretext_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Every trainable parameter except the probe head's (the probe trains the head later)."""
    head = {id(p) for p in model.head.parameters()}
    return [p for p in model.parameters() if p.requires_grad and id(p) not in head]


class PretextObjective(Objective):
    """A label-free objective with one optimizer over every parameter but the probe head;
    `step` minimises `batch_loss`. Subclasses say what the loss is, not how to update."""

    def configure_optimizers(
        self, build: Callable[[list[nn.Parameter]], torch.optim.Optimizer]
    ) -> list[torch.optim.Optimizer]:
        self.parameters = pretext_parameters(self.model)
        self.optimizers = [build(self.parameters)]
        return self.optimizers

    @abstractmethod
    def batch_loss(self, images: torch.Tensor) -> torch.Tensor:
        """The mean loss of one training batch, with its graph, for `step` to minimise."""

    def step(self, batch: Batch) -> dict[str, torch.Tensor]:
        images, _ = batch  # labels are never read
        (optimizer,) = self.optimizers
        loss = self.batch_loss(images)
        self.optimizer_step(loss, optimizer, self.parameters)
        return {"loss": loss.detach(), "count": torch.tensor(len(images))}


def pretext_eval_sums(loss_sum: torch.Tensor, count: int) -> dict[str, torch.Tensor]:
    """eval_step output of a label-free objective: the summed loss, no predictions."""
    device = loss_sum.device
    return {
        "loss_sum": loss_sum.detach().float(),
        "correct": torch.zeros((), dtype=torch.long, device=device),
        "count": torch.tensor(count, device=device),
        "predictions": torch.empty(0, dtype=torch.long, device=device),
    }
