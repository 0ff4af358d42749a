"""The objective contract: each objective owns one kind of parameter update.

A GAN (two optimizers, alternating) or a DBN (contrastive divergence, no autograd) cannot be
written as "return a loss", so `step` performs the whole update. Both `step` and `eval_step`
return unsynced tensors; the engine calls `.item()` only where it logs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn

Batch = tuple[torch.Tensor, torch.Tensor]  # (images (B, C, H, W), labels (B,))


class Objective(ABC):
    """Owns the model's update rule.

    `autocast` is a factory for the precision context the engine chose; `grad_clip` is the max
    global gradient norm (None = off).
    """

    def __init__(
        self,
        model: nn.Module,
        autocast: type[AbstractContextManager] | None = None,
        grad_clip: float | None = None,
    ):
        self.model = model
        self._autocast = autocast
        self.grad_clip = grad_clip
        self.optimizers: list[torch.optim.Optimizer] = []

    def autocast(self) -> AbstractContextManager:
        return self._autocast() if self._autocast is not None else nullcontext()

    @abstractmethod
    def configure_optimizers(
        self, build: Callable[[list[nn.Parameter]], torch.optim.Optimizer]
    ) -> list[torch.optim.Optimizer]:
        """Create this objective's optimizers with `build(params)`; remember and return them."""

    @abstractmethod
    def step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One update. Returns unsynced scalars: at least "loss" (batch mean) and "count"."""

    @abstractmethod
    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Sums over the batch (e.g. "loss_sum", "correct", "count"), no parameter change."""

    def clip_gradients(self, parameters: list[torch.Tensor]) -> None:
        if self.grad_clip is not None:
            # foreach keeps it one fused kernel per dtype; no host sync unless asked for
            nn.utils.clip_grad_norm_(parameters, self.grad_clip, foreach=True)
