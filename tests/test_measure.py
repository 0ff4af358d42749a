"""Measurements checked against hand counts and known values: FLOPs, size, peak memory,
energy scope and flag, post-training failures, memory-bounded passes, cached peaks."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import pytest
import torch
from torch import nn

from mnistbench.engine import energy as energy_module
from mnistbench.engine import measure, memory, peaks, size
from mnistbench.engine.energy import EnergyMeter, describe_hardware
from mnistbench.engine.measure import MEASUREMENT_VERSION, measurement_methods
from mnistbench.engine.size import flop_counts, model_size_bytes, static_measurements
from mnistbench.errors import OutOfMemoryError
from mnistbench.experiments import run_config, runner, train_config
from mnistbench.experiments.batch import RunFailedError
from mnistbench.experiments.configure import make_config
from mnistbench.models import create_model, registry
from mnistbench.models.mlp import MLP
from mnistbench.store import Store
from synthetic import learnable_raw

# ------------------------------------------------------------------------ FLOPs and size


def test_snn_flops_are_per_image_and_the_lookup_table_is_batch_setup() -> None:
    """Hand count of the rate-coded spiking CNN at T=25 (MACs; FLOPs = 2 x MACs)."""
    t = 25
    window_codes = t * (14 * 14) * (4 * 4)  # 4x4 stride-2 conv of powers of two -> codes
    conv2 = t * (14 * 14 * 32) * (16 * 3 * 3)  # 16 -> 32 channels, 3x3, at 14x14
    fc1 = t * (32 * 7 * 7) * 128
    head = 128 * 10  # once, on the spike counts
    table = (2**16 * 4) * 9 * 16  # (2^16 windows x 4 pool phases, 9 taps) @ (9, 16): per batch
    per_image, setup = flop_counts(create_model("snn"), (1, 28, 28), "cpu")
    assert per_image == 2 * (window_codes + conv2 + fc1 + head) == 55_352_960
    assert setup == 2 * table == 75_497_472


def test_snn_size_is_what_its_state_dict_saves() -> None:
    model = create_model("snn")
    weights = 206_922 * 4  # float32 parameters
    # each snntorch Leaky keeps beta, threshold, graded_spikes_factor (float32 scalars) and
    # reset_mechanism_val (int64 scalar); the 9.4 MB lookup table is not saved
    lif_buffers = 3 * (3 * 4 + 8)
    assert model.pattern_bits.nbytes == 2**16 * 4 * 9 * 4  # there, but not persistent
    assert model_size_bytes(model) == weights + lif_buffers == 827_748


def test_tied_weights_count_once() -> None:
    model = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False))
    model[1].weight = model[0].weight
    assert model_size_bytes(model) == 16 * 4


@pytest.mark.parametrize("name", ["mlp", "cnn", "lstm_rows"])
def test_models_without_batch_setup_have_none(name: str) -> None:
    per_image, setup = flop_counts(create_model(name), (1, 28, 28), "cpu")
    assert setup == 0 and per_image > 0


def test_cudnn_rnn_formula_counts_every_layer_direction_and_projection() -> None:
    """The shapes cuDNN's one RNN op receives, against the per-layer hand count."""
    steps, batch, features, hidden, proj = 28, 3, 28, 64, 16
    lstm = nn.LSTM(features, hidden, num_layers=2, bidirectional=True, proj_size=proj)
    shapes = [w.shape for w in lstm._flat_weights]  # per layer and direction: 5 tensors
    flops = size._cudnn_rnn_flops((steps, batch, features), shapes, 5)
    tokens = steps * batch
    layer1 = 2 * (4 * hidden * (features + proj) + proj * hidden)  # gates + projection
    layer2 = 2 * (4 * hidden * (2 * proj + proj) + proj * hidden)  # input: both directions
    assert flops == 2 * tokens * (layer1 + layer2)
    gru = nn.GRU(features, hidden, bias=False)
    shapes = [w.shape for w in gru._flat_weights]
    assert size._cudnn_rnn_flops((batch, steps, features), shapes, 2) == (
        2 * tokens * 3 * hidden * (features + hidden)
    )


