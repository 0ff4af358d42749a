"""Run one configuration end to end: data, model, training, measurements, store.

The store row is created only once the data and model are ready, so bad input never leaves a
row behind; once it exists, the run always ends in a recorded status.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from mnistbench.config import RunConfig, validate_config
from mnistbench.data import load_dataset, prepare_device_data, resize_data
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
from mnistbench.models import create_model, get_model_info
from mnistbench.recipes import RecipeContext, run_protocol
from mnistbench.store import RunRecord, Store


@dataclass
class RunOutcome:
    record: RunRecord
    reused: bool  # True when the config had already finished and nothing was trained


def _static_measurements(model: torch.nn.Module, input_shape: tuple[int, ...], device: str):
    flops = flops_per_sample(model, input_shape, device)
    return {
        "params": count_parameters(model),
        "params_total": count_parameters(model, trainable_only=False),
        "flops_per_sample": flops,
        "macs_per_sample": flops // 2,
        "model_size_bytes": model_size_bytes(model),
    }


def run_config(
    config: RunConfig,
    store: Store,
    *,
    data_dir: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
    download: bool = True,
    measure_energy: bool = True,
    log: Callable[[str], None] = lambda message: None,
) -> RunOutcome:
    """Train and evaluate `config`, record it in `store`, and return the stored record.

    A config whose hash already has a completed run is not trained again unless `force`.
    Ctrl-C (or SIGTERM turned into KeyboardInterrupt by the CLI) records "interrupted";
    any other exception records "failed" with the error; both are re-raised.
    """
    validate_config(config)
    config_hash = config.config_hash()
    if not force:
        existing = store.find_completed(config_hash)
        if existing is not None:
            return RunOutcome(existing, reused=True)
    store.mark_stale_runs()

    wall_started = time.perf_counter()
    info = get_model_info(config.model)
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
    data_load_s = time.perf_counter() - wall_started
    torch.manual_seed(config.seed)
    model = create_model(config.model, num_classes=data.num_classes, **config.options())
    model = place_model(model, config.device)
    autocast = autocast_factory(config.device, config.precision)
    input_shape = (info.input_shape[0], config.image_size, config.image_size)
    metrics: dict[str, object] = _static_measurements(model, input_shape, config.device)
    metrics["data_load_s"] = data_load_s

    run_id = store.start_run(config.to_dict(), config_hash, collect_environment(config.device))
    log(f"run {run_id}: {config.model} on {config.dataset} ({config_hash}), {config.device}")
    energy = EnergyMeter() if measure_energy else None
    try:
        if energy:
            energy.start()
        reset_peak_memory(config.device)
        context = RecipeContext(
            model=model,
            data=data,
            config=config,
            on_epoch=lambda record: store.log_epoch(run_id, record.epoch, record.to_dict()),
            add_artefact=lambda name, kind, content: store.add_artefact(
                run_id, name, kind, content
            ),
            progress=progress,
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
                store.add_artefact(run_id, "confusion_matrix", "json", json.dumps(matrix))
        metrics["wall_time_s"] = time.perf_counter() - wall_started
        store.finish_run(run_id, result.status, metrics, error=result.message)
    except KeyboardInterrupt:
        store.finish_run(run_id, "interrupted", metrics, error="interrupted (Ctrl-C or SIGTERM)")
        raise
    except BaseException as error:
        store.finish_run(run_id, "failed", metrics, error=f"{type(error).__name__}: {error}")
        raise
    finally:
        if energy:
            energy.stop()  # idempotent; ends CodeCarbon's sampling thread on every way out
    return RunOutcome(store.get_run(run_id), reused=False)


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
