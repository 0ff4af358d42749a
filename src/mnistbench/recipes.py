"""Training protocols: how a registered model is trained and scored, run by the one engine.

A model's registration names its protocol (`ModelInfo.protocol`). `supervised` is cross-entropy
training through `engine.fit`; the families of issue 4 add `pretrain_probe` and `greedy_probe`
(their stages are data: objective, budget, frozen parts), and SVMs add `sklearn`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from mnistbench.config import RunConfig
from mnistbench.data import DeviceData
from mnistbench.engine import FitResult, autocast_factory, fit
from mnistbench.engine.loop import EpochRecord
from mnistbench.errors import ConfigError
from mnistbench.objectives import CrossEntropyObjective


@dataclass
class RecipeContext:
    """Everything a protocol needs; it returns a FitResult and may add artefacts and metrics."""

    model: torch.nn.Module
    data: DeviceData
    config: RunConfig
    on_epoch: Callable[[EpochRecord], None]
    add_artefact: Callable[[str, str, bytes | str], None]  # (name, kind, content)
    progress: bool = True
    # Protocol-specific figures for the run's metrics (e.g. compile time, probe fit time).
    extra_metrics: dict[str, object] | None = None

    def record(self, **metrics: object) -> None:
        """Add figures to the run's stored metrics."""
        if self.extra_metrics is None:
            self.extra_metrics = {}
        self.extra_metrics.update(metrics)


def supervised(ctx: RecipeContext) -> FitResult:
    """Cross-entropy training of the whole model with the config's optimizer and schedule."""
    config = ctx.config
    objective = CrossEntropyObjective(
        ctx.model,
        autocast=autocast_factory(config.device, config.precision),
        grad_clip=config.grad_clip,
        label_smoothing=config.label_smoothing,
    )
    return fit(objective, ctx.data, config, on_epoch=ctx.on_epoch, progress=ctx.progress)


PROTOCOLS: dict[str, Callable[[RecipeContext], FitResult]] = {
    "supervised": supervised,
}


def run_protocol(name: str, ctx: RecipeContext) -> FitResult:
    """Run the protocol `name` on `ctx`."""
    if name not in PROTOCOLS:
        raise ConfigError(
            f"Unknown training protocol {name!r}; known: {', '.join(sorted(PROTOCOLS))}."
        )
    return PROTOCOLS[name](ctx)
