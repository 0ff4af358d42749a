"""The machine's peak arithmetic rate, measured once and cached, so every run can say what
fraction of it its training reached. `mnistbench bench peak` measures every precision; a run
whose machine, thread count and precision have no cached peak measures that one precision
itself, after its training and evaluation (`ensure_peak`: a few seconds, one progress line),
so its timings are not disturbed and the first run on a machine already reports its fraction.
A pool worker never does (it shares the cores with its siblings, whose steps it would slow and
whose steps would lower its figure): `AUTO_PEAK_ENV=off`.

The cache is `${XDG_CACHE_HOME:-~/.cache}/mnistbench/peaks.json`, one entry per machine
fingerprint (CPU model, SIMD level, native bf16, torch threads, torch version, device name):
a peak measured with 2 threads is not used by a run with 16, nor after a torch upgrade.

A peak measured while other processes held the CPU is too low, and every fraction held against
it too high (a 1-thread fp32 peak cached here during a busy hour read 6.0 GFLOP/s, the 2-thread
one 89.6), so each CPU measurement records the share of its CPUs' time other processes took
(`others_cpu_share`); above MAX_OTHERS_CPU_SHARE the rate is neither cached nor used.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import psutil
import torch
from torch.nn import functional as F

from mnistbench.data.locate import cache_root
from mnistbench.engine.device import synchronize
from mnistbench.engine.environment import (
    cpu_model_name,
    cpu_native_bf16,
    cuda_device_index,
)

PEAKS_FILE_VERSION = 1
CPU_MATMUL_SIZES = (512, 1024, 2048)  # square n x n @ n x n; the best size wins
CUDA_MATMUL_SIZES = (2048, 4096, 8192)
REPEATS = 5  # timed repeats per shape after one warm-up; the fastest counts (least disturbed)
# A representative conv of the small CNNs: 64 -> 64 channels, 3x3, pad 1, 28 x 28, channels-last
CONV_SHAPE = {"batch": 64, "channels": 64, "size": 28, "kernel": 3}
_DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16}
# Above this share of the machine's CPU time going to other processes during a CPU measurement,
# its rates are not the machine's (kernel threads and the hypervisor take a little on any VM).
MAX_OTHERS_CPU_SHARE = 0.1
# Shorter than this, the kernel's 10 ms accounting tick makes the share unreadable: not judged.
MIN_JUDGED_INTERVAL_S = 0.5
# The most a run's fraction_of_peak can read with a right peak: the FLOP estimate counts the
# backward as 2 x forward, and it is at least 1 x forward (the weight gradients), so the
# estimate exceeds the work done by at most 3/2. Above it the cached peak itself is too low.
MAX_CREDIBLE_FRACTION = 1.5


@dataclass
class Peaks:
    """Best measured FLOP rates of one machine and device, per precision."""

    device: str  # "cpu" or "cuda"
    fingerprint: str  # 16 hex digits over `machine`
    machine: dict[str, object]  # what the fingerprint hashes
    matmul_flops_per_s: dict[str, float]  # "fp32", "bf16"; on CUDA also "tf32", "fp16"
    conv_flops_per_s: dict[str, float]  # the same keys, CONV_SHAPE
    matmul_sizes: list[int] = field(default_factory=list)
    repeats: int = REPEATS
    measured_at: str = ""
    # per precision: the share of the machine's CPU time other processes took while it was
    # measured (`others_cpu_share`); None or absent: not known (a GPU, too short, older cache)
    others_cpu_share: dict[str, float | None] = field(default_factory=dict)

    def disturbed(self, precision_key: str) -> bool:
        """Whether this precision's CPU rates were measured while other processes held more than
        MAX_OTHERS_CPU_SHARE of the machine, so they understate its peak."""
        share = self.others_cpu_share.get(precision_key)
        return self.device == "cpu" and share is not None and share > MAX_OTHERS_CPU_SHARE

    def peak_for(self, precision_key: str) -> float | None:
        """The best of the matmul and conv rates for one precision key; None if unmeasured or
        measured disturbed."""
        if self.disturbed(precision_key):
            return None
        rates = [
            r[precision_key]
            for r in (self.matmul_flops_per_s, self.conv_flops_per_s)
            if precision_key in r
        ]
        return max(rates) if rates else None


def machine_identity(device: str) -> dict[str, object]:
    """What a peak depends on: change any of these and the cached peak no longer applies."""
    kind = torch.device(device).type
    identity: dict[str, object] = {
        "device": kind,
        "device_name": cpu_model_name(),
        "cpu_model": cpu_model_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_native_bf16": cpu_native_bf16(),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
    }
    if kind == "cuda":
        index = cuda_device_index(device)
        identity["device_name"] = torch.cuda.get_device_name(index)
        identity["cuda_version"] = torch.version.cuda
        # CPU threads do not set a GPU's peak, and pool workers run with fewer than the
        # shell that measured it (seen on an H200: the sweep's runs found no peak)
        del identity["torch_threads"]
    return identity


def fingerprint(identity: dict[str, object]) -> str:
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def peaks_path() -> Path:
    return cache_root() / "peaks.json"


def _read_cache(path: Path) -> dict[str, dict]:
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError):  # no cache yet, or a damaged one: measure again
        return {}
    if not isinstance(content, dict) or content.get("version") != PEAKS_FILE_VERSION:
        return {}
    machines = content.get("machines")
    return machines if isinstance(machines, dict) else {}


def save_peaks(peaks: Peaks, path: Path | None = None) -> Path:
    """Add (or replace) this machine's entry in the cache file; other machines' entries stay."""
    path = path or peaks_path()
    machines = _read_cache(path)
    machines[peaks.fingerprint] = asdict(peaks)
    path.parent.mkdir(parents=True, exist_ok=True)
    content = json.dumps({"version": PEAKS_FILE_VERSION, "machines": machines}, indent=1)
    # written beside and renamed: a reader never sees half a file
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
        tmp.write(content)
    os.replace(tmp.name, path)
    return path


def load_peaks(device: str, path: Path | None = None) -> Peaks | None:
    """This machine's cached peaks for `device`, or None when they were never measured here
    (or were measured under another fingerprint: other threads, torch, CPU or GPU)."""
    key = fingerprint(machine_identity(device))
    entry = _read_cache(path or peaks_path()).get(key)
    if entry is None:
        return None
    try:
        return Peaks(**entry)
    except TypeError:  # an entry written by another version of this class
        return None


def precision_key(device: str, precision: str) -> str:
    """Which measured peak a run's precision is held against. On CUDA an "fp32" run whose
    matmuls or cuDNN convolutions may use TF32 (cuDNN's default) is held against TF32."""
    if precision != "fp32" or torch.device(device).type != "cuda":
        return precision
    tf32 = (
        torch.backends.cuda.matmul.allow_tf32
        or torch.backends.cudnn.allow_tf32
        or torch.get_float32_matmul_precision() != "highest"
    )
    return "tf32" if tf32 else "fp32"


# ------------------------------------------------------------------------------ measuring


@dataclass(frozen=True)
class CpuSample:
    """Cumulative CPU clocks at one moment: enough to tell, between two samples, how much of
    the CPUs this process may run on went to other processes."""

    wall_s: float  # time.perf_counter
    busy_s: float  # this process's CPUs (its affinity), every process, plus the hypervisor's steal
    own_cpu_s: float  # this process, all threads (time.process_time)
    cpus: int  # how many CPUs busy_s covers


def _usable_cpus() -> list[int]:
    """The CPUs this process may run on: a container pinned to some of a host's CPUs is not
    disturbed by work on the others."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # no affinity API (macOS, Windows): every CPU
        return list(range(psutil.cpu_count() or 1))


def sample_cpu() -> CpuSample:
    per_cpu = psutil.cpu_times(percpu=True)
    cpus = [index for index in _usable_cpus() if index < len(per_cpu)]
    # guest time is already inside user and nice on Linux, so it is not added again
    busy = sum(
        getattr(per_cpu[index], name, 0.0)
        for index in cpus
        for name in ("user", "nice", "system", "irq", "softirq", "steal")
    )
    return CpuSample(time.perf_counter(), busy, time.process_time(), len(cpus))


def others_cpu_share(before: CpuSample, after: CpuSample) -> float | None:
    """The share of the CPUs' time (wall x CPUs) that processes other than this one (and the
    hypervisor) took between two samples; None when the interval is too short for the kernel's
    tick to tell. Clamped to [0, 1]: the two clocks tick differently."""
    wall_s = after.wall_s - before.wall_s
    if wall_s < MIN_JUDGED_INTERVAL_S or after.cpus < 1:
        return None
    others_s = (after.busy_s - before.busy_s) - (after.own_cpu_s - before.own_cpu_s)
    return min(max(others_s / (wall_s * after.cpus), 0.0), 1.0)


def _best_seconds(step: Callable[[], object], device: str, repeats: int) -> float:
    step()  # warm-up: kernel selection, allocations
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        started = time.perf_counter()
        step()
        synchronize(device)
        best = min(best, time.perf_counter() - started)
    return best


def _matmul_rate(n: int, dtype: torch.dtype, device: str, repeats: int) -> float:
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    return 2 * n**3 / _best_seconds(lambda: a @ b, device, repeats)


def _conv_rate(dtype: torch.dtype, device: str, repeats: int) -> float:
    n, c, s, k = (CONV_SHAPE[key] for key in ("batch", "channels", "size", "kernel"))
    x = torch.randn(n, c, s, s, device=device).to(dtype, memory_format=torch.channels_last)
    w = torch.randn(c, c, k, k, device=device).to(dtype, memory_format=torch.channels_last)
    flops = 2 * n * c * s * s * c * k * k  # same padding: s x s outputs per channel
    with torch.no_grad():
        return flops / _best_seconds(lambda: F.conv2d(x, w, padding=k // 2), device, repeats)


def peak_keys(device: str) -> tuple[str, ...]:
    """The precisions `measure_peaks` measures on `device` (fp32 on CUDA is with TF32 off)."""
    if torch.device(device).type == "cuda":
        return ("fp32", "tf32", "bf16", "fp16")
    return ("fp32", "bf16")


def measure_peaks(
    device: str,
    sizes: tuple[int, ...] | None = None,
    repeats: int = REPEATS,
    keys: tuple[str, ...] | None = None,
) -> Peaks:
    """Measure the best matmul rate over `sizes` (square) and the CONV_SHAPE conv rate, per
    precision: fp32 and bf16; on CUDA also TF32 and fp16 (fp32 there with TF32 off); `keys`
    limits it to some of them. Takes seconds to a couple of minutes (bf16 is slow where the
    CPU emulates it); run it on a quiet machine, since anything else running lowers the
    figures."""
    kind = torch.device(device).type
    sizes = sizes or (CUDA_MATMUL_SIZES if kind == "cuda" else CPU_MATMUL_SIZES)
    keys = keys or peak_keys(kind)
    matmul: dict[str, float] = {}
    conv: dict[str, float] = {}
    others: dict[str, float | None] = {}
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        for key in keys:
            if kind == "cuda":
                torch.backends.cuda.matmul.allow_tf32 = key == "tf32"
                torch.backends.cudnn.allow_tf32 = key == "tf32"
            dtype = _DTYPES.get(key, torch.float16)
            before = sample_cpu()
            matmul[key] = max(_matmul_rate(n, dtype, device, repeats) for n in sizes)
            conv[key] = _conv_rate(dtype, device, repeats)
            others[key] = others_cpu_share(before, sample_cpu())
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
    identity = machine_identity(device)
    return Peaks(
        device=kind,
        fingerprint=fingerprint(identity),
        machine=identity,
        matmul_flops_per_s=matmul,
        conv_flops_per_s=conv,
        matmul_sizes=list(sizes),
        repeats=repeats,
        measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        others_cpu_share=others,
    )


def merge_peaks(cached: Peaks | None, fresh: Peaks) -> Peaks:
    """`fresh` with the precisions it did not measure taken from `cached` (the same machine's
    entry, or None), so measuring one precision keeps the others. The entry's date and sizes
    become the fresh measurement's."""
    if cached is None or cached.fingerprint != fresh.fingerprint:
        return fresh
    fresh.matmul_flops_per_s = {**cached.matmul_flops_per_s, **fresh.matmul_flops_per_s}
    fresh.conv_flops_per_s = {**cached.conv_flops_per_s, **fresh.conv_flops_per_s}
    fresh.others_cpu_share = {**cached.others_cpu_share, **fresh.others_cpu_share}
    return fresh