# ---------------------------------------------------------------------- peak memory, runs


@pytest.fixture
def wide_mlp(monkeypatch: pytest.MonkeyPatch) -> str:
    """A registered 784-3072-3072-10 MLP (12 M parameters, ~190 MB with Adam's state)."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @registry.register_model(family="mlp", architecture="test: MLP 784-3072-3072-10")
    def wide_test_mlp(num_classes: int = 10) -> MLP:
        return MLP(hidden=(3072, 3072), num_classes=num_classes)

    return "wide_test_mlp"


def _quick(model: str, **overrides):
    return make_config(model, **{"epochs": 1, "val_size": 100, "batch_size": 256, **overrides})


def test_peak_memory_is_each_runs_own(wide_mlp: str) -> None:
    """A large run then a small one in one process (as in a suite): the small one's peak is
    its own, not the large one's carried over."""
    raw = learnable_raw()
    large = train_config(_quick(wide_mlp), raw=raw, measure_energy=False)
    small = train_config(_quick("mlp"), raw=raw, measure_energy=False)
    assert large.status == small.status == "finished"
    big, little = large.metrics, small.metrics
    assert big["peak_memory_kind"] == little["peak_memory_kind"] == "run_peak_rss"
    adam_state_mb = 4 * big["params"] * 4 / 2**20  # weights, gradients, two moments
    assert big["peak_memory_mb"] - big["memory_at_start_mb"] > 0.8 * adam_state_mb
    assert little["peak_memory_mb"] < big["peak_memory_mb"] - 0.5 * adam_state_mb
    assert little["data_on_device_mb"] == pytest.approx(1500 * (28 * 28 * 4 + 8) / 2**20)


