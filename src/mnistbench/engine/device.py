"""Device choice, synchronisation and autocast: the only place that knows device kinds."""

from __future__ import annotations

import functools
from contextlib import AbstractContextManager

import torch

from mnistbench.errors import ConfigError


def resolve_device(choice: str = "auto") -> str:
    """'auto' -> cuda, then mps, then cpu; an explicit device that is absent is a ConfigError."""
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": getattr(torch.backends, "mps", None) is not None
        and torch.backends.mps.is_available(),
    }
    if choice == "auto":
        return next(d for d in ("cuda", "mps", "cpu") if available[d])
    if choice not in available:
        raise ConfigError(f"Unknown --device {choice!r}. Choose one of auto, cpu, cuda, mps.")
    if not available[choice]:
        raise ConfigError(
            f"--device {choice} was asked for, but this machine's PyTorch "
            f"({torch.__version__}) sees no {choice.upper()} device. "
            "Use --device cpu, or --device auto to take the best one present."
        )
    return choice


def synchronize(device: str | torch.device) -> None:
    """Wait for queued kernels, so a clock read after it measures finished work."""
    kind = torch.device(device).type
    if kind == "cuda":
        torch.cuda.synchronize()
    elif kind == "mps":
        torch.mps.synchronize()


def flush_denormals() -> bool:
    """Make this process's CPU threads treat denormal floats (below ~1.2e-38) as zero.

    x86 cores compute on denormals in microcode, many times slower, and as small nets train
    their gradients drift into that range: the same diet_3 step went from 37 to 47 ms over 600
    steps on MNIST, and ran at 30 ms with this on. CUDA's fast paths flush them too. The flag
    is per thread and torch's worker threads copy it from the main thread when they start, so
    call this before the first parallel torch op (the CLI and the benchmarks do, first thing);
    later, only the main thread gets it. Returns False where the CPU has no such mode.
    """
    return torch.set_flush_denormal(True)


def denormal_flush_state() -> str:
    """'all threads', 'some threads' or 'off': measured on a denormal tensor split by threads."""
    threads = torch.get_num_threads()
    # Denormal bits set directly: a float literal would itself be flushed on the main thread.
    denormals = torch.full((threads << 20,), 0x00400000, dtype=torch.int32).view(torch.float32)
    probe = denormals * 1.0  # big enough that every thread takes a chunk
    flushed = (probe == 0).float().mean().item()
    return "all threads" if flushed == 1.0 else "off" if flushed == 0.0 else "some threads"


def autocast_factory(device: str, precision: str) -> type[AbstractContextManager] | None:
    """A zero-argument factory for the autocast context of `precision` (None for fp32)."""
    if precision == "fp32":
        return None
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    device_type = torch.device(device).type
    return functools.partial(torch.autocast, device_type=device_type, dtype=dtype)  # type: ignore[return-value]


def place_model(model: torch.nn.Module, device: str) -> torch.nn.Module:
    """Move `model` to `device`; conv models go channels-last, which oneDNN and cuDNN run faster.

    Same arithmetic, other memory layout (measured on 2 CPU cores: study A `cnn` 9.9 -> 6.7 s
    per epoch). A 1-channel (N, 1, H, W) input is already channels-last in memory, so the data
    need not change.
    """
    model = model.to(device)
    # A model can opt out on the CPU, where channels-last measured slower for it
    # (`channels_last_cpu = False`: study C's ResNet-18/50, see models/resnet.py).
    wanted = torch.device(device).type != "cpu" or getattr(model, "channels_last_cpu", True)
    if wanted and any(isinstance(m, torch.nn.Conv2d) for m in model.modules()):
        model = model.to(memory_format=torch.channels_last)
    return model