OTHERS_HEADING = "others' CPU"


def describe_peaks(peaks: Peaks, path: Path | None = None) -> str:
    """The table `mnistbench bench peak` prints: GFLOP/s per precision, matmul and conv."""
    machine = peaks.machine
    conv = "{batch} x {channels}->{channels} ch, {kernel}x{kernel}, {size} px".format(**CONV_SHAPE)
    lines = [
        f"Peak FLOP rates of {machine['device_name']} ({machine['device']}, "
        f"{machine['cpu_capability']}, {machine['torch_threads']} torch threads, torch "
        f"{machine['torch_version']}), fingerprint {peaks.fingerprint}, {peaks.measured_at}",
        f"{'precision':<10} {'matmul GFLOP/s':>15} {'conv GFLOP/s':>13} {OTHERS_HEADING:>15}",
    ]
    for key, rate in peaks.matmul_flops_per_s.items():
        conv_rate = peaks.conv_flops_per_s.get(key)
        conv_text = f"{conv_rate / 1e9:13,.1f}" if conv_rate else f"{'-':>13}"
        share = peaks.others_cpu_share.get(key)
        share_text = f"{share:15.0%}" if share is not None else f"{'-':>15}"
        flag = "  DISTURBED" if peaks.disturbed(key) else ""
        lines.append(f"{key:<10} {rate / 1e9:15,.1f} {conv_text} {share_text}{flag}")
    sizes = ", ".join(map(str, peaks.matmul_sizes))
    lines.append(f"matmul: best of square sizes {sizes}; conv: {conv}; best of {peaks.repeats}")
    lines.append(
        "others' CPU: the share of the machine's CPU time other processes took meanwhile "
        f"(- where not known); above {MAX_OTHERS_CPU_SHARE:.0%} a CPU rate is disturbed, "
        "neither cached nor used"
    )
    if path is not None:
        lines.append(f"saved to {path}: runs on this machine now report fraction_of_peak")
    return "\n".join(lines)


