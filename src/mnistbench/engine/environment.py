"""Where a run ran: the machine, library versions and the numeric settings that change speed
or results (SIMD level, bf16 support, denormal flushing, TF32, cuDNN autotuning)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import torch

from mnistbench.engine.allocator import malloc_setting, retention_available
from mnistbench.engine.device import (
    apply_tf32,
    channels_last_setting,
    cuda_determinism,
    cuda_native_bf16,
    denormal_flush_state,
)


def cpu_model_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_native_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX512-BF16 or AMX): there bf16
    autocast can be several times faster; elsewhere it is emulated and slower than fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a private op: absent from some builds
        return False


def cpu_description() -> str:
    """The CPU's model name, its SIMD level as torch dispatches it, and native bf16 or not:
    machines with the same model name (VMs say just "AMD EPYC") can differ in both."""
    bf16 = "native bf16" if cpu_native_bf16() else "no native bf16"
    return f"{cpu_model_name()} ({torch.backends.cpu.get_cpu_capability()}, {bf16})"


def git_sha() -> str | None:
    """The project's commit, when it runs from a git checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def cuda_device_index(device: str | torch.device) -> int:
    """The CUDA device a run uses: "cuda" means the current device, "cuda:1" device 1."""
    index = torch.device(device).index
    return torch.cuda.current_device() if index is None else index


def nvidia_driver_version() -> str | None:
    """The NVIDIA driver's version through NVML (nvidia-ml-py, which CodeCarbon needs anyway)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        version = pynvml.nvmlSystemGetDriverVersion()
    except Exception:  # no NVML library, no driver, or a container without the device files
        return None
    return version.decode() if isinstance(version, bytes) else str(version)


def cuda_environment(device: str | torch.device) -> dict[str, object]:
    """CUDA settings that change what "fp32" means and how fast a run is.

    cuDNN convolutions run in TF32 by default (`cudnn_allow_tf32`), matmuls only when allowed
    (`cuda_matmul_allow_tf32`, or `float32_matmul_precision` "high"/"medium"), so an "fp32" run on
    an Ampere-or-later GPU is partly TF32. `cudnn_benchmark` autotunes convolution algorithms in
    the first steps, which lands in epoch 1's time.
    """
    index = cuda_device_index(device)
    maths = apply_tf32(device)  # applied first, so what is recorded is what the run uses
    return {
        **maths,
        **cuda_determinism(),
        "cuda_native_bf16": cuda_native_bf16(),
        "cuda_device_index": index,
        "gpu_count": torch.cuda.device_count(),
        "cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version(),
        "nvidia_driver_version": nvidia_driver_version(),
        "cuda_capability": ".".join(map(str, torch.cuda.get_device_capability(index))),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
    }


def collect_environment(device: str) -> dict[str, object]:
    """Provenance stored with every run."""
    from mnistbench import __version__

    kind = torch.device(device).type
    if kind == "cuda":
        device_name = torch.cuda.get_device_name(cuda_device_index(device))
    else:
        device_name = cpu_model_name()
    malloc = malloc_setting()
    environment: dict[str, object] = {
        "mnistbench_version": __version__,
        "git_sha": git_sha(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "hostname": platform.node(),
        "device": kind,
        "device_name": device_name,
        "cpu_model": cpu_model_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_native_bf16": cpu_native_bf16(),
        "cpu_flush_denormal": denormal_flush_state(),  # engine.device.flush_denormals
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "channels_last_setting": channels_last_setting(),  # engine.device.place_model
        "malloc_setting": malloc,  # engine.allocator.retained_allocations
        "malloc_retained": malloc == "retain" and retention_available(),
    }
    if kind == "cuda":
        environment.update(cuda_environment(device))
    return environment
