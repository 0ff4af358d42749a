"""Optimizers and learning-rate schedulers built from a RunConfig."""

from __future__ import annotations

import math

import torch

from mnistbench.config import RunConfig

# Devices with fused optimizer kernels in this torch: one kernel per step instead of a Python
# loop over parameters (measured on the MLP at batch 64, 2 CPU cores: Adam step 0.90 -> 0.38 ms).
FUSED_DEVICE_TYPES = ("cpu", "cuda")


def _fused_or_foreach(params: list[torch.nn.Parameter]) -> dict[str, bool]:
    device_types = {p.device.type for p in params}
    if device_types and device_types <= set(FUSED_DEVICE_TYPES):
        return {"fused": True}
    return {"foreach": True}


def build_optimizer(params: list[torch.nn.Parameter], config: RunConfig) -> torch.optim.Optimizer:
    """sgd (momentum, nesterov), adam or adamw, fused where the device has the kernels."""
    implementation = _fused_or_foreach(params)
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov and config.momentum > 0,
            weight_decay=config.weight_decay,
            **implementation,
        )
    optimizer_class = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[config.optimizer]
    return optimizer_class(params, lr=config.lr, weight_decay=config.weight_decay, **implementation)


def total_train_steps(config: RunConfig, steps_per_epoch: int) -> int:
    """Optimizer steps of the whole run: every epoch, or fewer with `train_images` (the run
    stops once that many images were trained on, in the last batch that reaches it)."""
    total_steps = config.epochs * steps_per_epoch
    if config.train_images is not None:
        total_steps = min(total_steps, math.ceil(config.train_images / config.batch_size))
    return total_steps


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: RunConfig, steps_per_epoch: int
) -> tuple[torch.optim.lr_scheduler.LRScheduler | None, str]:
    """The scheduler and when to step it: "epoch" or "step" (ignored when the scheduler is None)."""
    total_steps = total_train_steps(config, steps_per_epoch)
    if config.scheduler == "none":
        return None, "epoch"
    if config.scheduler == "step":
        scheduler = torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=config.step_size, gamma=config.gamma
        )
        return scheduler, "epoch"
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps), "step"
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=total_steps
    )
    return scheduler, "step"
