"""Device choice, synchronisation and autocast: the only place that knows device kinds."""

from __future__ import annotations

import functools
import os
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
    # (`channels_last_cpu = False`: study D's small_cnn_bn, see models/small_cnn.py);
    # $MNISTBENCH_CHANNELS_LAST=on/off overrides that choice, to measure both layouts.
    setting = channels_last_setting()
    wanted = torch.device(device).type != "cpu" or getattr(model, "channels_last_cpu", True)
    if setting != "auto":
        wanted = setting == "on"
    if wanted and any(isinstance(m, torch.nn.Conv2d) for m in model.modules()):
        model = model.to(memory_format=torch.channels_last)
    return model


CHANNELS_LAST_ENV = "MNISTBENCH_CHANNELS_LAST"  # auto (the model's choice) / on / off
CHANNELS_LAST_CHOICES = ("auto", "on", "off")


def channels_last_setting() -> str:
    """The memory-format choice for conv nets, from $MNISTBENCH_CHANNELS_LAST (default auto:
    channels-last unless the model opts out on the CPU). Recorded in every run's environment."""
    return env_choice(
        CHANNELS_LAST_ENV,
        CHANNELS_LAST_CHOICES,
        "auto",
        "'on' trains every conv net channels-last, 'off' keeps them NCHW, 'auto' leaves the "
        "choice to each model.",
    )


def env_choice(name: str, choices: tuple[str, ...], default: str, meanings: str) -> str:
    """One of `choices` from environment variable `name` (case and spaces ignored; unset or
    empty: `default`); anything else is a ConfigError that lists them and says what each means."""
    value = os.environ.get(name, default).strip().lower() or default
    if value not in choices:
        raise ConfigError(f"${name} is {value!r}; it takes one of {', '.join(choices)}: {meanings}")
    return value


# ------------------------------------------------------------------------------ CUDA maths

TF32_ENV = "MNISTBENCH_TF32"  # on / off / default (PyTorch's: cuDNN convs TF32, matmuls not)
TF32_CHOICES = ("default", "on", "off")


def cuda_native_bf16() -> bool:
    """Whether the CUDA device computes bf16 natively (Ampere and later). PyTorch's plain
    `is_bf16_supported()` also says yes where it would emulate bf16 (pre-Ampere), many times
    slower, so bf16 must not be a default there."""
    if not torch.cuda.is_available():
        return False
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # a torch without the argument: the capability decides (8.0 = Ampere)
        return torch.cuda.get_device_capability()[0] >= 8


def default_precision(device: str) -> str:
    """bf16 autocast on CUDA devices that support it (AMP by default), fp32 elsewhere.

    CPUs with AMX also gain from bf16 at large batches, but lose at small ones (measured on the
    2-core dev machine: MLP batch 64 3.1 -> 4.2 ms/step), so there it is an opt-in.
    """
    if device == "cuda" and cuda_native_bf16():  # emulated bf16 (pre-Ampere) is much slower
        return "bf16"
    return "fp32"


def tf32_setting() -> str:
    """The TF32 choice for "fp32" CUDA runs, from $MNISTBENCH_TF32 (default: PyTorch's)."""
    return env_choice(
        TF32_ENV,
        TF32_CHOICES,
        "default",
        "'on' lets fp32 matmuls and convolutions use TF32 tensor cores (faster, ~10-bit "
        "mantissa), 'off' keeps them IEEE fp32, 'default' leaves PyTorch's choice (TF32 "
        "convolutions, fp32 matmuls).",
    )


def apply_tf32(device: str | torch.device) -> dict[str, object]:
    """Apply $MNISTBENCH_TF32 on a CUDA device and say what "fp32" means for this run: the
    flags, and `fp32_uses_tf32` (True when any fp32 matmul or conv may run in TF32). Nothing
    changes on other devices (TF32 is a CUDA tensor-core format)."""
    if torch.device(device).type != "cuda":
        return {}
    setting = tf32_setting()
    if setting != "default":
        torch.backends.cuda.matmul.allow_tf32 = setting == "on"
        torch.backends.cudnn.allow_tf32 = setting == "on"
    matmul = torch.backends.cuda.matmul.allow_tf32 or (
        torch.get_float32_matmul_precision() != "highest"
    )
    return {
        "tf32_setting": setting,
        "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "fp32_uses_tf32": bool(matmul or torch.backends.cudnn.allow_tf32),
    }


def cuda_determinism() -> dict[str, object]:
    """Whether a CUDA run can be repeated bit for bit: only with deterministic algorithms and
    deterministic cuDNN, benchmark autotuning off. Otherwise atomics and autotuned kernels make
    two runs of one config differ in the last bits, so a reused result is the same config,
    not the same numbers."""
    deterministic = (
        torch.are_deterministic_algorithms_enabled()
        and torch.backends.cudnn.deterministic
        and not torch.backends.cudnn.benchmark
    )
    return {
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "bit_reproducible": bool(deterministic),
    }