def read_peak(
    device: str, precision: str, progress: Callable[[str], None] | None = None
) -> Peaks | None:
    """`ensure_peak`'s signature, reading the cache only (a run that did not finish)."""
    return load_peaks(device)


AUTO_PEAK_ENV = "MNISTBENCH_AUTO_PEAK"  # "off": a run never measures a missing peak itself


def ensure_peak(
    device: str, precision: str, progress: Callable[[str], None] | None = None
) -> Peaks | None:
    """This machine's cached peaks, after measuring the run's precision once if the cache has
    no peak for it (machine, threads and precision; see `precision_key`). The new rate joins
    the machine's entry (other precisions kept) and is saved for every later run, unless other
    processes disturbed it (`Peaks.disturbed`): then it is returned unsaved, and unused.
    `progress` gets one line before the measurement. With $MNISTBENCH_AUTO_PEAK=off (pool
    workers) it only reads the cache."""
    key = precision_key(device, precision)
    peaks = load_peaks(device)
    if peaks is not None and peaks.peak_for(key) is not None:
        return peaks
    if os.environ.get(AUTO_PEAK_ENV, "").strip().lower() == "off":
        return peaks
    if progress is not None:
        progress(
            f"measuring this machine's {key} peak once ({torch.get_num_threads()} torch "
            f"threads, a few seconds; cached in {peaks_path()} for later runs) ..."
        )
    fresh = merge_peaks(peaks, measure_peaks(device, keys=(key,)))
    if fresh.disturbed(key):
        # not cached: a later run on a quiet machine measures it again. Returned, so that this
        # run's note says why it has no fraction (`training_flop_rate`).
        return fresh
    save_peaks(fresh)
    return fresh


