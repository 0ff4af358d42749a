"""The local process pool: spawned workers train trials and stream each run's rows to the
driver, which alone writes the store (so a run's epochs are recorded as they happen).

Hand-written rather than concurrent.futures.ProcessPoolExecutor, which cannot say which worker
runs which trial: when one worker dies it breaks the whole pool and fails every pending trial,
and on Ctrl-C it can neither stop a running task nor return the epochs it trained. The worker
side is experiments/worker.py; faults and what each keeps: docs/faults.md.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait

from mnistbench.config import RunConfig
from mnistbench.data import RawDataset
from mnistbench.experiments.runner import TrainedRun, record
from mnistbench.experiments.unrecorded import report_unrecorded
from mnistbench.experiments.worker import GpuSlot, gpu_slots, worker_main
from mnistbench.store import RunRecord, Store

STOP_GRACE_S = 30.0  # how long a stopped worker may take to end its run as 'interrupted'


# ------------------------------------------------------------------------------ driver side


@dataclass
class _Task:
    index: int
    run: TrainedRun  # what the worker reported so far, for stderr if the store refuses it
    run_id: int | None = None


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    gpu: GpuSlot | None
    task: _Task | None = field(default=None)


def death_message(pid: int | None, exitcode: int | None) -> str:
    """Why a worker is gone, e.g. 'the worker process 812 died, killed by signal SIGKILL'."""
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        text = f"the worker process {pid} died, killed by signal {name}"
        if -exitcode == signal.SIGKILL:
            text += " (the kernel's out-of-memory killer sends SIGKILL: check free memory)"
        return text
    return f"the worker process {pid} exited (code {exitcode}) in the middle of the trial"


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while starting a worker: a spawned process inherits 'ignored' across exec,
    and Python then leaves it ignored, so Ctrl-C during its imports prints no traceback."""
    previous = signal.getsignal(signal.SIGINT)
    if previous is None or threading.current_thread() is not threading.main_thread():
        yield  # a handler not set from Python cannot be restored; signals are the main thread's
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class WorkerPool:
    """`size` spawned workers, started for one batch of configs and ended with it."""

    def __init__(
        self,
        size: int,
        *,
        raws: Mapping[str, RawDataset],
        measure_energy: bool = True,
        gpus: Sequence[str] = (),
        threads: int | None = None,
    ):
        self.size = size
        self.raws = dict(raws)
        self.measure_energy = measure_energy
        self.threads = threads or max(1, (os.cpu_count() or 1) // size)
        self.gpus = list(gpus)
        self.workers: list[_Worker] = []
        self._stopping = False
        # spawn, not fork: forking a process that already ran torch (threads, OpenMP) can hang
        self._context = multiprocessing.get_context("spawn")

    def _start(self, gpu: GpuSlot | None) -> _Worker:
        driver_end, worker_end = self._context.Pipe()
        process = self._context.Process(
            target=worker_main,
            args=(worker_end, self.raws, self.threads, self.measure_energy, os.getpid(), gpu),
            name="mnistbench-worker",
            daemon=False,  # a daemon could not start processes of its own (torch.compile's)
        )
        with _sigint_ignored():
            process.start()
        worker_end.close()
        return _Worker(process, driver_end, gpu)

    def run(
        self,
        configs: Sequence[RunConfig],
        store: Store,
        finished: Callable[[int, RunRecord], None],
    ) -> None:
        """Train every config; `finished(index, record)` for each recorded trial. A worker that
        dies fails its own trial and is replaced; Ctrl-C (or a StoreError) stops the running
        workers, records what they trained as 'interrupted', and is re-raised."""
        queue = deque(range(len(configs)))
        slots = gpu_slots(min(self.size, len(configs)), self.gpus)
        try:
            self.workers = [self._start(gpu) for gpu in slots]
            while queue or self._busy():
                for position, worker in enumerate(self.workers):
                    if worker.task is None and queue:
                        if not worker.process.is_alive():
                            worker = self.workers[position] = self._start(worker.gpu)
                        index = queue.popleft()
                        worker.task = _Task(index, TrainedRun(configs[index]))
                        with contextlib.suppress(OSError):  # it just died: _wait fails the trial
                            worker.conn.send(configs[index])
                self._wait(store, finished, timeout=None)
        except BaseException:
            self._stop(store, finished)
            raise
        finally:
            self._close()

    def _busy(self) -> list[_Worker]:
        return [worker for worker in self.workers if worker.task is not None]

    def _wait(
        self, store: Store, finished: Callable[[int, RunRecord], None], timeout: float | None
    ) -> None:
        """Apply every message the busy workers sent; fail the trial of each one that died."""
        busy = self._busy()
        handles = [w.conn for w in busy] + [w.process.sentinel for w in busy]
        ready = set(wait(handles, timeout))
        for worker in busy:
            if worker.conn in ready or worker.process.sentinel in ready:
                self._drain(worker, store, finished)
            if worker.task is not None and worker.process.sentinel in ready:
                worker.process.join(1.0)
                if worker.process.exitcode is not None:
                    message = death_message(worker.process.pid, worker.process.exitcode)
                    if self._stopping:  # it ended while being stopped: interrupted
                        self._end_task(worker, store, finished, "interrupted",
                                       f"interrupted; {message}")  # fmt: skip
                    else:
                        self._end_task(worker, store, finished, "failed", message)

    def _drain(
        self, worker: _Worker, store: Store, finished: Callable[[int, RunRecord], None]
    ) -> None:
        while worker.task is not None:
            try:
                if not worker.conn.poll(0):
                    return
                message = worker.conn.recv()
            except (EOFError, OSError):  # it died; _wait fails its trial
                return
            ended = self._apply(worker, message, store)
            if ended is not None:
                finished(*ended)

    def _apply(self, worker: _Worker, message: tuple, store: Store) -> tuple[int, RunRecord] | None:
        """Write one message of a worker to the store; (index, record) when its trial ended."""
        task = worker.task
        assert task is not None
        run = task.run
        kind, *body = message
        try:
            if kind == "started":
                run.environment, run.started_at, run.hostname, run.pid, run.model_card = body
                run.started = True
                task.run_id = store.start_run(
                    run.config.to_dict(), run.config.config_hash(), run.environment,
                    model_card=run.model_card, fingerprint=run.model_card.get("fingerprint"),
                    started_at=run.started_at, hostname=run.hostname, pid=run.pid,
                )  # fmt: skip
            elif kind == "epoch":
                run.epochs.append((body[0], body[1]))
                store.log_epoch(task.run_id, body[0], body[1])
            elif kind == "artefact":
                run.artefacts.append((body[0], body[1], body[2]))
                store.add_artefact(task.run_id, *body)
            elif kind == "ended":
                run.status, run.metrics, run.error = body
                worker.task = None
                store.finish_run(task.run_id, run.status, run.metrics, error=run.error)
                return task.index, store.get_run(task.run_id)
            elif kind == "unstarted":  # execute raised before the run began
                worker.task = None
                error, environment = body
                if error is not None:  # bad input found while building: a failed row says why
                    run.status, run.error, run.environment = "failed", error, environment
                    return task.index, record(store, run)
        except Exception as error:
            worker.task = None
            if kind != "unstarted":  # record() has printed that one already
                report_unrecorded(run, error)
            raise
        return None

    def _end_task(
        self,
        worker: _Worker,
        store: Store,
        finished: Callable[[int, RunRecord], None],
        status: str,
        error: str,
    ) -> None:
        """End a trial whose worker can no longer report: failed (it died) or interrupted."""
        task = worker.task
        assert task is not None
        worker.task = None
        run = task.run
        run.status, run.error = status, error
        if task.run_id is not None:  # its epochs so far are in the store already
            try:
                store.finish_run(task.run_id, status, error=error)
            except Exception as store_error:
                report_unrecorded(run, store_error)
                raise
            finished(task.index, store.get_run(task.run_id))
        elif status == "failed":  # died before its run began: still a row that says why
            finished(task.index, record(store, TrainedRun.failed(run.config, error)))
        # interrupted before it began: nothing was trained, nothing to record

    def _stop(self, store: Store, finished: Callable[[int, RunRecord], None]) -> None:
        """Ask each busy worker to stop (SIGTERM), record what they send back, kill stragglers.

        A second Ctrl-C here ends the wait: the workers are killed in `_close`, and their rows
        stay 'running' until the next sweep marks them interrupted (mark_stale_runs).
        """
        self._stopping = True
        for worker in self._busy():
            if worker.process.is_alive():
                os.kill(worker.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while self._busy() and time.monotonic() < deadline:
            with contextlib.suppress(Exception):  # the store may be the reason we stop
                self._wait(store, finished, timeout=max(0.0, deadline - time.monotonic()))
        for worker in self._busy():
            worker.process.kill()
            message = f"interrupted; the worker did not stop within {STOP_GRACE_S:.0f} s"
            with contextlib.suppress(Exception):
                self._end_task(worker, store, finished, "interrupted", message)

    def _close(self) -> None:
        for worker in self.workers:
            with contextlib.suppress(OSError, ValueError):
                worker.conn.send(None)
        deadline = time.monotonic() + 5.0
        for worker in self.workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(5.0)
            worker.conn.close()
        self.workers = []
