"""torch.compile for training, with its warm-up done and timed before the training clock starts.

Compilation happens on the first call of each new input shape (and again for backward, and for
eval under inference mode), so without a warm-up it lands inside the first epoch's training
time. `compile_for_training` runs every shape the run will use on random inputs (never the
data: a sealed test split stays sealed), then restores the weights and buffers it touched.

On the CPU inductor's C++ wrapper is the default (`$MNISTBENCH_COMPILE_WRAPPER`: `cpp` or
`python`): the compiled graph calls its kernels from generated C++ rather than Python, which
measured at least as fast as the Python wrapper on every model timed on the 2-core AVX2 EPYC
(small_cnn_bn 0.852x the eager step against 0.901x, ResNet-50 at 64 px 0.972x against 0.986x,
ResNet-18 1.124x both; `benchmarks/results/step-levers-*.md`) at the price of a longer first
compile, which is timed apart. It changes how the generated kernels are called, not what they
compute; that the numbers match the Python wrapper's is not checked here number for number.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn

from mnistbench.data.device import Split
from mnistbench.engine.device import env_choice, synchronize

COMPILE_WRAPPER_ENV = "MNISTBENCH_COMPILE_WRAPPER"
COMPILE_WRAPPER_CHOICES = ("cpp", "python")


def compile_wrapper(device: str | torch.device) -> str:
    """How a compiled graph calls its kernels on `device`: `cpp` (inductor's C++ wrapper, the
    CPU's default) or `python` (inductor's default, and the only one on CUDA here: the C++
    wrapper has not been timed on a GPU). Recorded by every compiled run."""
    if torch.device(device).type != "cpu":
        return "python"
    return env_choice(
        COMPILE_WRAPPER_ENV,
        COMPILE_WRAPPER_CHOICES,
        "cpp",
        "'cpp' calls a compiled graph's kernels from generated C++ (less overhead a step, a "
        "longer first compile), 'python' from Python (inductor's default).",
    )


def compile_model(model: nn.Module, device: str | torch.device) -> nn.Module:
    """torch.compile(model) with the wrapper `compile_wrapper` chooses for `device`."""
    options = {"cpp_wrapper": True} if compile_wrapper(device) == "cpp" else None
    return torch.compile(model, options=options)


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
    compiled = compile_model(model, device)
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
