"""Run many trials (a suite's or a sweep's) in-process, in a local process pool, or on Ray.

Trials are keyed by config hash: a finished (or diverged) config is skipped, so an interrupted
sweep resumes where it stopped. Whatever the executor, only this driver process writes the
store: pool workers and Ray tasks train with `runner.train_config` and return a `TrainedRun`,
which the driver records. A failed trial is a recorded row and the others go on; Ctrl-C
(or SIGTERM, which the CLI turns into Ctrl-C) stops the whole batch after recording.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from mnistbench.config import RunConfig
from mnistbench.data import RawDataset, load_dataset
from mnistbench.errors import ConfigError, StoreError
from mnistbench.experiments.pool import WorkerPool
from mnistbench.experiments.ray_cluster import connect, import_ray, run_tasks
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

EXECUTORS = ("local", "process", "ray")


@dataclass(frozen=True)
class Trial:
    """One config to run, with what the batch says about it (label, membership artefact)."""

    config: RunConfig
    label: str = ""  # what distinguishes it within its suite or sweep, e.g. "sgd lr=0.01"
    # (artefact name, JSON text) recorded with the run, e.g. ("suite:architecture-showdown", ...)
    tag: tuple[str, str] | None = None

    @property
    def config_hash(self) -> str:
        return self.config.config_hash()

    def describe(self) -> str:
        c = self.config
        return f"{c.model} {c.dataset} seed {c.seed}" + (f" [{self.label}]" if self.label else "")


@dataclass
class TrialResult:
    """How one trial ended: done (finished), diverged, failed, interrupted, or skipped."""

    trial: Trial
    state: str
    record: RunRecord | None
    error: str | None = None


@dataclass
class TrialContext:
    """What an executor needs from the driver: the store, the data, and how to report."""

    store: Store
    raws: dict[str, RawDataset]  # loaded once by the driver, shipped to the workers
    progress: bool = True  # per-epoch progress bars (in-process only)
    measure_energy: bool = True


@dataclass
class BatchSummary:
    """Every trial's result, in the order the trials were given (skipped ones included)."""

    results: list[TrialResult] = field(default_factory=list)
    merged: int = 0  # trials dropped because another trial had the same config hash

    def count(self, state: str) -> int:
        return sum(r.state == state for r in self.results)


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

    def __init__(self, store: Store, config: RunConfig):
        super().__init__(store)
        self.copy = _Collector(config)
        self.refused: StoreError | None = None
        self.has_ended = False

    def _write(self, write: Callable[..., None], *args: object) -> None:
        try:
            write(*args)
        except StoreError as error:
            self.refused = self.refused or error
            raise

    def started(self, config: RunConfig, environment: dict[str, object]) -> None:
        self.copy.started(config, environment)
        self._write(super().started, config, environment)

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
            listener = _KeepingListener(ctx.store, trial.config)
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
        self._ray = import_ray()
        self.address = address
        self.cpus_per_trial = cpus_per_trial
        self.gpus_per_trial = gpus_per_trial
        self.task: Callable[..., TrainedRun] | None = None  # tests: another task function
        self._owns_ray = connect(
            self._ray, address, init_kwargs=init_kwargs, ship_package=ship_package
        )

    def describe(self) -> str:
        where = self.address or "local instance"
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


def make_executor(
    kind: str | None = None,
    *,
    workers: int | None = None,
    ray_address: str | None = None,
    cpus_per_trial: int = 1,
) -> Executor:
    """The executor a user asked for; `--workers N` alone means a process pool of N."""
    if kind is None:
        kind = "process" if workers and workers > 1 else "local"
    if kind not in EXECUTORS:
        raise ConfigError(f"Unknown --executor {kind!r}. Choose one of {', '.join(EXECUTORS)}.")
    if workers is not None and workers < 1:
        raise ConfigError(f"Invalid --workers {workers}: give 1 or more.")
    if ray_address and kind != "ray":
        raise ConfigError("--ray-address needs --executor ray.")
    if kind == "local":
        return LocalExecutor()
    if kind == "process":
        return ProcessExecutor(workers)
    # a local instance runs --workers trials at once; a cluster has its own size
    local_cpus = {"num_cpus": workers * cpus_per_trial} if workers and not ray_address else None
    return RayExecutor(ray_address, cpus_per_trial=cpus_per_trial, init_kwargs=local_cpus)


