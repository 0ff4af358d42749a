"""The worker side of the process pool: a spawned process that trains the configs its driver
sends and streams each run's rows back over a pipe; it ignores Ctrl-C (the driver decides),
turns the driver's SIGTERM into an 'interrupted' run, dies with its driver, and trains on the
GPU the driver gave it. The driver side is experiments/pool.py.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection

import torch

from mnistbench.config import RunConfig
from mnistbench.data import RawDataset
from mnistbench.engine.device import flush_denormals
from mnistbench.engine.measure import collect_environment
from mnistbench.experiments.runner import RunListener, execute, utc_now

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


# ------------------------------------------------------------------------------ GPU placement


@dataclass(frozen=True)
class GpuSlot:
    """The GPU one worker trains on: its CUDA_VISIBLE_DEVICES, and how many workers share it."""

    device: str  # an entry of the driver's CUDA_VISIBLE_DEVICES (an index or a GPU UUID)
    shared_by: int


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES entries ([] without CUDA)."""
    if not torch.cuda.is_available():
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed:
        return [entry.strip() for entry in listed.split(",") if entry.strip()]
    return [str(index) for index in range(torch.cuda.device_count())]


def gpu_slots(workers: int, gpus: Sequence[str]) -> list[GpuSlot | None]:
    """Each worker's GPU, round robin: workers 0..n-1 get GPUs 0..n-1, then it wraps around
    (those trials share a GPU, and their environment says so). No GPUs: None for each."""
    if not gpus:
        return [None] * workers
    chosen = [gpus[index % len(gpus)] for index in range(workers)]
    return [GpuSlot(device, chosen.count(device)) for device in chosen]


# ------------------------------------------------------------------------------ worker side


def die_with_parent(parent_pid: int) -> None:
    """End this worker when its driver dies, even by SIGKILL (an orphan would keep training
    and skew a resumed sweep's timings): Linux's parent-death signal, else a watchdog."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
                if os.getppid() != parent_pid:  # the driver died before prctl took effect
                    os._exit(1)
                return

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="driver-watchdog", daemon=True).start()


class _StopRequest:
    """SIGTERM in a worker: the driver asks it to stop. During a trial it becomes
    KeyboardInterrupt (once), so `execute` ends the run as 'interrupted' with its epochs;
    never in the middle of a message to the driver (a half-written message would break the
    pipe), and an idle worker just exits."""

    def __init__(self) -> None:
        self.training = False
        self.sending = False
        self.pending = False
        self.delivered = False

    def handle(self, signum: int, frame: object) -> None:
        if self.sending:
            self.pending = True
            return
        self._act()

    def _act(self) -> None:
        if not self.training:
            raise SystemExit(0)
        if not self.delivered:
            self.delivered = True
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def sending_message(self) -> Iterator[None]:
        self.sending = True
        try:
            yield
        finally:
            self.sending = False
        if self.pending:
            self.pending = False
            self._act()


class _PipeListener(RunListener):
    """Sends each row of the run to the driver as it happens."""

    def __init__(self, conn: Connection, stop: _StopRequest, gpu: GpuSlot | None):
        self.conn, self.stop, self.gpu = conn, stop, gpu
        self.has_started = False

    def send(self, message: tuple) -> None:
        with self.stop.sending_message():
            self.conn.send(message)

    def started(
        self, config: RunConfig, environment: dict[str, object], model_card: dict[str, object]
    ) -> None:
        if self.gpu is not None and config.device == "cuda":
            environment = {
                **environment,
                "cuda_visible_devices": self.gpu.device,
                "gpu_shared_by_workers": self.gpu.shared_by,
            }
        self.has_started = True  # first: a stop request during the send must find it begun
        started = (environment, utc_now(), socket.gethostname(), os.getpid(), model_card)
        self.send(("started", *started))

    def epoch(self, epoch: int, metrics: dict[str, object]) -> None:
        self.send(("epoch", epoch, metrics))

    def artefact(self, name: str, kind: str, content: bytes | str) -> None:
        self.send(("artefact", name, kind, content))

    def ended(self, status: str, metrics: dict[str, object], error: str | None) -> None:
        self.send(("ended", status, metrics, error))
        self.stop.training = False  # the run is recorded: a stop request now just ends the worker


def worker_main(
    conn: Connection,
    raws: Mapping[str, RawDataset],
    threads: int,
    measure_energy: bool,
    driver_pid: int,
    gpu: GpuSlot | None,
) -> None:
    """A worker: train each config the driver sends, stream its rows back; None means exit."""
    die_with_parent(driver_pid)
    # a worker shares the cores with its siblings: a peak it measured would be low and would
    # slow their steps, so it only reads the cache (engine/peaks.py ensure_peak)
    os.environ["MNISTBENCH_AUTO_PEAK"] = "off"
    if gpu is not None:  # before anything initialises CUDA in this process
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu.device
    # Ctrl-C reaches the whole process group; only the driver acts on it (and tells the
    # running workers to stop with SIGTERM). The driver started this process with SIGINT
    # ignored already, so an early Ctrl-C cannot print a traceback while it imports.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop = _StopRequest()
    signal.signal(signal.SIGTERM, stop.handle)
    flush_denormals()  # a fresh process: before its first parallel op, so every thread has it
    torch.set_num_threads(threads)  # share the cores between workers instead of oversubscribing
    try:
        while (config := conn.recv()) is not None:
            _train_one(conn, config, raws[config.dataset], measure_energy, stop, gpu)
    except (EOFError, OSError):  # the driver is gone: nothing left to report to
        return
    except KeyboardInterrupt:  # stopped between two steps of a trial: the driver knows
        return


def _train_one(
    conn: Connection,
    config: RunConfig,
    raw: RawDataset,
    measure_energy: bool,
    stop: _StopRequest,
    gpu: GpuSlot | None,
) -> None:
    listener = _PipeListener(conn, stop, gpu)
    stop.training, stop.delivered = True, False
    try:
        execute(config, listener, raw=raw, progress=False, measure_energy=measure_energy)
    except KeyboardInterrupt:  # stopped: execute has sent 'interrupted' if the run had begun
        stop.training = False
        if not listener.has_started:
            listener.send(("unstarted", None, None))
        raise
    except Exception as error:  # once the run has begun, execute has sent 'failed' already
        stop.training = False
        if not listener.has_started:
            message = f"{type(error).__name__}: {error}"
            listener.send(("unstarted", message, collect_environment(config.device)))
    stop.training = False
