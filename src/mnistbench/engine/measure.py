"""What a run measures besides accuracy: size, FLOPs, latency, memory, energy, FLOP rate.

`static_measurements` (engine/size.py) sizes the model before training (after it, for fitted
estimators); `RunMeter` holds the whole-run meters (peak memory, energy); `measure_after_training`
takes the figures that need the trained model, each of which may fail without failing the run;
`measurement_methods` says in one sentence per figure how it was obtained (stored with the
run's model card, under MEASUREMENT_VERSION).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from mnistbench.artefacts import (
    PREDICTIONS_BEST_VAL,
    PREDICTIONS_FINAL,
    PREDICTIONS_KIND,
    predictions_blob,
)
from mnistbench.engine.compile import compile_model
from mnistbench.engine.device import autocast_factory, synchronize
from mnistbench.engine.energy import EnergyMeter, disabled_reading
from mnistbench.engine.environment import (  # re-exported: benchmarks import them from here
    collect_environment,
    cpu_description,
    cpu_model_name,
    cpu_native_bf16,
)
from mnistbench.engine.memory import (
    PeakMemoryMeter,
    device_data_bytes,
    out_of_memory_error,
    release_cached_memory,
)
from mnistbench.engine.peaks import (
    MAX_CREDIBLE_FRACTION,
    MAX_OTHERS_CPU_SHARE,
    ensure_peak,
    read_peak,
    training_flop_rate,
)
from mnistbench.engine.size import STATIC_KEYS, static_measurements
from mnistbench.engine.summary import confusion_matrix

if TYPE_CHECKING:
    from mnistbench.config import RunConfig
    from mnistbench.data import DeviceData
    from mnistbench.engine.loop import EvalResult, FitResult

__all__ = [
    "MEASUREMENT_VERSION",
    "RunMeter",
    "collect_environment",
    "cpu_description",
    "cpu_model_name",
    "cpu_native_bf16",
    "inference_latency_ms",
    "measure_after_training",
    "measurement_methods",
]

# 1: commit 5ae60b7 and before. 2: run-scoped peak memory, whole-run energy with its scope and
# a measured/estimated flag, per-sample FLOPs (batch setup apart), state_dict size, fitted SVMs
# measured after the fit, training FLOP rate and fraction of peak.
MEASUREMENT_VERSION = 2

LATENCY_BATCH_SIZES = (1, 1000)
_MB = 2**20


# ---------------------------------------------------------------------------------- latency


def inference_latency_ms(
    model: nn.Module,
    input_shape: tuple[int, ...],
    batch_size: int,
    device: str,
    autocast: type | None = None,
    budget_s: float = 1.0,
    max_repeats: int = 50,
) -> float:
    """Median wall time of one forward pass on `batch_size` images, after two warm-up passes."""
    was_training = model.training
    model.eval()
    images = torch.zeros(batch_size, *input_shape, device=device)
    timings_s: list[float] = []
    try:
        with torch.inference_mode(), autocast() if autocast else nullcontext():
            for _ in range(2):
                model(images)
            started = time.perf_counter()
            while len(timings_s) < max_repeats and (
                len(timings_s) < 3 or time.perf_counter() - started < budget_s
            ):
                synchronize(device)
                t0 = time.perf_counter()
                model(images)
                synchronize(device)
                timings_s.append(time.perf_counter() - t0)
    finally:
        model.train(was_training)
    return statistics.median(timings_s) * 1000.0


def latency_form(model: nn.Module, config: RunConfig) -> nn.Module:
    """The model as the run served it: compiled when the run trained compiled (`--compile`),
    so latency is that of the compiled forward. Its compilation for each latency shape lands
    in `inference_latency_ms`'s two untimed warm-up passes, never in the median."""
    if not config.compile or not isinstance(model, nn.Module):
        return model
    return compile_model(model, config.device)


# -------------------------------------------------------------------------- the whole run

RUN_SCOPE = (
    "The whole run, from data preparation to the latency pass: model build, FLOP count, "
    "training, evaluation, the protocol's probes and the post-training measurements (a sweep "
    "reads the data files once, in its driver, outside every run)"
)


class RunMeter:
    """Peak memory and energy of one whole run, as a context manager: entered before the data
    is prepared; `stop()` reads both once the last measurement is taken (exit stops them on
    every way out)."""

    def __init__(self, device: str, *, measure_energy: bool = True):
        self.memory = PeakMemoryMeter(device)
        self.energy = EnergyMeter(RUN_SCOPE, device=device) if measure_energy else None

    def __enter__(self) -> RunMeter:
        self.memory.start()
        if self.energy is not None:
            self.energy.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> dict[str, object]:
        """peak_memory_* and energy_* metrics; later calls return the same figures."""
        reading = self.energy.stop() if self.energy else disabled_reading(RUN_SCOPE)
        return {**self.memory.stop(), **reading.as_metrics()}