# --------------------------------------------------------------------- a run's flop rate

BENCH_PEAK_HINT = (
    "run `mnistbench bench peak` once on this machine (runs measure a missing peak "
    f"themselves unless ${AUTO_PEAK_ENV}=off, as in pool workers)"
)


def training_flop_rate(
    metrics: dict[str, object],
    *,
    device: str,
    precision: str,
    batch_size: int,
    peaks: Peaks | None,
    gradient_trained: bool = True,
) -> dict[str, object]:
    """`train_flops_per_s` and `fraction_of_peak` from a run's metrics so far.

    Training FLOPs per image are estimated as 3 x the forward pass (backward = 2 x forward),
    the forward being `flops_per_sample` plus the batch-level setup shared by a training batch
    (`batch_setup_flops / batch_size`, e.g. the spiking CNN's lookup table). A model fitted by
    a solver (`gradient_trained` False: the SVMs) has no such rate.
    """
    flops = metrics.get("flops_per_sample")
    images_per_s = metrics.get("train_images_per_s")
    key = precision_key(device, precision)
    rate = None
    if flops is not None and images_per_s and gradient_trained:
        setup = metrics.get("batch_setup_flops") or 0
        rate = 3 * (flops + setup / batch_size) * images_per_s
    peak = peaks.peak_for(key) if peaks is not None else None
    fraction = rate / peak if rate is not None and peak else None
    if not gradient_trained:
        note: str | None = "fitted by a solver, not by forward and backward passes"
    elif rate is None:
        note = "no FLOP count for this model" if flops is None else "no training throughput"
    elif peaks is None:
        note = f"peak not measured for this machine and thread count: {BENCH_PEAK_HINT}"
    elif peaks.disturbed(key):
        note = (
            f"this machine's {key} peak was measured while other processes took "
            f"{peaks.others_cpu_share[key]:.0%} of its CPU time, so it was neither cached nor "
            "used: run `mnistbench bench peak` when the machine is quiet"
        )
    elif peak is None:
        note = f"no {key} peak in this machine's cache: {BENCH_PEAK_HINT}"
    elif fraction is not None and fraction > MAX_CREDIBLE_FRACTION:
        # more than the FLOP estimate's overcount allows: the cached peak is too low (measured
        # on a busy machine before the check existed), so no fraction rather than a wrong one
        note = (
            f"{fraction:.0%} of the cached {key} peak ({peak / 1e9:,.1f} GFLOP/s, measured "
            f"{peaks.measured_at or 'at an unknown time'}) is more than the estimate allows, "
            "so that peak is too low: run `mnistbench bench peak` on a quiet machine"
        )
        fraction = None
    else:
        note = None
    return {
        "train_flops_per_s": rate,
        "fraction_of_peak": fraction,
        "fraction_of_peak_note": note,
        "peak_flops_per_s": peak,
        "peak_precision": key if peak is not None else None,
    }
