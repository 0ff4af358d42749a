"""Memory of one run: its own peak (host RSS high-water mark, or the CUDA allocator's peak),
working sets sized to the machine (`chunk_rows`), and out-of-memory failures turned into an
error that says what ran out and what to try."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import threading
from pathlib import Path

import psutil
import torch

from mnistbench.errors import OutOfMemoryError

RUN_PEAK_RSS = "run_peak_rss"  # Linux: VmHWM, reset to the current RSS when the run starts
RUN_PEAK_RSS_SAMPLED = "run_peak_rss_sampled"  # elsewhere: RSS sampled by a thread (psutil)
CUDA_MAX_ALLOCATED = "cuda_max_allocated"  # torch's caching allocator: tensors only
SAMPLE_INTERVAL_S = 0.01  # the sampled peak can miss a spike shorter than this

CHUNK_MEMORY_FRACTION = 0.25  # of the memory free now, for one chunk of a whole-split pass
MAX_CHUNK_BYTES = 1 << 30  # larger chunks buy no speed (matmuls are efficient well before)
_MB = 2**20


# ---------------------------------------------------------------------------- the run's peak


def _rss_bytes() -> int:
    return psutil.Process().memory_info().rss


def _vmhwm_bytes() -> int | None:
    """Linux's peak resident set size of this process (VmHWM), in bytes."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # "VmHWM:  123456 kB"
    except (OSError, ValueError, IndexError):
        pass
    return None


