"""torch.compile for training, with its warm-up done and timed before the training clock starts.

Compilation happens on the first call of each new input shape (and again for backward, and for
eval under inference mode), so without a warm-up it lands inside the first epoch's training
time. `compile_for_training` runs every shape the run will use on random inputs (never the
data: a sealed test split stays sealed), then restores the weights and buffers it touched.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn

from mnistbench.data.device import Split
from mnistbench.engine.device import synchronize


def batch_input_shape(split: Split) -> tuple[int, int, int]:
    """(C, H, W) of the batches a split yields: its stored images' shape, or the size it
    resizes each batch to (224 px runs keep 28 px images and resize per batch; a warm-up at
    28 px would leave the 224 px compilation inside epoch 1)."""
    channels, height, width = split.images.shape[1:]
    if split.resize_to is not None:
        height = width = split.resize_to
    return (channels, height, width)


def batch_sizes(n: int, batch_size: int) -> list[int]:
    """The distinct batch sizes one pass over `n` items in batches of `batch_size` produces."""
    sizes = [min(batch_size, n)] if n else []
    if n > batch_size and n % batch_size:
        sizes.append(n % batch_size)
    return sizes


def compile_for_training(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    train_batch_sizes: Iterable[int],
    eval_batch_sizes: Iterable[int],
    device: str | torch.device,
    autocast: Callable[[], AbstractContextManager] | None = None,
) -> tuple[nn.Module, float]:
    """(torch.compile(model), warm-up seconds).

    Warm-up compiles forward + backward in train mode for each training batch size and the
    inference-mode forward for each evaluation batch size, on random (B, C, H, W) inputs; the
    model's state (weights, BN running statistics) is restored afterwards and its gradients
    cleared, so training starts from the same point as without compilation.
    """
    compiled = torch.compile(model)
    context = autocast or nullcontext
    saved = {name: value.detach().clone() for name, value in model.state_dict().items()}
    was_training = model.training
    synchronize(device)
    started = time.perf_counter()
    model.train()
    for size in train_batch_sizes:
        x = torch.randn(size, *input_shape, device=device)
        with context():
            out = compiled(x)
        out.float().sum().backward()
    model.zero_grad(set_to_none=True)
    model.eval()
    with torch.inference_mode():
        for size in eval_batch_sizes:
            with context():
                compiled(torch.randn(size, *input_shape, device=device))
    synchronize(device)
    seconds = time.perf_counter() - started
    model.train(was_training)
    model.load_state_dict(saved)
    return compiled, seconds
