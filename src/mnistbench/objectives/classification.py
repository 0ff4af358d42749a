"""Supervised classification with cross-entropy on logits (MLP, CNN, ResNet, ...)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from mnistbench.objectives.base import Batch, Objective


class CrossEntropyObjective(Objective):
    """Minimise cross-entropy of `model(x)` against integer labels."""

    name = "cross_entropy"

    def __init__(self, *args, label_smoothing: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.label_smoothing = label_smoothing  # fraction of target mass spread over all classes

    def configure_optimizers(
        self, build: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]
    ) -> list[torch.optim.Optimizer]:
        self.parameters = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizers = [build(self.parameters)]
        return self.optimizers

    def step(self, batch: Batch) -> dict[str, torch.Tensor]:
        images, labels = batch
        (optimizer,) = self.optimizers
        with self.autocast():
            logits = self.model(images)
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)
        self.optimizer_step(loss, optimizer, self.parameters)
        correct = (logits.detach().argmax(dim=1) == labels).sum()
        return {"loss": loss.detach(), "correct": correct, "count": labels.new_tensor(len(labels))}

    @torch.inference_mode()
    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        images, labels = batch
        with self.autocast():
            logits = self.model(images).float()
        predictions = logits.argmax(dim=1)
        probabilities = logits.softmax(dim=1)  # (B, classes), kept per image for the run
        return {
            "loss_sum": F.cross_entropy(logits, labels, reduction="sum"),
            "correct": (predictions == labels).sum(),
            "count": labels.new_tensor(len(labels)),
            "predictions": predictions,
            "top_probability": probabilities.max(dim=1).values,
            "true_probability": probabilities.gather(1, labels[:, None]).squeeze(1),
        }
