"""Run one configuration end to end: data, model, training, measurements, and its record.

The store row is created only once the data and model are ready, so bad input never leaves a
row behind; once it exists, the run always ends in a recorded status. Training reports its rows
to a `RunListener`: `run_config` writes them to the store as they happen, while `train_config`
collects them into a `TrainedRun` (for worker processes and Ray tasks, which never touch the
store) that the driver writes with `record`.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from mnistbench.config import RunConfig, validate_config
from mnistbench.data import RawDataset, load_dataset, prepare_device_data, resize_data, seal_test
from mnistbench.engine import FitResult, autocast_factory, confusion_matrix, summarize_epochs
from mnistbench.engine.device import place_model
from mnistbench.engine.measure import (
    EnergyMeter,
    collect_environment,
    count_parameters,
    flops_per_sample,
    inference_latency_ms,
    model_size_bytes,
    peak_memory_mb,
    reset_peak_memory,
)
from mnistbench.errors import StoreError
from mnistbench.experiments.unrecorded import report_unrecorded
from mnistbench.models import create_model, get_model_info
from mnistbench.recipes import RecipeContext, check_protocol_config, run_protocol
from mnistbench.store import RunRecord, Store


@dataclass
class RunOutcome:
    record: RunRecord
    reused: bool  # True when the config had already finished and nothing was trained


class RunListener:
    """Where a run's rows go as they happen: the store (`run_config`) or a `TrainedRun`."""

    def started(self, config: RunConfig, environment: dict[str, object]) -> None:
        """Data and model are ready; training starts now."""

    def epoch(self, epoch: int, metrics: dict[str, object]) -> None:
        """One epoch's metrics (1-based)."""

    def artefact(self, name: str, kind: str, content: bytes | str) -> None:
        """A named artefact of the run."""

    def ended(self, status: str, metrics: dict[str, object], error: str | None) -> None:
        """The final status; called exactly once after `started`, on every way out."""


class StoreListener(RunListener):
    """Writes each row to the store when it happens (the in-process path)."""

    def __init__(self, store: Store, log: Callable[[str], None] = lambda message: None):
        self.store = store
        self.log = log
        self.run_id: int | None = None

    def started(self, config: RunConfig, environment: dict[str, object]) -> None:
        config_hash = config.config_hash()
        self.run_id = self.store.start_run(config.to_dict(), config_hash, environment)
        self.log(
            f"run {self.run_id}: {config.model} on {config.dataset} ({config_hash}), "
            f"{config.device}"
        )

    def epoch(self, epoch: int, metrics: dict[str, object]) -> None:
        assert self.run_id is not None
        self.store.log_epoch(self.run_id, epoch, metrics)

    def artefact(self, name: str, kind: str, content: bytes | str) -> None:
        assert self.run_id is not None
        self.store.add_artefact(self.run_id, name, kind, content)

    def ended(self, status: str, metrics: dict[str, object], error: str | None) -> None:
        assert self.run_id is not None
        self.store.finish_run(self.run_id, status, metrics, error=error)


def utc_now() -> str:
    """Now as the store writes times: ISO 8601, UTC, milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class TrainedRun:
    """Everything a run produced, held in memory until the driver records it (picklable).

    `started_at`, `hostname` and `pid` say where and when it really trained (a pool worker, a
    Ray node), so the stored row names that host and its real start time, not the driver's.
    """

    config: RunConfig
    status: str = "failed"  # finished | diverged | failed | interrupted
    metrics: dict[str, object] = field(default_factory=dict)
    error: str | None = None
    environment: dict[str, object] = field(default_factory=dict)
    epochs: list[tuple[int, dict[str, object]]] = field(default_factory=list)
    artefacts: list[tuple[str, str, bytes | str]] = field(default_factory=list)
    started: bool = False  # False: it failed before training (bad data, model would not build)
    started_at: str | None = None  # when training started (None: it never did; the store uses now)
    hostname: str = field(default_factory=socket.gethostname)  # the machine that trained it
    pid: int = field(default_factory=os.getpid)  # the process that trained it
    model_card: dict | None = None  # filled by the run pipeline (mnistbench.cards)

    @classmethod
    def failed(cls, config: RunConfig, error: str) -> TrainedRun:
        """A run that failed before training (or whose worker died): a row that says why."""
        try:
            environment = collect_environment(config.device)
        except Exception:  # a CUDA trial of a Ray cluster, recorded by a driver without a GPU
            environment = {**collect_environment("cpu"), "device": config.device}
        return cls(config, status="failed", error=error, environment=environment)


class _Collector(RunListener):
    """Collects a run's rows into a TrainedRun (in the process that trains it)."""

    def __init__(self, config: RunConfig):
        self.run = TrainedRun(config)

    def started(self, config: RunConfig, environment: dict[str, object]) -> None:
        self.run.environment = dict(environment)
        self.run.started = True
        self.run.started_at = utc_now()

    def epoch(self, epoch: int, metrics: dict[str, object]) -> None:
        self.run.epochs.append((epoch, dict(metrics)))

    def artefact(self, name: str, kind: str, content: bytes | str) -> None:
        self.run.artefacts.append((name, kind, content))

    def ended(self, status: str, metrics: dict[str, object], error: str | None) -> None:
        self.run.status, self.run.metrics, self.run.error = status, dict(metrics), error


