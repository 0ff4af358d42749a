"""Executors: run the trials the driver (experiments/batch.py) hands them in-process, in a
local process pool, or on Ray.

Whatever the executor, only the driver process writes the store: pool workers and Ray tasks
train with `runner.train_config` and return a `TrainedRun` (pool workers stream its rows as
they happen), which the driver records. A failed trial is a recorded row and the others go on;
Ctrl-C (or SIGTERM, which the CLI turns into Ctrl-C) stops the whole batch after recording,
and trials interrupted in a worker keep the epochs they finished.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mnistbench.config import RunConfig
from mnistbench.data import RawDataset
from mnistbench.errors import ConfigError, StoreError
from mnistbench.experiments.plan import Trial, TrialResult
from mnistbench.experiments.pool import WorkerPool
from mnistbench.experiments.ray_cluster import LOOPBACK, connect, import_ray, run_tasks
from mnistbench.experiments.runner import (
    StoreListener,
    TrainedRun,
    _Collector,
    execute,
    record,
)
from mnistbench.experiments.unrecorded import report_unrecorded
from mnistbench.experiments.worker import visible_gpus
from mnistbench.store import RunRecord, Store


@dataclass
class TrialContext:
    """What an executor needs from the driver: the store, the data, and how to report."""

    store: Store
    raws: dict[str, RawDataset]  # loaded once by the driver, shipped to the workers
    progress: bool = True  # per-epoch progress bars (in-process only)
    measure_energy: bool = True
    log: Callable[[str], None] = lambda line: None  # run and epoch lines (in-process only)


def _state_of(status: str) -> str:
    return {"finished": "done"}.get(status, status)


# ----------------------------------------------------------------------------- executors


class Executor:
    """Runs trials and hands each result to `done` as it arrives (the driver records it)."""

    name = "base"

    def run(
        self, trials: Sequence[Trial], ctx: TrialContext, done: Callable[[TrialResult], None]
    ) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        return self.name

    def close(self) -> None:
        """Release workers or the cluster connection; safe to call twice."""


class _KeepingListener(StoreListener):
    """StoreListener that keeps a copy of every row, so that a run the store refuses (disk
    full) can still be printed (report_unrecorded) instead of lost."""

    def __init__(self, store: Store, config: RunConfig, log: Callable[[str], None]):
        super().__init__(store, log)
        self.copy = _Collector(config)
        self.refused: StoreError | None = None
        self.has_ended = False

    def _write(self, write: Callable[..., None], *args: object) -> None:
        try:
            write(*args)
        except StoreError as error:
            self.refused = self.refused or error
            raise

    def started(
        self, config: RunConfig, environment: dict[str, object], model_card: dict[str, object]
    ) -> None:
        self.copy.started(config, environment, model_card)
        self._write(super().started, config, environment, model_card)

    def epoch(self, epoch: int, metrics: dict[str, object]) -> None:
        self.copy.epoch(epoch, metrics)
        self._write(super().epoch, epoch, metrics)

    def artefact(self, name: str, kind: str, content: bytes | str) -> None:
        self.copy.artefact(name, kind, content)
        self._write(super().artefact, name, kind, content)

    def ended(self, status: str, metrics: dict[str, object], error: str | None) -> None:
        if not self.has_ended:  # when the store refuses the real end, execute ends the run
            self.has_ended = True  # again as 'failed': the copy keeps the real figures
            self.copy.ended(status, metrics, error)
        self._write(super().ended, status, metrics, error)


class LocalExecutor(Executor):
    """In-process, one trial after another, epochs written to the store as they happen."""

    name = "local"

    def run(
        self, trials: Sequence[Trial], ctx: TrialContext, done: Callable[[TrialResult], None]
    ) -> None:
        for trial in trials:
            listener = _KeepingListener(ctx.store, trial.config, ctx.log)
            try:
                execute(
                    trial.config,
                    listener,
                    raw=ctx.raws[trial.config.dataset],
                    progress=ctx.progress,
                    measure_energy=ctx.measure_energy,
                )
            except KeyboardInterrupt:
                if listener.run_id is not None:  # execute recorded it as interrupted
                    done(TrialResult(trial, "interrupted", ctx.store.get_run(listener.run_id)))
                raise
            except StoreError as error:  # disk full: stop the batch, print what was computed
                report_unrecorded(listener.copy.run, listener.refused or error)
                raise
            except Exception as error:  # a failed trial is a row; the batch goes on
                message = f"{type(error).__name__}: {error}"
                if listener.run_id is None:  # it failed before its row was started
                    stored = record(ctx.store, TrainedRun.failed(trial.config, message))
                else:
                    stored = ctx.store.get_run(listener.run_id)
                done(TrialResult(trial, "failed", stored, message))
                continue
            assert listener.run_id is not None
            stored = ctx.store.get_run(listener.run_id)
            done(TrialResult(trial, _state_of(stored.status), stored, stored.error))


class ProcessExecutor(Executor):
    """A local pool of `workers` spawned processes (experiments/pool.py); each trains and
    streams its rows, the driver records them. Each worker gets its own GPU when several are
    visible (round robin; trials sharing one say so in their environment)."""

    name = "process"

    def __init__(self, workers: int | None = None):
        self.workers = workers or max(1, (os.cpu_count() or 1) // 2)
        if self.workers < 1:
            raise ConfigError(f"Invalid --workers {workers}: give 1 or more worker processes.")

    def describe(self) -> str:
        return f"process pool, {self.workers} worker(s)"

    def run(
        self, trials: Sequence[Trial], ctx: TrialContext, done: Callable[[TrialResult], None]
    ) -> None:
        if not trials:
            return
        uses_cuda = any(trial.config.device == "cuda" for trial in trials)
        pool = WorkerPool(
            self.workers,
            raws=ctx.raws,
            measure_energy=ctx.measure_energy,
            gpus=visible_gpus() if uses_cuda else (),
        )

        def finished(index: int, stored: RunRecord) -> None:
            done(TrialResult(trials[index], _state_of(stored.status), stored, stored.error))

        pool.run([trial.config for trial in trials], ctx.store, finished)


class RayExecutor(Executor):
    """Ray tasks on a local instance or a cluster (`address`), experiments/ray_cluster.py.

    The data goes through Ray's object store once per data set and mnistbench is shipped to
    the workers (`ship_package`, runtime_env py_modules), so worker nodes need its
    dependencies (torch and the rest, from constraints.txt) but not the data files or the
    package; a worker running another mnistbench is refused. A trial asks for
    `cpus_per_trial` CPUs (its torch thread count, recorded as ray_cpus_per_trial) and, for
    CUDA configs, one GPU.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        cpus_per_trial: int = 1,
        gpus_per_trial: float | None = None,
        init_kwargs: dict | None = None,
        ship_package: bool = True,
    ):
        if cpus_per_trial < 1:
            raise ConfigError(f"Invalid CPUs per trial {cpus_per_trial}: give 1 or more.")
        self._ray = import_ray(local=address is None)
        self.address = address
        self.cpus_per_trial = cpus_per_trial
        self.gpus_per_trial = gpus_per_trial
        self.task: Callable[..., TrainedRun] | None = None  # tests: another task function
        self._owns_ray = connect(
            self._ray, address, init_kwargs=init_kwargs, ship_package=ship_package
        )

    def describe(self) -> str:
        where = self.address or f"its own local instance on {LOOPBACK}"
        return f"Ray ({where}), {self.cpus_per_trial} CPU(s) per trial"

    def run(
        self, trials: Sequence[Trial], ctx: TrialContext, done: Callable[[TrialResult], None]
    ) -> None:
        def finished(index: int, trained: TrainedRun) -> None:
            stored = record(ctx.store, trained)
            done(TrialResult(trials[index], _state_of(stored.status), stored, stored.error))

        extra = {"task": self.task} if self.task is not None else {}
        run_tasks(
            self._ray,
            [trial.config for trial in trials],
            ctx.raws,
            finished,
            cpus_per_trial=self.cpus_per_trial,
            gpus_per_trial=self.gpus_per_trial,
            measure_energy=ctx.measure_energy,
            **extra,
        )

    def close(self) -> None:
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()
        self._owns_ray = False
