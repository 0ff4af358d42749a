"""The objective contract: each objective owns one kind of parameter update.

A GAN (two optimizers, alternating) or a DBN (contrastive divergence, no autograd) cannot be
written as "return a loss", so `step` performs the whole update. Both `step` and `eval_step`
return unsynced tensors; the engine calls `.item()` only where it logs. Besides the three
required methods an objective may offer per-epoch figures (`epoch_figures`) and pictures
(`pictures`); the stage runner records what they return.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

if TYPE_CHECKING:
    from mnistbench.options import OptionValue, StageOption

Batch = tuple[torch.Tensor, torch.Tensor]  # (images (B, C, H, W), labels (B,))


@dataclass(frozen=True)
class StageInputs:
    """What the stage runner tells an objective about its run (`Objective.for_stage`)."""

    autocast: type[AbstractContextManager] | None = None  # precision context factory
    grad_clip: float | None = None  # max global gradient L2 norm; None = off
    scale_gradients: bool = False  # fp16: a gradient scaler keeps small gradients from underflow
    seed: int = 0
    batch_size: int = 128
    train_size: int = 0  # images in the training split
    mean: float = 0.0  # the data's scaling: pixels = x * std + mean
    std: float = 1.0

    def precision_kwargs(self) -> dict[str, object]:
        """The keyword arguments every Objective takes: autocast, grad_clip, scale_gradients."""
        return {
            "autocast": self.autocast,
            "grad_clip": self.grad_clip,
            "scale_gradients": self.scale_gradients,
        }


@dataclass
class ImageGrid:
    """Images an objective offers as a picture of the run: (N, 1, H, W) in [0, 1]."""

    images: torch.Tensor
    title: str
    ncols: int = 8
    row_labels: tuple[str, ...] = ()  # a name per grid row ("clean", "noisy", ...)


class Objective(ABC):
    """Owns the model's update rule.

    `autocast` is a factory for the precision context the engine chose; `grad_clip` is the max
    global gradient norm (None = off); `scale_gradients` turns on a loss scaler per optimizer
    (fp16, whose small gradients would otherwise round to zero). A stage that builds the
    objective from its recipe calls `for_stage`; `name`, `options` and `requires` say how a
    recipe names it, which `--model-option`s it reads and what it uses on the model.
    """

    name: ClassVar[str] = ""
    options: ClassVar[tuple[StageOption, ...]] = ()
    requires: ClassVar[tuple[str, ...]] = ()  # attributes it uses on the model
    extra: EpochMeans | None = None  # per-epoch means of extra figures, see epoch_figures

    def __init__(
        self,
        model: nn.Module,
        autocast: type[AbstractContextManager] | None = None,
        grad_clip: float | None = None,
        *,
        scale_gradients: bool = False,
    ):
        self.model = model
        self._autocast = autocast
        self.grad_clip = grad_clip
        self.scale_gradients = scale_gradients
        self.optimizers: list[torch.optim.Optimizer] = []
        self._scalers: dict[int, torch.amp.GradScaler] = {}

    @classmethod
    def for_stage(cls, model: nn.Module, inputs: StageInputs, **options: OptionValue) -> Objective:
        """The objective a recipe stage trains with: the run's precision and clipping, plus
        the stage's options. Objectives that need more of the run (seed, scaling) override."""
        return cls(model, **inputs.precision_kwargs(), **options)

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

    def epoch_figures(self) -> dict[str, float]:
        """Extra per-epoch figures (the KL term, D and G losses); read once per epoch. An
        objective that keeps them in `self.extra` (EpochMeans) gets their means here."""
        return self.extra.pop() if self.extra is not None else {}

    def pictures(self, images: torch.Tensor) -> dict[str, ImageGrid]:
        """Named image grids showing what the objective learned, from held-out `images`."""
        return {}

    def clip_gradients(self, parameters: list[torch.Tensor]) -> None:
        if self.grad_clip is not None:
            # foreach keeps it one fused kernel per dtype; no host sync unless asked for
            nn.utils.clip_grad_norm_(parameters, self.grad_clip, foreach=True)

    def optimizer_step(
        self,
        loss: torch.Tensor,
        optimizer: torch.optim.Optimizer,
        parameters: list[torch.Tensor],
    ) -> None:
        """zero_grad, backward, clip, step: the one place an objective updates through autograd.

        With `scale_gradients` (fp16) the loss is multiplied by a running scale before
        backward, and the gradients divided by it before clipping (torch.amp.GradScaler: a
        step whose gradients overflowed is skipped and the scale lowered). Each optimizer
        has its own scaler, so a GAN's two players scale independently.
        """
        optimizer.zero_grad(set_to_none=True)
        scaler = self._scaler(optimizer, loss.device)
        scaler.scale(loss).backward()
        if self.grad_clip is not None:
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            self.clip_gradients(parameters)
        scaler.step(optimizer)
        scaler.update()

    def _scaler(
        self, optimizer: torch.optim.Optimizer, device: torch.device
    ) -> torch.amp.GradScaler:
        key = id(optimizer)
        if key not in self._scalers:
            # disabled, GradScaler is a pass-through: scale() returns the loss, step() steps
            self._scalers[key] = torch.amp.GradScaler(device.type, enabled=self.scale_gradients)
        return self._scalers[key]


class EpochMeans:
    """Running means of extra per-step figures (e.g. the KL term, D and G losses) over an epoch.

    Accumulates unsynced tensors; `pop` syncs once, returns the means and starts a new epoch.
    """

    def __init__(self) -> None:
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}

    def add(self, weight: int, **values: torch.Tensor) -> None:
        for key, value in values.items():
            value = value.detach().float() * weight
            self._sums[key] = self._sums[key] + value if key in self._sums else value
            self._counts[key] = self._counts.get(key, 0) + weight

    def pop(self) -> dict[str, float]:
        means = {k: float(v.item()) / max(self._counts[k], 1) for k, v in self._sums.items()}
        self._sums, self._counts = {}, {}
        return means