def _static_measurements(
    model: torch.nn.Module, input_shape: tuple[int, ...], device: str, count_flops: bool = True
):
    # count_flops is False for scikit-learn models: no forward pass before they are fitted.
    flops = flops_per_sample(model, input_shape, device) if count_flops else None
    return {
        "params": count_parameters(model),
        "params_total": count_parameters(model, trainable_only=False),
        "flops_per_sample": flops,
        "macs_per_sample": flops // 2 if flops is not None else None,
        "model_size_bytes": model_size_bytes(model),
    }


def execute(
    config: RunConfig,
    listener: RunListener,
    *,
    raw: RawDataset | None = None,
    data_dir: str | Path | None = None,
    progress: bool = True,
    download: bool = True,
    measure_energy: bool = True,
    final_test_only: bool = False,
) -> None:
    """Train and evaluate `config`, reporting every row to `listener`.

    `final_test_only` (records: `mnistbench speedrun`) seals the test split, so the protocol
    can score the finished model on it once and any earlier read raises SealedTestSetError.

    `raw` skips loading the data set (a sweep's driver loads it once for all its trials).
    Failures before `listener.started` raise with nothing reported; after it, Ctrl-C ends as
    "interrupted" and any other exception as "failed" (with what was measured so far), and
    both are re-raised.
    """
    wall_started = time.perf_counter()
    info = get_model_info(config.model)
    check_protocol_config(info.protocol, config)  # before any row exists
    if raw is None:
        raw = load_dataset(config.dataset, data_dir=data_dir, download=download, progress=progress)
    data = prepare_device_data(
        raw,
        config.device,
        val_size=config.val_size,
        seed=config.seed,
        scaling=info.input_scaling,
        subset=config.subset,
    )
    data = resize_data(data, config.image_size)
    if final_test_only:
        data = seal_test(data, f"this {config.model} run")
    data_load_s = time.perf_counter() - wall_started
    torch.manual_seed(config.seed)
    model = create_model(config.model, num_classes=data.num_classes, **config.options())
    model = place_model(model, config.device)
    autocast = autocast_factory(config.device, config.precision)
    input_shape = (info.input_shape[0], config.image_size, config.image_size)
    metrics: dict[str, object] = _static_measurements(
        model, input_shape, config.device, count_flops="sklearn" not in info.tags
    )
    metrics["data_load_s"] = data_load_s
    metrics["test_protocol"] = "final_only" if final_test_only else "every_epoch"

    listener.started(config, collect_environment(config.device))
    energy = EnergyMeter() if measure_energy else None
    try:
        if energy:
            energy.start()
        reset_peak_memory(config.device)
        context = RecipeContext(
            model=model,
            data=data,
            config=config,
            on_epoch=lambda record: listener.epoch(record.epoch, record.to_dict()),
            add_artefact=listener.artefact,
            progress=progress,
            test_every_epoch=not final_test_only,
        )
        result = run_protocol(info.protocol, context)
        metrics.update(_training_metrics(result, len(data.train), config, energy))
        metrics.update(context.extra_metrics or {})
        if result.status == "finished":
            for batch_size in (1, 1000):
                metrics[f"latency_batch{batch_size}_ms"] = inference_latency_ms(
                    model, input_shape, batch_size, config.device, autocast
                )
            if result.last_test is not None:
                matrix = confusion_matrix(
                    data.test.labels, result.last_test.predictions, data.num_classes
                )
                listener.artefact("confusion_matrix", "json", json.dumps(matrix))
        metrics["wall_time_s"] = time.perf_counter() - wall_started
        listener.ended(result.status, metrics, result.message)
    except KeyboardInterrupt:
        listener.ended("interrupted", metrics, "interrupted (Ctrl-C or SIGTERM)")
        raise
    except BaseException as error:
        listener.ended("failed", metrics, f"{type(error).__name__}: {error}")
        raise
    finally:
        if energy:
            energy.stop()  # idempotent; ends CodeCarbon's sampling thread on every way out


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
    log: Callable[[str], None] = lambda message: None,
    final_test_only: bool = False,
) -> RunOutcome:
    """Train and evaluate `config`, record it in `store`, and return the stored record.

    A config whose hash already has a completed run is not trained again unless `force`.
    Ctrl-C (or SIGTERM turned into KeyboardInterrupt by the CLI) records "interrupted";
    any other exception records "failed" with the error; both are re-raised.
    """
    validate_config(config)
    if not force:
        existing = store.find_completed(config.config_hash())
        if existing is not None:
            return RunOutcome(existing, reused=True)
    store.mark_stale_runs()
    listener = StoreListener(store, log)
    execute(
        config,
        listener,
        raw=raw,
        data_dir=data_dir,
        progress=progress,
        download=download,
        measure_energy=measure_energy,
        final_test_only=final_test_only,
    )
    assert listener.run_id is not None
    return RunOutcome(store.get_run(listener.run_id), reused=False)


