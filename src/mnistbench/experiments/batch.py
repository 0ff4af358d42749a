"""The one run pipeline: every command that trains (run, suite, sweep, speedrun) is a list of
trials handed to `run_trials`, which alone decides what is already recorded, what --force and
--dry-run do, and how a failure is recorded.

Trials are keyed by config hash (analysis settings left out) plus the model's fingerprint: a
finished (or diverged) trial is skipped, so an interrupted batch resumes where it stopped, and
a skipped trial says which machine measured it. Whatever the executor, only this driver
process writes the store (experiments/executors.py). A failed trial is a recorded row and the
others go on; Ctrl-C (or SIGTERM, which the CLI turns into Ctrl-C) stops the whole batch after
recording the trial in progress.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from mnistbench.config import RunConfig
from mnistbench.errors import ConfigError, MnistbenchError
from mnistbench.experiments.configure import dry_run as dry_run_config
from mnistbench.experiments.configure import validate_config
from mnistbench.experiments.machine import machine_of, machines_match
from mnistbench.experiments.plan import (
    EXECUTORS,
    BatchSummary,
    Trial,
    TrialResult,
    trial_tag,
    unique_trials,
)

if TYPE_CHECKING:
    from mnistbench.data import RawDataset
    from mnistbench.experiments.executors import Executor
    from mnistbench.store import RunRecord, Store

__all__ = [
    "EXECUTORS", "RunFailedError", "RunOutcome", "Session", "check_runnable", "format_result",
    "make_executor", "run_config", "run_trials", "stored_runs", "trial_tag",
]  # fmt: skip


def _silent(message: str) -> None:
    """Print nothing."""


@dataclass(frozen=True)
class Session:
    """What every trial of one command shares: where the data is, and what the user sees."""

    data_dir: str | Path | None = None  # None: $MNISTBENCH_DATA, then the user cache
    download: bool = True  # fetch missing data files from the public mirrors
    progress: bool = True  # progress bars (epochs, trials)
    measure_energy: bool = True  # CodeCarbon; off for dry runs and records (it shares cores)
    log: Callable[[str], None] = _silent  # notes and one line per epoch (stderr in the CLI)


@dataclass
class RunOutcome:
    record: RunRecord
    reused: bool  # True when the config had already finished and nothing was trained
    measured_on: str | None = None  # reused from another machine: which one (timings are its)


class RunFailedError(RuntimeError):
    """A run ended as failed or interrupted; it is recorded, with its error, in the store."""

    def __init__(self, result: TrialResult):
        self.result = result
        record = result.record
        where = f"run {record.run_id}" if record is not None else "a run"
        super().__init__(
            f"{where} of {result.trial.describe()} ended {result.state}: {result.error}"
        )


def make_executor(
    kind: str | None = None,
    *,
    workers: int | None = None,
    ray_address: str | None = None,
    cpus_per_trial: int = 1,
) -> Executor:
    """The executor a user asked for; `--workers N` alone means a process pool of N."""
    from mnistbench.experiments.executors import LocalExecutor, ProcessExecutor, RayExecutor

    if kind is None:
        kind = "process" if workers and workers > 1 else "local"
    if kind not in EXECUTORS:
        raise ConfigError(f"Unknown --executor {kind!r}. Choose one of {', '.join(EXECUTORS)}.")
    if workers is not None and workers < 1:
        raise ConfigError(f"Invalid --workers {workers}: give 1 or more.")
    if ray_address and kind != "ray":
        raise ConfigError("--ray-address needs --executor ray.")
    if kind == "local" and workers is not None and workers > 1:
        raise ConfigError(
            f"--workers {workers} with --executor local: the local executor trains one trial at "
            "a time in this process, so it would ignore --workers. Drop --executor local "
            f"(--workers {workers} alone means a pool of {workers} processes), or pass "
            "--executor process or ray."
        )
    if kind == "local":
        return LocalExecutor()
    if kind == "process":
        return ProcessExecutor(workers)
    if cpus_per_trial < 1:
        raise ConfigError(f"Invalid --cpus-per-trial {cpus_per_trial}: give 1 or more.")
    # a local instance runs --workers trials at once; a cluster has its own size
    local_cpus = {"num_cpus": workers * cpus_per_trial} if workers and not ray_address else None
    return RayExecutor(ray_address, cpus_per_trial=cpus_per_trial, init_kwargs=local_cpus)


def _find_completed(store: Store, config: RunConfig) -> RunRecord | None:
    """The finished run of this config and this model architecture (the model card's
    fingerprint: an edited model, or an outside model's edited source, trains again)."""
    from mnistbench.cards import fingerprint_for  # imports torch and the registry
    from mnistbench.store.schema_records import RecordError, stored_config_hash

    found = store.find_completed(config.config_hash(), fingerprint=fingerprint_for(config))
    if found is None:
        return None
    # Only the configuration named on this command line is built or imported; a stored row is
    # reused when its own config hashes to the hash it was found by (a row edited by hand, or
    # one with a forged hash, is not shown as this config's result).
    try:
        recomputed = stored_config_hash(found.config)
    except (TypeError, ValueError):
        recomputed = "not computable"
    if recomputed != found.config_hash:
        raise RecordError(
            f"Run {found.run_id} in the store at {store.path} is filed under config_hash "
            f"{found.config_hash}, but its config hashes to {recomputed}: the row was edited "
            "after the run, or its hash forged, so it is not reused as this configuration's "
            f"result. Run `mnistbench store check --store {store.path}`, and copy the valid "
            "runs into a new store with `mnistbench store recover --out NEW.sqlite`, or pass "
            "--force to train again."
        )
    return found


def stored_runs(store: Store, trials: Iterable[Trial]) -> dict[str, RunRecord]:
    """The finished run each trial would reuse, by config hash (what `--plan` shows and the
    driver skips); trials with none are absent."""
    found: dict[str, RunRecord] = {}
    for trial in trials:
        record = _find_completed(store, trial.config)
        if record is not None:
            found[trial.config_hash] = record
    return found


def check_runnable(config: RunConfig, checked: set[str] | None = None) -> None:
    """Bad input only the model and its recipe can see (an SVM given --epochs 3, an image size
    the model cannot take, a factory returning the wrong shape): ConfigError before anything is
    loaded or recorded. `checked` skips configs whose model was already checked (by everything
    but the seed, which does not change what a model can take)."""
    key = replace(config, seed=0).config_hash()
    if checked is not None and key in checked:
        return
    import torch  # the model is built on the CPU here, outside the run's random streams

    from mnistbench.experiments.runner import checked_model
    from mnistbench.models import resolve_model

    with torch.random.fork_rng(devices=[]):
        checked_model(replace(config, device="cpu"), resolve_model(config.model, config.recipe_of))
    if checked is not None:
        checked.add(key)


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
    if result.measured_on:
        parts.append(f"measured on {result.measured_on}, not this machine")
    if result.state not in ("done", "skipped") and result.error:
        parts.append(f"— {result.error.splitlines()[0][:200]}")
    return "  ".join(parts)


@contextlib.contextmanager
def _scratch_store() -> Iterator[Store]:
    """A throw-away store for --dry-run: the real one is never opened."""
    from mnistbench.store import Store

    with tempfile.TemporaryDirectory() as folder, Store(Path(folder) / "dry-run.sqlite") as store:
        yield store


def run_trials(
    trials: Sequence[Trial],
    store: Store | None,
    session: Session | None = None,
    *,
    executor: Executor | None = None,
    force: bool = False,
    dry_run: bool = False,
    raws: dict[str, RawDataset] | None = None,
    echo: Callable[[str], None] | None = None,
    desc: str = "trials",
) -> BatchSummary:
    """Run every trial not yet completed in `store`; return each trial's result.

    `force` trains even what is recorded. `dry_run` shrinks every trial to two steps
    (`config.dry_run`) and records into a throw-away store (`store` may then be None). `raws`
    are data sets already loaded (by name); the others are loaded once here. `echo` receives
    one line per trial; with `session.progress` and several trials, a bar is drawn too.
    KeyboardInterrupt stops the batch after the trial in progress has been recorded, and is
    re-raised.
    """
    session = session or Session()
    with contextlib.ExitStack() as stack:
        if dry_run:
            trials = [replace(t, config=dry_run_config(t.config)) for t in trials]
            store = stack.enter_context(_scratch_store())
            session = replace(session, measure_energy=False)
        if store is None:
            raise ValueError("run_trials needs a store unless dry_run")
        return _run(trials, store, session, executor, force, raws or {}, echo, desc)


def _run(trials, store, session, executor, force, raws, echo, desc) -> BatchSummary:
    from tqdm.auto import tqdm

    from mnistbench.data import load_dataset
    from mnistbench.engine.measure import collect_environment
    from mnistbench.experiments.executors import LocalExecutor, TrialContext

    executor = executor or LocalExecutor()
    kept, merged = unique_trials(trials)
    summary = BatchSummary(merged=merged)
    by_hash: dict[str, TrialResult] = {}
    bar = tqdm(total=len(kept), desc=desc, unit="trial", leave=True,
               disable=not session.progress or len(kept) < 2)  # fmt: skip

    def write(line: str, sink: Callable[[str], None], file=sys.stdout) -> None:
        if bar.disable:
            sink(line)
        else:
            bar.write(line, file=file)  # above the bar, without breaking it

    def done(result: TrialResult) -> None:
        if result.trial.tag is not None and result.record is not None:
            name, content = result.trial.tag
            store.add_artefact(result.record.run_id, name, "json", content)
        by_hash[result.trial.config_hash] = result
        bar.update(1)
        if echo is not None:
            write(format_result(result, len(by_hash), len(kept)), echo)

    here: dict[str, dict[str, object]] = {}  # this machine's environment, per device

    def measured_on(trial: Trial, record: RunRecord) -> str | None:
        device = trial.config.device
        if device not in here:
            here[device] = collect_environment(device)
        if machines_match(record.environment, here[device]):
            return None
        return machine_of(record.environment)

    try:
        todo: list[Trial] = []
        stored = {} if force else stored_runs(store, kept)  # the lookup `--plan` shows
        for trial in kept:
            existing = stored.get(trial.config_hash)
            if existing is not None:
                done(
                    TrialResult(
                        trial, "skipped", existing, measured_on=measured_on(trial, existing)
                    )
                )
            else:
                todo.append(trial)
        checked: set[str] = set()
        for trial in todo:  # a trial that cannot run stops the batch before anything trains
            try:
                check_runnable(trial.config, checked)
            except MnistbenchError as error:
                raise type(error)(
                    str(error) if len(todo) == 1 else f"{trial.describe()}: {error}"
                ) from None
        if todo:
            store.mark_stale_runs()  # rows left 'running' by a killed earlier attempt
            loaded = dict(raws)
            for name in dict.fromkeys(t.config.dataset for t in todo):
                if name not in loaded:
                    loaded[name] = load_dataset(
                        name, data_dir=session.data_dir, download=session.download,
                        progress=session.progress,
                    )  # fmt: skip
            ctx = TrialContext(
                store, loaded, progress=session.progress, measure_energy=session.measure_energy,
                log=lambda line: write(line, session.log, sys.stderr),
            )  # fmt: skip
            executor.run(todo, ctx, done)
    finally:
        bar.close()
        summary.results = [by_hash[t.config_hash] for t in kept if t.config_hash in by_hash]
    return summary


def run_config(
    config: RunConfig,
    store: Store,
    *,
    raw: RawDataset | None = None,
    data_dir: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
    download: bool = True,
    measure_energy: bool = True,
    log: Callable[[str], None] = _silent,
    final_test_only: bool = False,
) -> RunOutcome:
    """Train and evaluate `config`, record it in `store`, and return the stored record: the
    library face of `mnistbench run`, a batch of one trial in this process.

    A config already completed in the store is not trained again unless `force` (the outcome
    says `reused`, and `measured_on` names the other machine when it was not this one).
    `final_test_only` seals the test set until one final score (test_policy "final_only").
    A failed run is recorded and raises RunFailedError; Ctrl-C (or SIGTERM turned into
    KeyboardInterrupt by the CLI) records "interrupted" and is re-raised.
    """
    if final_test_only:
        config = replace(config, test_policy="final_only")
    validate_config(config)
    session = Session(data_dir, download, progress, measure_energy, log)
    summary = run_trials(
        [Trial(config)], store, session, force=force, raws={config.dataset: raw} if raw else None
    )
    (result,) = summary.results
    if result.state in ("failed", "interrupted") or result.record is None:
        raise RunFailedError(result)
    return RunOutcome(result.record, result.state == "skipped", result.measured_on)