def _reset_vmhwm() -> bool:
    """Reset VmHWM to the current RSS (Linux 4.0+: "5" to clear_refs); False where it can't."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _vmhwm_bytes() is not None


def _release_free_heap() -> None:
    """Hand heap pages that earlier runs freed back to the OS (glibc's malloc_trim), so the
    high-water mark restarts from what the process really uses, not from its free lists."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc (macOS, musl): no trim
        ctypes.CDLL(None).malloc_trim(0)


class _RssSampler(threading.Thread):
    """Polls this process's RSS until stopped; `peak` is the largest value seen."""

    def __init__(self, interval_s: float):
        super().__init__(name="mnistbench-rss-sampler", daemon=True)
        self.interval_s = interval_s
        self.peak = _rss_bytes()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            self.peak = max(self.peak, _rss_bytes())

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        self.peak = max(self.peak, _rss_bytes())
        return self.peak


class PeakMemoryMeter:
    """The peak memory of one run, from `start` to `stop`, not of the process's whole life.

    CPU: Linux's VmHWM reset at `start` (after a garbage collection and malloc_trim, so memory an
    earlier run freed does not count); where that is impossible, a thread samples RSS. Either
    way the figure is the process's resident memory, so it includes what the process held
    before the run (torch, a sweep driver's loaded data sets): `memory_at_start_mb` says how
    much. CUDA: the allocator's peak since `start` (tensors, not its cache or the CUDA
    context), with the host RSS peak beside it.
    """

    def __init__(self, device: str, sample_interval_s: float = SAMPLE_INTERVAL_S):
        self.device = torch.device(device)
        self.sample_interval_s = sample_interval_s
        self._sampler: _RssSampler | None = None
        self._start: dict[str, float] = {}
        self._reading: dict[str, object] | None = None

    def start(self) -> None:
        gc.collect()
        _release_free_heap()
        self._reading = None
        self._start = {"rss": _rss_bytes()}
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start["cuda"] = torch.cuda.memory_allocated(self.device)
        if not _reset_vmhwm():
            self._sampler = _RssSampler(self.sample_interval_s)
            self._sampler.start()

    def stop(self) -> dict[str, object]:
        """The run's figures; later calls return the same ones."""
        if self._reading is not None:
            return self._reading
        if self._sampler is not None:
            host_peak, host_kind = self._sampler.stop(), RUN_PEAK_RSS_SAMPLED
        else:
            host_peak, host_kind = _vmhwm_bytes() or _rss_bytes(), RUN_PEAK_RSS
        if self.device.type == "cuda":
            reading: dict[str, object] = {
                "peak_memory_mb": torch.cuda.max_memory_allocated(self.device) / _MB,
                "peak_memory_kind": CUDA_MAX_ALLOCATED,
                "memory_at_start_mb": self._start["cuda"] / _MB,
                "peak_host_rss_mb": host_peak / _MB,
                "peak_host_rss_kind": host_kind,
            }
        else:
            reading = {
                "peak_memory_mb": host_peak / _MB,
                "peak_memory_kind": host_kind,
                "memory_at_start_mb": self._start["rss"] / _MB,
            }
        self._reading = reading
        return reading


def device_data_bytes(splits) -> int:
    """Bytes of the prepared splits (images and labels) held on the run's device."""
    return sum(split.images.nbytes + split.labels.nbytes for split in splits if split is not None)


# --------------------------------------------------------------------- bounded working sets


def _cgroup_available_bytes() -> int | None:
    """What a container's memory limit (cgroup v2) still allows; None without a limit."""
    root = Path("/sys/fs/cgroup")
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int((root / "memory.current").read_text())
    except (OSError, ValueError):
        return None


def available_memory_bytes(device: str | torch.device = "cpu") -> int:
    """Memory a new allocation on `device` can take now without swapping or failing."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        # the caching allocator's reserved-but-unused blocks are free for torch too
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free + cached)
    available = psutil.virtual_memory().available
    limited = _cgroup_available_bytes()
    return int(available if limited is None else min(available, limited))


def chunk_rows(
    bytes_per_row: int,
    total_rows: int,
    *,
    device: str | torch.device = "cpu",
    what: str = "this pass",
    fraction: float = CHUNK_MEMORY_FRACTION,
    max_chunk_bytes: int = MAX_CHUNK_BYTES,
) -> int:
    """Rows per chunk of a whole-split pass whose working memory is `bytes_per_row` per row.

    A chunk takes at most `fraction` of the memory free on `device` now (and never more than
    `max_chunk_bytes`), so a pass over 60,000 rows stays within a few GB whatever the machine.
    Raises OutOfMemoryError when even one row does not fit.
    """
    available = available_memory_bytes(device)
    if bytes_per_row > available:
        raise OutOfMemoryError(
            f"{what} needs {bytes_per_row / _MB:,.0f} MB for a single row, but only "
            f"{available / _MB:,.0f} MB of {_memory_name(device)} is free. Free memory (stop "
            "other runs or workers), or make the problem smaller (--subset, --image-size)."
        )
    budget = min(available * fraction, max_chunk_bytes)
    return max(1, min(total_rows, int(budget // max(bytes_per_row, 1))))


# --------------------------------------------------------------------------- out of memory

_OOM_TEXTS = ("out of memory", "can't allocate memory", "cannot allocate memory")


def is_out_of_memory(error: BaseException) -> bool:
    """MemoryError, torch's CUDA/MPS OutOfMemoryError, or an allocator's RuntimeError."""
    if isinstance(error, OutOfMemoryError | MemoryError | torch.OutOfMemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(t in text for t in _OOM_TEXTS)


def _memory_name(device: str | torch.device) -> str:
    kind = torch.device(device).type
    return {"cuda": "GPU memory", "mps": "unified (MPS) memory"}.get(kind, "host memory (RAM)")


def out_of_memory_error(
    error: BaseException, *, device: str, doing: str
) -> OutOfMemoryError | None:
    """`error` as an OutOfMemoryError naming what ran out, during what, and what to try; None
    when `error` is not about memory. `doing` says what the run was doing ("training cnn at
    batch size 64, 28 px")."""
    if not is_out_of_memory(error):
        return None
    if isinstance(error, OutOfMemoryError):
        return error
    free_mb = available_memory_bytes(device) / _MB
    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
    return OutOfMemoryError(
        f"The run ran out of {_memory_name(device)} while {doing} ({first_line}); "
        f"{free_mb:,.0f} MB are free now. Try a smaller --batch-size or --image-size, a "
        "--subset, fewer trials at once (--workers), or a device with more memory."
    )


def release_cached_memory(device: str) -> None:
    """After an out-of-memory error: give the allocator's cached blocks back, so the next
    measurement starts from free memory."""
    gc.collect()
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
