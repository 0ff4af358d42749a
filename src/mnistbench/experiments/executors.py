"""Executors: run the trials the driver (experiments/batch.py) hands them in-process, in a
local process pool, or on Ray.

Whatever the executor, only the driver process writes the store: pool workers and Ray tasks
train with `runner.train_config` and return a `TrainedRun`, which the driver records. A failed
trial is a recorded row and the others go on; Ctrl-C (or SIGTERM, which the CLI turns into
Ctrl-C) stops the whole batch after recording.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass

import torch

from mnistbench.config import RunConfig
from mnistbench.data import RawDataset
from mnistbench.engine.device import flush_denormals
from mnistbench.engine.measure import collect_environment
from mnistbench.errors import ConfigError
from mnistbench.experiments.plan import Trial, TrialResult
from mnistbench.experiments.runner import StoreListener, TrainedRun, execute, record, train_config
from mnistbench.store import Store


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


def _failed_run(config: RunConfig, error: str) -> TrainedRun:
    return TrainedRun(
        config, status="failed", error=error, environment=collect_environment(config.device)
    )


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


class LocalExecutor(Executor):
    """In-process, one trial after another, epochs written to the store as they happen."""

    name = "local"

    def run(
        self, trials: Sequence[Trial], ctx: TrialContext, done: Callable[[TrialResult], None]
    ) -> None:
        for trial in trials:
            listener = StoreListener(ctx.store, ctx.log)
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
            except Exception as error:  # a failed trial is a row; the batch goes on
                message = f"{type(error).__name__}: {error}"
                if listener.run_id is None:  # it failed before its row was started
                    stored = record(ctx.store, _failed_run(trial.config, message))
                else:
                    stored = ctx.store.get_run(listener.run_id)
                done(TrialResult(trial, "failed", stored, message))
                continue
            assert listener.run_id is not None
            stored = ctx.store.get_run(listener.run_id)
            done(TrialResult(trial, _state_of(stored.status), stored, stored.error))


# Worker-side state of the process pool: the data sets, shipped once per worker.
_WORKER_RAWS: dict[str, RawDataset] = {}


def _init_worker(raws: dict[str, RawDataset], threads: int) -> None:
    flush_denormals()  # a fresh process: before its first parallel op, so every thread has it
    _WORKER_RAWS.update(raws)
    torch.set_num_threads(threads)  # share the cores between workers instead of oversubscribing


def _train_in_worker(config: RunConfig, measure_energy: bool) -> TrainedRun:
    return train_config(
        config, raw=_WORKER_RAWS[config.dataset], progress=False, measure_energy=measure_energy
    )


class ProcessExecutor(Executor):
    """A local pool of `workers` spawned processes; each trains and returns, the driver records."""

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
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        # spawn, not fork: forking a process that already ran torch (threads, OpenMP) can hang
        pool = ProcessPoolExecutor(
            max_workers=min(self.workers, len(trials)),
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(ctx.raws, threads),
        )
        pending: dict[Future, Trial] = {
            pool.submit(_train_in_worker, trial.config, ctx.measure_energy): trial
            for trial in trials
        }
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    trial = pending.pop(future)
                    try:
                        trained = future.result()
                    except Exception as error:  # the worker died (killed, out of memory, ...)
                        trained = _failed_run(
                            trial.config, f"worker process failed: {type(error).__name__}: {error}"
                        )
                    stored = record(ctx.store, trained)
                    done(TrialResult(trial, _state_of(stored.status), stored, stored.error))
        except BaseException as error:
            # Ctrl-C: the trials still in a worker end as 'interrupted' rows; queued ones are
            # simply not run (a rerun trains both).
            for future, trial in pending.items():
                if isinstance(error, KeyboardInterrupt) and future.running():
                    interrupted = TrainedRun(
                        trial.config,
                        status="interrupted",
                        error="interrupted while training in a worker process",
                        environment=collect_environment(trial.config.device),
                    )
                    stored = record(ctx.store, interrupted)
                    done(TrialResult(trial, "interrupted", stored, interrupted.error))
            # Workers would otherwise finish their trial before the driver can exit; the pool
            # has no public way to stop a running task, so end its processes.
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)


def _train_on_ray(config: RunConfig, raw: RawDataset, threads: int, measure_energy: bool):
    flush_denormals()  # a reused Ray worker may hold it on its main thread only (recorded)
    torch.set_num_threads(threads)
    return train_config(config, raw=raw, progress=False, measure_energy=measure_energy)


class RayExecutor(Executor):
    """Ray tasks on a local instance or a cluster (`address`); the data goes through Ray's
    object store once per data set, so worker nodes need mnistbench (same version, installed
    with the same constraints) but not the data files. A trial asks for `cpus_per_trial` CPUs
    (its torch thread count) and, for CUDA configs, one GPU."""

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        cpus_per_trial: int = 1,
        gpus_per_trial: float | None = None,
        init_kwargs: dict | None = None,
    ):
        try:
            import ray
        except ImportError:
            raise ConfigError(
                "--executor ray needs Ray, which is not installed. Install it with "
                "`pip install -c constraints.txt -e '.[ray]'`, or use --executor local/process."
            ) from None
        self._ray = ray
        self.address = address
        self.cpus_per_trial = cpus_per_trial
        self.gpus_per_trial = gpus_per_trial
        self._owns_ray = False
        if not ray.is_initialized():
            # a local instance without its dashboard; a cluster keeps its own settings
            kwargs: dict = {"log_to_driver": False}
            if address is None:
                kwargs["include_dashboard"] = False
            kwargs.update(init_kwargs or {})
            try:
                ray.init(address=address, **kwargs)
            except Exception as error:  # Ray raises several kinds for an unreachable cluster
                raise ConfigError(
                    f"Could not start or join Ray (address {address or 'local'}): "
                    f"{type(error).__name__}: {error}. Check the address (`ray status` on the "
                    "head node prints it), or leave --ray-address out to start a local instance."
                ) from None
            self._owns_ray = True

    def describe(self) -> str:
        where = self.address or "local instance"
        return f"Ray ({where}), {self.cpus_per_trial} CPU(s) per trial"

    def run(
        self, trials: Sequence[Trial], ctx: TrialContext, done: Callable[[TrialResult], None]
    ) -> None:
        ray = self._ray
        remote = ray.remote(_train_on_ray)
        raw_refs = {name: ray.put(raw) for name, raw in ctx.raws.items()}
        pending = {}
        for trial in trials:
            gpus = self.gpus_per_trial
            if gpus is None:
                gpus = 1 if trial.config.device == "cuda" else 0
            ref = remote.options(num_cpus=self.cpus_per_trial, num_gpus=gpus).remote(
                trial.config,
                raw_refs[trial.config.dataset],
                self.cpus_per_trial,
                ctx.measure_energy,
            )
            pending[ref] = trial
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    trial = pending.pop(ref)
                    try:
                        trained = ray.get(ref)
                    except Exception as error:  # the task's worker or node died
                        trained = _failed_run(
                            trial.config, f"Ray task failed: {type(error).__name__}: {error}"
                        )
                    stored = record(ctx.store, trained)
                    done(TrialResult(trial, _state_of(stored.status), stored, stored.error))
        except BaseException:
            for ref in pending:  # Ray cannot say which were running; none is recorded
                ray.cancel(ref, force=True)
            raise

    def close(self) -> None:
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()
        self._owns_ray = False