def measure_after_training(
    model: nn.Module,
    config: RunConfig,
    input_shape: tuple[int, ...],
    result: FitResult,
    data: DeviceData,
    metrics: Mapping[str, object],
    add_artefact: Callable[[str, str, bytes | str], None],
) -> tuple[dict[str, object], dict[str, str]]:
    """The figures taken once training is over: size and FLOPs of a model that could only be
    measured fitted, the data's bytes on the device, latency at batch 1 and 1000, the
    confusion matrix (an artefact), and the training FLOP rate against the machine's cached
    peak. Returns (metrics, errors): a measurement that raises is None in metrics and its
    reason is in errors as `<metric>_error`; none of them can change the run's status.
    """
    measured: dict[str, object] = {}
    errors: dict[str, str] = {}
    device = config.device

    def attempt(names: tuple[str, ...], compute: Callable[[], dict[str, object]]) -> None:
        try:
            measured.update(compute())
        except Exception as error:  # Ctrl-C still ends the run
            doing = f"measuring {names[0]} of the trained {config.model}"
            oom = out_of_memory_error(error, device=device, doing=doing)
            if oom is not None:
                release_cached_memory(device)
            for name in names:
                measured.setdefault(name, None)
                errors[f"{name}_error"] = str(oom) if oom else f"{type(error).__name__}: {error}"

    if metrics.get("flops_per_sample") is None and metrics.get("params") is None:
        attempt(STATIC_KEYS, lambda: static_measurements(model, input_shape, device))
    attempt(("data_on_device_mb",), lambda: {"data_on_device_mb": _data_mb(data)})
    if result.status == "finished":
        autocast = autocast_factory(device, config.precision)
        latency_model = latency_form(model, config)
        for batch in LATENCY_BATCH_SIZES:
            name = f"latency_batch{batch}_ms"
            attempt(
                (name,),
                lambda name=name, batch=batch: {
                    name: inference_latency_ms(latency_model, input_shape, batch, device, autocast)
                },
            )
        if result.last_test is not None:
            attempt(("confusion_matrix",), lambda: _confusion_artefact(data, result, add_artefact))
            measured.pop("confusion_matrix", None)  # an artefact, not a metric
            attempt(
                ("predictions_kept",),
                lambda: predictions_artefacts(data, result, metrics, add_artefact),
            )
    measured.update(accuracy_intervals({**metrics, **measured}, len(data.test)))
    attempt(
        ("train_flops_per_s", "fraction_of_peak"),
        lambda: training_flop_rate(
            {**metrics, **measured},
            device=device,
            precision=config.precision,
            batch_size=config.batch_size,
            # only a finished run with a rate to place measures a missing peak
            peaks=(ensure_peak if result.status == "finished" else read_peak)(
                device, config.precision, progress=_progress_line
            ),
            gradient_trained=getattr(model, "fitted_counts", None) is None,
        ),
    )
    return measured, errors


def _progress_line(text: str) -> None:
    print(f"mnistbench: {text}", file=sys.stderr, flush=True)


def _data_mb(data: DeviceData) -> float:
    # a sealed test split (records) shows only its size, so count it in rows of train's shape
    rows = sum(len(split) for split in (data.train, data.val, data.test) if split is not None)
    per_row = device_data_bytes([data.train]) / max(len(data.train), 1)
    return rows * per_row / _MB


def _confusion_artefact(data: DeviceData, result: FitResult, add_artefact) -> dict[str, object]:
    matrix = confusion_matrix(data.test.labels, result.last_test.predictions, data.num_classes)
    add_artefact("confusion_matrix", "json", json.dumps(matrix))
    return {}


def _blob(result: EvalResult, labels: torch.Tensor) -> bytes:
    def host(values: torch.Tensor | None) -> np.ndarray | None:
        return None if values is None else values.detach().float().cpu().numpy()

    return predictions_blob(
        result.predictions.detach().cpu().numpy(),
        labels.detach().cpu().numpy(),
        host(result.top_probability),
        host(result.true_probability),
        result.probabilities_absent or "the objective's evaluation gives classes, no probabilities",
    )


def predictions_artefacts(
    data: DeviceData,
    result: FitResult,
    metrics: Mapping[str, object],
    add_artefact: Callable[[str, str, bytes | str], None],
) -> dict[str, object]:
    """The per-image test predictions of the final model and, where validation chose another
    epoch, of that epoch's model (artefacts predictions_final, predictions_best_val), so any
    two runs on the same test images can be paired later (`mnistbench compare`)."""
    final = result.last_test
    assert final is not None
    labels = data.test.labels  # opened already: the final score read the test set
    if len(final.predictions) != len(labels):  # a label-free objective predicts nothing
        return {"predictions_kept": []}
    add_artefact(PREDICTIONS_FINAL, PREDICTIONS_KIND, _blob(final, labels))
    kept = [PREDICTIONS_FINAL]
    best = result.best_val_test
    # the best-val epoch's model when it is not the final one, and only when it is the epoch
    # whose test accuracy the run reports as test_accuracy_at_best_val
    if (
        best is not None
        and best is not final
        and best.accuracy == metrics.get("test_accuracy_at_best_val")
        and len(best.predictions) == len(labels)
    ):
        add_artefact(PREDICTIONS_BEST_VAL, PREDICTIONS_KIND, _blob(best, labels))
        kept.append(PREDICTIONS_BEST_VAL)
    return {
        "predictions_kept": kept,
        "predictions_probabilities": final.top_probability is not None,
    }