def train_config(
    config: RunConfig,
    *,
    raw: RawDataset | None = None,
    data_dir: str | Path | None = None,
    progress: bool = False,
    download: bool = False,
    measure_energy: bool = True,
) -> TrainedRun:
    """Train and evaluate `config` without a store and return what it produced.

    For worker processes: any failure comes back as a TrainedRun with status "failed" (and
    `started` False when it failed before training), never as an exception. Ctrl-C (a Ray
    task's cancel) after training started comes back as "interrupted" with the epochs it
    finished; before that it is re-raised (nothing to record).
    """
    validate_config(config)
    collector = _Collector(config)
    try:
        execute(
            config,
            collector,
            raw=raw,
            data_dir=data_dir,
            progress=progress,
            download=download,
            measure_energy=measure_energy,
        )
    except KeyboardInterrupt:
        if not collector.run.started:
            raise
    except Exception as error:
        if not collector.run.started:
            collector.run.environment = collect_environment(config.device)
            collector.run.status = "failed"
            collector.run.error = f"{type(error).__name__}: {error}"
    return collector.run


def record(store: Store, run: TrainedRun) -> RunRecord:
    """Write a TrainedRun (from a worker) to the store as one run; returns the stored record.

    When the store refuses a write (disk full, read-only), the run's figures are printed to
    stderr as JSON (`report_unrecorded`), a row already begun is marked failed if the store
    still allows it, and the StoreError is re-raised: nothing computed is lost silently.
    """
    run_id = None
    try:
        run_id = store.start_run(
            run.config.to_dict(),
            run.config.config_hash(),
            run.environment,
            started_at=run.started_at,
            hostname=run.hostname,
            pid=run.pid,
        )
        for epoch, metrics in run.epochs:
            store.log_epoch(run_id, epoch, metrics)
        for name, kind, content in run.artefacts:
            store.add_artefact(run_id, name, kind, content)
        store.finish_run(run_id, run.status, run.metrics, error=run.error)
    except StoreError as error:
        if run_id is not None:  # a half-written row must not look finished or stay 'running'
            with suppress(StoreError):
                store.finish_run(run_id, "failed", error=f"not fully recorded: {error}")
        report_unrecorded(run, error)
        raise
    return store.get_run(run_id)


def _training_metrics(
    result: FitResult, train_size: int, config: RunConfig, energy: EnergyMeter | None
) -> dict[str, object]:
    """Summary figures of a finished fit: accuracies, times, throughput, memory, energy."""
    reading = energy.stop() if energy else None
    summary = summarize_epochs(result.epochs, config.target_accuracy)
    peak_mb, peak_kind = peak_memory_mb(config.device)
    total_train_time_s = summary.get("total_train_time_s")
    return {
        **summary,
        "stopped_early": result.stopped_early,
        "train_images_per_s": (
            train_size * len(result.epochs) / total_train_time_s if total_train_time_s else None
        ),
        "peak_memory_mb": peak_mb,
        "peak_memory_kind": peak_kind,
        "energy_kwh": reading.energy_kwh if reading else None,
        "energy_method": reading.method if reading else "disabled",
        "energy_note": reading.reason if reading else "energy measurement turned off",
    }
