"""What a run measures besides accuracy: size, FLOPs, latency, memory, energy, environment."""

from __future__ import annotations

import logging
import os
import platform
import resource
import statistics
import subprocess
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from mnistbench.engine.device import denormal_flush_state, synchronize


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def model_size_bytes(model: nn.Module) -> int:
    """Bytes of every parameter and buffer (BatchNorm statistics included), as stored."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def _cpu_flash_attention_flops(query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _onednn_rnn_layer_flops(input_shape, input_weight_shape, hidden_weight_shape, *args, **kwargs):
    # One layer, one direction, every time step: gates x (input + hidden) MACs per token.
    steps_times_batch = input_shape[0] * input_shape[1]
    gate_width = input_weight_shape[0]  # 4 x hidden for an LSTM
    return 2 * steps_times_batch * gate_width * (input_weight_shape[1] + hidden_weight_shape[1])


# torch 2.13's counter has no formula for two fused CPU kernels and counts them as 0: attention
# (pytorch/pytorch#195460, fixed after 2.13; given the CUDA kernels' formula here) and the
# oneDNN LSTM layer that nn.LSTM runs in inference.
_EXTRA_FLOP_FORMULAS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_attention_flops,
    torch.ops.aten.mkldnn_rnn_layer: _onednn_rnn_layer_flops,
}


def flops_per_sample(model: nn.Module, input_shape: tuple[int, ...], device: str) -> int:
    """Forward-pass FLOPs for one image, counted by torch.utils.flop_counter (1 MAC = 2 FLOPs)."""
    was_training = model.training
    mha_fastpath = torch.backends.mha.get_fastpath_enabled()
    model.eval()
    # In eval mode nn.TransformerEncoderLayer runs one fused kernel the counter cannot see
    # (the ViT counted 0.2 MFLOPs instead of 57.8); the unfused path computes the same thing.
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        counter = FlopCounterMode(display=False, custom_mapping=_EXTRA_FLOP_FORMULAS)
        with torch.no_grad(), counter:
            model(torch.zeros(1, *input_shape, device=device))
        return int(counter.get_total_flops())
    finally:
        torch.backends.mha.set_fastpath_enabled(mha_fastpath)
        model.train(was_training)


def inference_latency_ms(
    model: nn.Module,
    input_shape: tuple[int, ...],
    batch_size: int,
    device: str,
    autocast: type | None = None,
    budget_s: float = 1.0,
    max_repeats: int = 50,
) -> float:
    """Median wall time of one forward pass on `batch_size` images, after two warm-up passes."""
    was_training = model.training
    model.eval()
    images = torch.zeros(batch_size, *input_shape, device=device)
    timings_s: list[float] = []
    try:
        with torch.inference_mode(), autocast() if autocast else nullcontext():
            for _ in range(2):
                model(images)
            started = time.perf_counter()
            while len(timings_s) < max_repeats and (
                len(timings_s) < 3 or time.perf_counter() - started < budget_s
            ):
                synchronize(device)
                t0 = time.perf_counter()
                model(images)
                synchronize(device)
                timings_s.append(time.perf_counter() - t0)
    finally:
        model.train(was_training)
    return statistics.median(timings_s) * 1000.0


def reset_peak_memory(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_memory_mb(device: str) -> tuple[float, str]:
    """Peak memory and what it is: CUDA allocator peak, or the process's peak resident set."""
    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20, "cuda_max_allocated"
    # ru_maxrss is KiB on Linux, bytes on macOS; it covers the whole process (data included)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 / 2**20 if platform.system() == "Darwin" else 1 / 2**10
    return rss * scale, "process_peak_rss"


@dataclass
class EnergyReading:
    energy_kwh: float | None
    method: str  # how CodeCarbon measured (hardware list), or "unavailable"
    reason: str | None = None  # why energy_kwh is None


class EnergyMeter:
    """CodeCarbon's offline tracker around a block of work; never fails the run.

    Offline mode needs no network (country given explicitly). On machines without RAPL or NVML,
    CodeCarbon estimates CPU power from its TDP table and the measured load; `method` says so.
    """

    def __init__(self, country_iso_code: str = "USA", measure_power_secs: float = 5.0):
        self._tracker = None
        self._error: str | None = None
        self._reading: EnergyReading | None = None
        try:
            from codecarbon import OfflineEmissionsTracker

            # codecarbon sets its logger to INFO on import; its start-up chatter is not ours
            logging.getLogger("codecarbon").setLevel(logging.ERROR)

            self._tracker = OfflineEmissionsTracker(
                country_iso_code=country_iso_code,
                output_methods=[],  # the figures go to our store, not to emissions.csv
                log_level="error",
                measure_power_secs=measure_power_secs,
                tracking_mode="process",
            )
        except Exception as error:  # CodeCarbon's failures must not end a training run
            self._error = f"{type(error).__name__}: {error}"

    def start(self) -> None:
        if self._tracker is None:
            return
        try:
            self._tracker.start()
        except Exception as error:
            self._error, self._tracker = f"{type(error).__name__}: {error}", None

    def stop(self) -> EnergyReading:
        """End the measurement (its background thread too); later calls return the same reading."""
        if self._reading is not None:
            return self._reading
        if self._tracker is None:
            reading = EnergyReading(None, "unavailable", self._error or "codecarbon not started")
        else:
            try:
                self._tracker.stop()
                data = self._tracker.final_emissions_data
                hardware = ", ".join(str(h) for h in getattr(self._tracker, "_hardware", []))
                reading = EnergyReading(float(data.energy_consumed), f"codecarbon {hardware}")
            except Exception as error:
                reading = EnergyReading(None, "unavailable", f"{type(error).__name__}: {error}")
        self._reading = reading
        return reading


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


def collect_environment(device: str) -> dict[str, object]:
    """Provenance stored with every run."""
    from mnistbench import __version__

    kind = torch.device(device).type
    device_name = torch.cuda.get_device_name() if kind == "cuda" else cpu_model_name()
    return {
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
    }