# ---------------------------------------------------------------------------------- driver


def unique_trials(trials: Iterable[Trial]) -> tuple[list[Trial], int]:
    """Trials with distinct config hashes (first one kept), and how many were dropped."""
    trials_list = list(trials)
    seen: set[str] = set()
    kept: list[Trial] = []
    for trial in trials_list:
        if trial.config_hash not in seen:
            seen.add(trial.config_hash)
            kept.append(trial)
    return kept, len(trials_list) - len(kept)


def _tag(store: Store, result: TrialResult) -> None:
    if result.trial.tag is not None and result.record is not None:
        name, content = result.trial.tag
        store.add_artefact(result.record.run_id, name, "json", content)


def format_result(result: TrialResult, index: int, total: int) -> str:
    """One progress line: `[3/10] done     mlp mnist seed 0  97.81%  1.2 s/epoch  run 7`."""
    width = len(str(total))
    head = f"[{index:>{width}}/{total}] {result.state:<11} {result.trial.describe()}"
    record = result.record
    if record is None:
        return head
    m = record.metrics
    parts = [head]
    if m.get("test_accuracy") is not None:
        parts.append(f"{100 * m['test_accuracy']:.2f}%")
    if m.get("time_per_epoch_s") is not None:
        parts.append(f"{m['time_per_epoch_s']:.2f} s/epoch")
    parts.append(f"run {record.run_id} ({record.config_hash})")
    if result.state not in ("done", "skipped") and result.error:
        parts.append(f"— {result.error.splitlines()[0][:200]}")
    return "  ".join(parts)


def run_trials(
    trials: Sequence[Trial],
    store: Store,
    *,
    executor: Executor | None = None,
    data_dir: str | Path | None = None,
    download: bool = True,
    force: bool = False,
    progress: bool = True,
    measure_energy: bool = True,
    echo: Callable[[str], None] | None = None,
    desc: str = "trials",
) -> BatchSummary:
    """Run every trial not yet completed in `store`; return each trial's result.

    `echo` receives one line per trial (skipped, done, diverged, failed, interrupted); with
    `progress`, a bar over the trials is drawn too. KeyboardInterrupt stops the batch after the
    trial in progress has been recorded, and is re-raised.
    """
    executor = executor or LocalExecutor()
    kept, merged = unique_trials(trials)
    summary = BatchSummary(merged=merged)
    by_hash: dict[str, TrialResult] = {}
    bar = tqdm(total=len(kept), desc=desc, unit="trial", disable=not progress, leave=True)

    def say(line: str) -> None:
        if echo is None:
            return
        if progress:
            bar.write(line)  # above the bar, without breaking it
        else:
            echo(line)

    def done(result: TrialResult) -> None:
        _tag(store, result)
        by_hash[result.trial.config_hash] = result
        bar.update(1)
        say(format_result(result, len(by_hash), len(kept)))

    try:
        todo: list[Trial] = []
        for trial in kept:
            existing = None if force else store.find_completed(trial.config_hash)
            if existing is not None:
                done(TrialResult(trial, "skipped", existing))
            else:
                todo.append(trial)
        if todo:
            store.mark_stale_runs()  # rows left 'running' by a killed earlier attempt
            raws = {
                name: load_dataset(name, data_dir=data_dir, download=download, progress=progress)
                for name in dict.fromkeys(t.config.dataset for t in todo)
            }
            ctx = TrialContext(store, raws, progress=progress, measure_energy=measure_energy)
            executor.run(todo, ctx, done)
    finally:
        bar.close()
        summary.results = [by_hash[t.config_hash] for t in kept if t.config_hash in by_hash]
    return summary


def trial_tag(kind: str, name: str, **details: object) -> tuple[str, str]:
    """The membership artefact of a suite's or sweep's trial: ("suite:NAME", JSON)."""
    return f"{kind}:{name}", json.dumps({kind: name, **details}, sort_keys=True, default=str)