@pytest.mark.parametrize("sampled", [False, True])
def test_peak_memory_meter_restarts_for_each_window(monkeypatch, sampled: bool) -> None:
    if sampled:  # the fallback where VmHWM cannot be reset (not Linux)
        monkeypatch.setattr(memory, "_reset_vmhwm", lambda: False)
    size_mb = 200
    meter = memory.PeakMemoryMeter("cpu")
    meter.start()
    block = torch.ones(size_mb * 2**20 // 4)  # touched, so resident
    time.sleep(0.1)  # several sampling intervals
    del block
    first = meter.stop()
    meter.start()
    second = meter.stop()
    kind = "run_peak_rss_sampled" if sampled else "run_peak_rss"
    assert first["peak_memory_kind"] == second["peak_memory_kind"] == kind
    assert first["peak_memory_mb"] - first["memory_at_start_mb"] > 0.9 * size_mb
    assert second["peak_memory_mb"] < first["peak_memory_mb"] - 0.5 * size_mb


# ------------------------------------------------------------------------------- energy


class _RecordingMeter:
    """Stands in for EnergyMeter and notes when the run starts and stops it."""

    events: ClassVar[list[str]] = []

    def __init__(self, covers: str, **options):
        self.covers = covers

    def start(self) -> None:
        self.events.append("energy start")

    def stop(self):
        if "energy stop" not in self.events:
            self.events.append("energy stop")
        return energy_module.EnergyReading(1e-6, False, "fake", self.covers)


def test_energy_covers_the_whole_run(monkeypatch: pytest.MonkeyPatch) -> None:
    events: ClassVar[list[str]] = []
    monkeypatch.setattr(_RecordingMeter, "events", events)
    monkeypatch.setattr(measure, "EnergyMeter", _RecordingMeter)
    prepare, latency = runner.prepare_device_data, measure.inference_latency_ms

    def preparing(*args, **kwargs):
        events.append("data")
        return prepare(*args, **kwargs)

    def timing(*args, **kwargs):
        events.append("latency")
        return latency(*args, **kwargs)

    monkeypatch.setattr(runner, "prepare_device_data", preparing)
    monkeypatch.setattr(measure, "inference_latency_ms", timing)
    run = train_config(_quick("mlp"), raw=learnable_raw())
    assert events == ["energy start", "data", "latency", "latency", "energy stop"]
    assert run.metrics["energy_kwh"] == 1e-6 and run.metrics["energy_measured"] is False
    assert run.metrics["energy_scope"].startswith("The whole run, from data preparation")


def _cpu_load_tracker_or_skip(meter: EnergyMeter):
    from codecarbon.external.hardware import CPU

    cpus = [h for h in meter._tracker._hardware if isinstance(h, CPU)]
    if not cpus or cpus[0]._mode != "cpu_load":
        pytest.skip("CodeCarbon reads a power counter here; its CPU model is not in use")
    return cpus[0]


def test_modelled_energy_is_codecarbons_power_times_time() -> None:
    """Without a power counter CodeCarbon's CPU figure is TDP x this process's CPU seconds /
    cores and its RAM figure a constant power x wall time: energy is a model of time."""
    import psutil
    from codecarbon.external.ram import RAM

    meter = EnergyMeter("a test")
    process = psutil.Process()
    meter.start()
    cpu_started, wall_started = sum(process.cpu_times()[:2]), time.perf_counter()
    busy_until = time.process_time() + 0.5
    while time.process_time() < busy_until:  # CPU seconds, whatever else runs here
        pass
    reading = meter.stop()
    cpu_s = sum(process.cpu_times()[:2]) - cpu_started
    wall_s = time.perf_counter() - wall_started
    cpu = _cpu_load_tracker_or_skip(meter)
    (ram,) = [h for h in meter._tracker._hardware if isinstance(h, RAM)]
    kwh_per_joule = 1 / 3.6e6
    expected_cpu = cpu._tdp * cpu_s / cpu._cpu_count * kwh_per_joule
    expected_ram = ram.total_power().W * wall_s * kwh_per_joule
    assert reading.measured is False
    assert reading.cpu_kwh == pytest.approx(expected_cpu, rel=0.25)
    assert reading.ram_kwh == pytest.approx(expected_ram, rel=0.25)
    assert reading.energy_kwh == pytest.approx(reading.cpu_kwh + reading.ram_kwh)
    assert "modelled" in reading.scope and reading.scope.startswith("a test. ")


def _cpu(mode: str):
    from codecarbon.external.hardware import CPU

    cpu = CPU.__new__(CPU)  # no probing of this machine: only what describe_hardware reads
    cpu._mode, cpu._tdp, cpu._tracking_mode = mode, 8, "process"
    cpu._model, cpu._is_generic_tdp = "a CPU", False
    return cpu


def _gpu(counter: bool):
    from codecarbon.external.hardware import GPU

    gpu = GPU.__new__(GPU)
    device = SimpleNamespace(gpu_index=0, _has_counter=counter, _use_power_fallback=not counter)
    gpu.gpu_ids, gpu.num_gpus = [0], 1
    gpu.devices = SimpleNamespace(devices=[device], get_gpu_details=lambda: [{"name": "a GPU"}])
    return gpu


class _FakeTracker:
    def __init__(self, hardware: list, **options):
        self._hardware, self.options = hardware, options
        self.final_emissions_data = SimpleNamespace(
            energy_consumed=3e-6, cpu_energy=1e-6, gpu_energy=1.5e-6, ram_energy=0.5e-6
        )

    def start(self) -> None: ...

    def stop(self) -> None: ...


def _reading(hardware: list, device: str = "cpu"):
    trackers: list[_FakeTracker] = []

    def factory(**options):
        trackers.append(_FakeTracker(hardware, **options))
        return trackers[-1]

    meter = EnergyMeter("covered", device=device, tracker_factory=factory)
    meter.start()
    return meter.stop(), trackers[0].options


@pytest.mark.parametrize(
    ("hardware", "measured"),
    [
        (lambda: [_cpu("cpu_load")], False),  # this VM: TDP x load
        (lambda: [_cpu("constant")], False),
        (lambda: [_cpu("intel_rapl")], True),
        (lambda: [_cpu("intel_rapl"), _gpu(counter=True)], True),
        (lambda: [_cpu("intel_rapl"), _gpu(counter=False)], True),  # NVML power samples
        (lambda: [_cpu("cpu_load"), _gpu(counter=True)], False),  # the CPU part is a model
    ],
)
def test_measured_flag_comes_from_the_hardware_objects(hardware, measured: bool) -> None:
    reading, _ = _reading(hardware())
    assert reading.measured is measured
    assert reading.energy_kwh == 3e-6 and reading.gpu_kwh == 1.5e-6


def test_a_gpu_run_reads_its_own_device_whole() -> None:
    _, options = _reading([_cpu("intel_rapl")], device="cuda:1")
    assert options["gpu_ids"] == [1]  # NVML index; equal to CUDA's without NVML to map by UUID
    assert "whole device" in describe_hardware(_gpu(counter=True)).description


def test_energy_failures_leave_no_figure_and_say_why() -> None:
    def broken(**options):
        raise RuntimeError("no hardware")

    meter = EnergyMeter("covered", tracker_factory=broken)
    meter.start()
    reading = meter.stop()
    assert meter.stop() is reading  # the runner's exit stops it again: same reading
    assert (reading.energy_kwh, reading.measured) == (None, None)
    assert reading.reason == "RuntimeError: no hardware"


# ------------------------------------------------------------ failures after training


class _FailsOnBigBatches(MLP):
    """Trains and evaluates normally (no split here reaches 1000 images); the batch-1000
    latency pass raises as the CPU allocator does when memory runs out."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] >= 1000:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried 9 GB")
        return super().forward(x)


def test_a_failed_latency_pass_leaves_the_run_finished(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @registry.register_model(family="mlp", architecture="test: latency fails")
    def failing_latency_mlp(num_classes: int = 10) -> MLP:
        return _FailsOnBigBatches(hidden=(32,), num_classes=num_classes)

    config = _quick("failing_latency_mlp")
    with Store(tmp_path / "results.sqlite") as store:
        record = run_config(config, store, raw=learnable_raw(), measure_energy=False).record
        assert record.status == "finished" and record.error is None
        m = record.metrics
        assert m["latency_batch1_ms"] > 0 and m["latency_batch1000_ms"] is None
        assert "ran out of host memory" in m["latency_batch1000_ms_error"]
        assert "can't allocate memory" in m["latency_batch1000_ms_error"]
        assert m["peak_memory_mb"] > 0 and m["test_accuracy"] > 0.5  # the rest is recorded
        names = [a.name for a in store.artefacts(record.run_id)]
        # the confusion matrix and the per-image predictions (best-val's too where it differs)
        assert names[:2] == ["confusion_matrix", "predictions_final"]
        assert set(names[2:]) <= {"predictions_best_val"}
        # a finished run counts as done: a resumed sweep does not train it again
        assert store.find_completed(config.config_hash()).run_id == record.run_id


def test_a_failing_confusion_matrix_is_recorded_not_fatal(monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise ValueError("labels and predictions differ in length")

    monkeypatch.setattr(measure, "confusion_matrix", broken)
    run = train_config(_quick("mlp"), raw=learnable_raw(), measure_energy=False)
    assert run.status == "finished"
    assert "confusion_matrix" not in [name for name, _, _ in run.artefacts]
    assert run.metrics["confusion_matrix_error"] == (
        "ValueError: labels and predictions differ in length"
    )
    assert "confusion_matrix" not in run.metrics


def test_out_of_memory_during_training_is_a_clear_error(monkeypatch, tmp_path) -> None:
    def exhausted(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried 2 GiB")

    monkeypatch.setattr(runner, "run_recipe", exhausted)
    # a run is a batch of one: the failed trial is recorded, and run_config says how it ended
    with Store(tmp_path / "r.sqlite") as store, pytest.raises(RunFailedError) as caught:
        run_config(_quick("mlp"), store, raw=learnable_raw(), measure_energy=False)
    with Store(tmp_path / "r.sqlite") as store:
        (record,) = store.list_runs()
    text = record.error
    assert "ran out of host memory (RAM) while running mlp (batch size 256, 28 px, fp32)" in text
    assert "you tried 2 GiB" in text and "--batch-size" in text
    assert record.status == "failed" and text in str(caught.value)


@pytest.mark.parametrize(
    ("error", "is_memory"),
    [
        (MemoryError(), True),
        (RuntimeError("[enforce fail at alloc_cpu.cpp:117] can't allocate memory"), True),
        (torch.OutOfMemoryError("CUDA out of memory."), True),
        (RuntimeError("mat1 and mat2 shapes cannot be multiplied"), False),
        (ValueError("out of memory"), False),  # only allocators' errors
    ],
)
def test_which_errors_are_out_of_memory(error: BaseException, is_memory: bool) -> None:
    converted = memory.out_of_memory_error(error, device="cpu", doing="testing")
    assert (converted is not None) is is_memory


# --------------------------------------------------------------- bounded working sets


def test_chunk_rows_takes_a_quarter_of_free_memory_at_most(monkeypatch) -> None:
    monkeypatch.setattr(memory, "available_memory_bytes", lambda device="cpu": 4000)
    assert memory.chunk_rows(10, 1_000_000) == 100  # 1000-byte budget / 10 bytes per row
    assert memory.chunk_rows(10, 30) == 30  # never more rows than there are
    assert memory.chunk_rows(3000, 5) == 1  # one row fits in memory, if not in the budget
    assert memory.chunk_rows(10, 10**9, max_chunk_bytes=200) == 20
    with pytest.raises(OutOfMemoryError, match="needs 0 MB for a single row"):
        memory.chunk_rows(5000, 5, what="the test pass")


def test_cgroup_limit_caps_available_memory(monkeypatch) -> None:
    monkeypatch.setattr(memory, "_cgroup_available_bytes", lambda: 1234)
    assert memory.available_memory_bytes("cpu") == 1234


# ------------------------------------------------------------ training FLOP rate, peaks


def _fake_peaks(device: str = "cpu", fp32: float = 1e11) -> peaks.Peaks:
    identity = peaks.machine_identity(device)
    return peaks.Peaks(
        device=device,
        fingerprint=peaks.fingerprint(identity),
        machine=identity,
        matmul_flops_per_s={"fp32": fp32, "bf16": 2 * fp32},
        conv_flops_per_s={"fp32": fp32 / 2, "bf16": fp32},
    )


def test_peak_cache_is_written_read_back_and_used_by_a_run(tmp_path: Path) -> None:
    path = peaks.save_peaks(_fake_peaks(fp32=1e11))
    assert path == tmp_path / "xdg-cache" / "mnistbench" / "peaks.json"  # conftest's XDG
    assert peaks.load_peaks("cpu") == _fake_peaks(fp32=1e11)
    run = train_config(_quick("mlp"), raw=learnable_raw(), measure_energy=False)
    m = run.metrics
    forward = 2 * (784 * 512 + 512 * 256 + 256 * 10)
    assert m["train_flops_per_s"] == pytest.approx(3 * forward * m["train_images_per_s"])
    assert m["peak_flops_per_s"] == 1e11 and m["peak_precision"] == "fp32"
    assert m["fraction_of_peak"] == pytest.approx(m["train_flops_per_s"] / 1e11)
    assert m["fraction_of_peak_note"] is None


def test_a_peak_from_another_machine_or_thread_count_is_not_used(monkeypatch) -> None:
    other = _fake_peaks()
    other.machine = {**other.machine, "torch_threads": 64}
    other.fingerprint = peaks.fingerprint(other.machine)
    peaks.save_peaks(other)
    assert peaks.load_peaks("cpu") is None
    run = train_config(_quick("mlp"), raw=learnable_raw(), measure_energy=False)
    assert run.metrics["train_flops_per_s"] > 0 and run.metrics["fraction_of_peak"] is None
    assert "mnistbench bench peak" in run.metrics["fraction_of_peak_note"]


def test_flop_rate_amortises_batch_setup_and_picks_the_precisions_peak() -> None:
    metrics = {"flops_per_sample": 100, "batch_setup_flops": 6400, "train_images_per_s": 10.0}
    rate = peaks.training_flop_rate(
        metrics, device="cpu", precision="bf16", batch_size=64, peaks=_fake_peaks(fp32=1e4)
    )
    assert rate["train_flops_per_s"] == 3 * (100 + 100) * 10.0
    assert rate["peak_flops_per_s"] == 2e4 and rate["fraction_of_peak"] == 6000 / 2e4
    no_count = peaks.training_flop_rate(
        {"flops_per_sample": None}, device="cpu", precision="fp32", batch_size=1, peaks=None
    )
    assert no_count["fraction_of_peak_note"] == "no FLOP count for this model"


def test_measure_peaks_fills_every_precision_and_round_trips(tmp_path: Path) -> None:
    # tiny shapes: this checks what is measured and stored, never how fast (shared machine)
    measured = peaks.measure_peaks("cpu", sizes=(16,), repeats=1)
    assert set(measured.matmul_flops_per_s) == set(measured.conv_flops_per_s) == {"fp32", "bf16"}
    assert all(math.isfinite(v) and v > 0 for v in measured.matmul_flops_per_s.values())
    assert set(measured.others_cpu_share) == {"fp32", "bf16"}
    assert all(v is None or 0 <= v <= 1 for v in measured.others_cpu_share.values())
    path = peaks.save_peaks(measured, tmp_path / "p.json")
    assert peaks.load_peaks("cpu", tmp_path / "p.json") == measured
    table = peaks.describe_peaks(measured, path).splitlines()
    assert [line.split()[0] for line in table[2:4]] == ["fp32", "bf16"]
    assert table[-1].startswith(f"saved to {path}")


def test_others_cpu_share_by_hand() -> None:
    before = peaks.CpuSample(wall_s=10.0, busy_s=100.0, own_cpu_s=5.0, cpus=2)
    after = peaks.CpuSample(wall_s=12.0, busy_s=103.0, own_cpu_s=6.2, cpus=2)
    # 2 s on 2 CPUs = 4 CPU-s; they were busy 3 s, 1.2 of them ours: (3 - 1.2) / 4
    assert peaks.others_cpu_share(before, after) == pytest.approx(0.45)
    four = peaks.CpuSample(wall_s=12.0, busy_s=103.0, own_cpu_s=6.2, cpus=4)
    assert peaks.others_cpu_share(before, four) == pytest.approx(0.225)
    short = peaks.CpuSample(wall_s=10.4, busy_s=100.5, own_cpu_s=5.0, cpus=2)
    assert peaks.others_cpu_share(before, short) is None  # under MIN_JUDGED_INTERVAL_S
    # the two clocks tick differently: a share is clamped into [0, 1]
    ours_only = peaks.CpuSample(wall_s=12.0, busy_s=101.0, own_cpu_s=6.2, cpus=2)
    assert peaks.others_cpu_share(before, ours_only) == 0.0


def test_sample_cpu_sees_a_busy_process_beside_this_one() -> None:
    import subprocess
    import sys

    spin = "import time; print('go', flush=True)\nt = time.time()\nwhile time.time() - t < 10: pass"
    child = subprocess.Popen([sys.executable, "-c", spin], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "go"
        before = peaks.sample_cpu()
        time.sleep(1.0)  # this process idles while the child spins on one CPU
        after = peaks.sample_cpu()
    finally:
        child.kill()
        child.wait()
    assert after.cpus == len(os.sched_getaffinity(0)) == before.cpus
    # one busy process holds one of the CPUs this process may use: 1 / cpus of their time, or
    # more where anything else runs too; 0.6 / cpus leaves room for the tick and scheduling
    share = peaks.others_cpu_share(before, after)
    assert share is not None and share >= 0.6 / after.cpus


def test_a_disturbed_peak_is_neither_cached_nor_used(monkeypatch, judged_peaks: float) -> None:
    assert judged_peaks == 0.1
    monkeypatch.setenv("MNISTBENCH_AUTO_PEAK", "on")
    monkeypatch.setattr(peaks, "_best_seconds", lambda step, device, repeats: 0.5)
    monkeypatch.setattr(peaks, "others_cpu_share", lambda before, after: 0.3)
    bf16_only = _fake_peaks(fp32=1e11)
    bf16_only.matmul_flops_per_s = {"bf16": 2e11}
    bf16_only.conv_flops_per_s = {"bf16": 1e11}
    path = peaks.save_peaks(bf16_only)
    cache_before = path.read_bytes()
    measured = peaks.ensure_peak("cpu", "fp32")
    assert measured.others_cpu_share["fp32"] == 0.3 and measured.disturbed("fp32")
    assert measured.peak_for("fp32") is None and measured.peak_for("bf16") == 2e11
    assert path.read_bytes() == cache_before  # not cached: the bf16 entry as it was
    rate = peaks.training_flop_rate(
        {"flops_per_sample": 1e6, "train_images_per_s": 1e4},
        device="cpu", precision="fp32", batch_size=32, peaks=measured,
    )  # fmt: skip
    assert rate["train_flops_per_s"] == 3e10 and rate["fraction_of_peak"] is None
    assert rate["peak_flops_per_s"] is None
    assert "other processes took 30% of its CPU time" in rate["fraction_of_peak_note"]
    assert "bench peak" in rate["fraction_of_peak_note"]
    # a quiet measurement is cached and used
    monkeypatch.setattr(peaks, "others_cpu_share", lambda before, after: 0.02)
    quiet = peaks.ensure_peak("cpu", "fp32")
    assert not quiet.disturbed("fp32") and peaks.load_peaks("cpu") == quiet
    assert quiet.others_cpu_share == {"fp32": 0.02}  # the bf16 entry had none recorded


def test_a_gpu_peak_is_never_judged_by_the_hosts_cpu() -> None:
    gpu = _fake_peaks()
    gpu.device, gpu.others_cpu_share = "cuda", {"fp32": 0.9}
    assert not gpu.disturbed("fp32") and gpu.peak_for("fp32") == 1e11


def test_a_fraction_above_what_the_flop_estimate_allows_means_the_peak_is_too_low() -> None:
    metrics = {"flops_per_sample": 1e6, "train_images_per_s": 1e4}  # 3e10 FLOP/s by hand

    def fraction_against(fp32_peak: float) -> dict[str, object]:
        return peaks.training_flop_rate(
            metrics, device="cpu", precision="fp32", batch_size=32,
            peaks=_fake_peaks(fp32=fp32_peak),
        )  # fmt: skip

    # 3e10 / 2e10 = 1.5, what the 3 x forward estimate can overcount at most: kept
    assert fraction_against(2e10)["fraction_of_peak"] == 1.5
    assert fraction_against(2e10)["fraction_of_peak_note"] is None
    too_low = fraction_against(1e10)  # 300%: the cached peak is wrong, not the run
    assert too_low["fraction_of_peak"] is None and too_low["peak_flops_per_s"] == 1e10
    assert too_low["fraction_of_peak_note"].startswith("300% of the cached fp32 peak (10.0 GFLOP/s")


def test_a_cache_written_before_the_cpu_share_existed_still_loads(tmp_path: Path) -> None:
    import json
    from dataclasses import asdict

    entry = asdict(_fake_peaks(fp32=1e11))
    del entry["others_cpu_share"]
    (tmp_path / "p.json").write_text(
        json.dumps({"version": 1, "machines": {entry["fingerprint"]: entry}})
    )
    loaded = peaks.load_peaks("cpu", tmp_path / "p.json")
    assert loaded.others_cpu_share == {} and loaded.peak_for("fp32") == 1e11


def test_a_damaged_peak_cache_means_no_peak(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text("{not json")
    assert peaks.load_peaks("cpu", tmp_path / "p.json") is None


# --------------------------------------------------------------------- methods, environment


def test_every_contract_figure_has_a_method_sentence() -> None:
    assert MEASUREMENT_VERSION == 2
    for device in ("cpu", "cuda"):
        methods = measurement_methods(device)
        expected = {"peak_memory_mb", "energy_kwh", "flops_per_sample", "model_size_bytes"}
        assert expected | {"train_flops_per_s", "fraction_of_peak"} <= methods.keys()
        assert all(text.endswith(".") and len(text) > 40 for text in methods.values())
    assert "whole device" in measurement_methods("cuda")["energy_kwh"]


def test_unfitted_estimators_have_no_static_figures_yet() -> None:
    figures = static_measurements(create_model("svm_rbf"), (1, 28, 28), "cpu")
    assert set(figures.values()) == {None}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_environment_records_tf32_and_versions() -> None:
    env = measure.collect_environment("cuda")
    assert env["cudnn_allow_tf32"] is torch.backends.cudnn.allow_tf32
    assert env["gpu_count"] == torch.cuda.device_count() and env["cuda_version"]
    assert env["cudnn_version"] == torch.backends.cudnn.version()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_rnn_flops_on_cuda_equal_the_cpu_count() -> None:
    for name in ("rnn_rows", "gru_rows", "lstm_rows"):
        model = create_model(name)
        cpu = flop_counts(model, (1, 28, 28), "cpu")
        assert flop_counts(model.cuda(), (1, 28, 28), "cuda") == cpu


def test_a_first_run_measures_its_missing_peak_once_and_later_runs_reuse_it(
    monkeypatch, capsys
) -> None:
    monkeypatch.setenv("MNISTBENCH_AUTO_PEAK", "on")  # conftest turns it off for other tests
    timed, saved = [], []
    monkeypatch.setattr(
        peaks, "_best_seconds", lambda step, device, repeats: timed.append(1) or 0.001
    )
    monkeypatch.setattr(peaks, "CPU_MATMUL_SIZES", (8, 16))
    real_save = peaks.save_peaks
    monkeypatch.setattr(peaks, "save_peaks", lambda p, path=None: saved.append(p) or real_save(p))
    assert peaks.load_peaks("cpu") is None
    first = train_config(_quick("mlp"), raw=learnable_raw(), measure_energy=False).metrics
    # fp32 only: matmuls at 8 and 16 and the conv, each "taking" 1 ms. By hand: the matmul
    # rate is 2 * 16**3 / 0.001 = 8,192,000 FLOP/s; the conv's 2 * 64 * 64 * 28 * 28 * 64 * 3 * 3
    # / 0.001 = 3,699,376,128,000 FLOP/s, the larger, so the peak (high enough that the MLP's
    # fraction is credible: above 1.5 it would be null, engine/peaks.py MAX_CREDIBLE_FRACTION)
    assert len(timed) == 3 and len(saved) == 1
    peak = 3_699_376_128_000
    assert first["peak_flops_per_s"] == peak and first["peak_precision"] == "fp32"
    assert first["fraction_of_peak"] == pytest.approx(first["train_flops_per_s"] / peak)
    cached = peaks.load_peaks("cpu")
    assert cached.matmul_flops_per_s == {"fp32": 8_192_000.0}
    assert "measuring this machine's fp32 peak once" in capsys.readouterr().err
    second = train_config(_quick("mlp"), raw=learnable_raw(), measure_energy=False).metrics
    assert len(timed) == 3 and len(saved) == 1  # read from the cache, not measured again
    assert second["peak_flops_per_s"] == peak
    assert "measuring" not in capsys.readouterr().err


def test_a_pool_worker_or_auto_peak_off_only_reads_the_cache(monkeypatch) -> None:
    monkeypatch.setattr(peaks, "measure_peaks", lambda *a, **k: pytest.fail("measured"))
    assert peaks.ensure_peak("cpu", "fp32") is None  # conftest: MNISTBENCH_AUTO_PEAK=off
    peaks.save_peaks(_fake_peaks(fp32=1e11))
    monkeypatch.setenv("MNISTBENCH_AUTO_PEAK", "on")
    assert peaks.ensure_peak("cpu", "bf16").peak_for("bf16") == 2e11  # cached: not measured