def accuracy_intervals(metrics: Mapping[str, object], n_test: int) -> dict[str, object]:
    """n_test and the 95% Wilson interval of each test accuracy a run reports for one model
    (the final one, the best-validation epoch's); none for the maximum over epochs, which is
    picked on the test set and so is no binomial count of one model."""
    from mnistbench.statistics import accuracy_interval  # scipy: loaded once a run has ended

    out: dict[str, object] = {}
    for key in ("test_accuracy", "test_accuracy_at_best_val"):
        value = metrics.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and n_test > 0:
            out["n_test"] = n_test
            out[f"{key}_ci95"] = accuracy_interval(float(value), n_test).as_list()
    return out


# ------------------------------------------------------------------------------- methods


def measurement_methods(device: str) -> dict[str, str]:
    """How each figure of a run on `device` is measured, one sentence each (the model card's
    `measurement.methods`, with `measurement.version` = MEASUREMENT_VERSION)."""
    cuda = torch.device(device).type == "cuda"
    peak_memory = (
        "torch.cuda.max_memory_allocated on the run's GPU, reset at the run's start: tensors "
        "only (the data on the device included, see data_on_device_mb; not the allocator's "
        "cache or the CUDA context); peak_host_rss_mb is the host side"
        if cuda
        else "The process's peak resident memory during the run (Linux VmHWM reset at the "
        "run's start after freeing unused heap; elsewhere RSS sampled every 10 ms, kind "
        "run_peak_rss_sampled); it includes what the process held before the run "
        "(memory_at_start_mb) and the data (data_on_device_mb)"
    )
    return {
        "params": "Trainable parameters (params_total: all); a fitted SVM counts its support "
        "vectors x features plus its dual coefficients and intercepts.",
        "flops_per_sample": "Forward FLOPs of one image (1 MAC = 2 FLOPs) counted by "
        "torch.utils.flop_counter on matmuls, convolutions and attention (elementwise ops not "
        "counted), as the count at batch 2 minus batch 1; work done once per batch is "
        "batch_setup_flops.",
        "model_size_bytes": "Bytes of the state_dict (parameters and persistent buffers, each "
        "storage once); a fitted SVM: its float64 support vectors, dual coefficients and "
        "intercepts.",
        "peak_memory_mb": peak_memory + ".",
        "energy_kwh": "CodeCarbon (offline) over the whole run, from data preparation to the "
        "latency pass; energy_scope says which hardware was read and how, energy_measured "
        "whether every processor part came from a counter (RAPL, NVML, powermetrics) rather "
        "than CodeCarbon's TDP x load model, which makes energy proportional to time; RAM is "
        "always modelled."
        + (
            " On a GPU only the run's own device is read, but its counter is the whole device's."
            if cuda
            else ""
        ),
        "latency_batch1_ms": "Median of up to 50 synchronised forward passes on zeros after 2 "
        "warm-ups, in eval mode and the run's precision, on the eager model; likewise "
        "latency_batch1000_ms.",
        "time_per_epoch_s": "Median over epochs of the training steps' wall time, device "
        "synchronised before and after; evaluation is timed apart (eval_time_s).",
        "train_cpu_share": "CPU seconds of the whole process (time.process_time, all threads) "
        "in the training loops / (their wall time x torch threads), CPU runs only: near 1 when "
        "the run had its cores, well under 1 when other work shared them, so its times are "
        "slower than the machine's (runs recorded before it existed have none).",
        "train_flops_per_s": "Estimate: 3 x forward FLOPs per image (backward = 2 x forward, "
        "not measured), batch setup amortised over the batch, x training images per second.",
        "fraction_of_peak": "train_flops_per_s / the best matmul or conv rate that `mnistbench "
        "bench peak` measured on this machine (same fingerprint) at the run's precision (TF32 "
        "for fp32 on a GPU that allows it); null with fraction_of_peak_note when no peak is "
        f"cached, when the peak was measured while other processes took over "
        f"{MAX_OTHERS_CPU_SHARE:.0%} of the CPU (not cached), or when the fraction exceeds "
        f"{MAX_CREDIBLE_FRACTION}, more than the 3 x forward estimate can overcount (the cached "
        "peak is then too low).",
    }
