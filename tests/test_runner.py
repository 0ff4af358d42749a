"""run_config end to end on a tiny learnable data set: rows land, failures are recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from mnistbench.errors import DataError
from mnistbench.experiments import run_config, runner
from mnistbench.experiments.configure import make_config
from mnistbench.store import Store


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "results.sqlite") as opened:
        yield opened


def _config(**overrides):
    return make_config("mlp", **{"epochs": 2, "val_size": 100, **overrides})


def test_rows_and_measurements_land(store: Store, learnable_data_dir: Path) -> None:
    outcome = run_config(_config(), store, data_dir=learnable_data_dir, progress=False)
    record = outcome.record
    assert not outcome.reused and record.status == "finished"
    m = record.metrics
    assert m["params"] == 535_818
    assert (
        m["flops_per_sample"] == 2 * m["macs_per_sample"] == 2 * (784 * 512 + 512 * 256 + 256 * 10)
    )
    assert m["model_size_bytes"] == 535_818 * 4
    assert m["time_per_epoch_s"] > 0 and m["wall_time_s"] > m["total_train_time_s"]
    assert m["train_images_per_s"] == pytest.approx(2 * 1100 / m["total_train_time_s"])
    assert m["latency_batch1_ms"] > 0 and m["latency_batch1000_ms"] > m["latency_batch1_ms"]
    # the recipe runner carries the loop's CPU seconds through (it once dropped them: 0%);
    # a share over 1 would mean CPU time the threads could not have had
    assert 0 < m["train_cpu_share"] <= 1.05
    assert m["peak_memory_kind"] == "run_peak_rss"  # Linux: this run's own high-water mark
    assert m["peak_memory_mb"] >= m["memory_at_start_mb"] + m["data_on_device_mb"]
    # energy: a figure with its scope, or none with the reason (tests/test_measure.py checks
    # the figure against CodeCarbon's model and the scope against the run's steps)
    assert (m["energy_kwh"] is None) == (m["energy_measured"] is None) == bool(m["energy_note"])
    assert m["energy_scope"].startswith("The whole run, from data preparation")
    env = record.environment
    assert {"torch_version", "device_name", "cpu_model", "torch_threads", "git_sha"} <= env.keys()
    assert env["cpu_capability"] and isinstance(env["cpu_native_bf16"], bool)
    assert [e["epoch"] for e in store.epochs(record.run_id)] == [1, 2]
    assert record.config["model"] == "mlp" and record.config_hash == _config().config_hash()


def test_completed_config_is_reused_unless_forced(store: Store, learnable_data_dir: Path) -> None:
    first = run_config(_config(), store, data_dir=learnable_data_dir, progress=False)
    again = run_config(_config(), store, data_dir=learnable_data_dir, progress=False)
    forced = run_config(_config(), store, data_dir=learnable_data_dir, progress=False, force=True)
    assert again.reused and again.record.run_id == first.record.run_id
    assert not forced.reused and forced.record.run_id != first.record.run_id


@pytest.mark.parametrize(
    ("error", "status", "text"),
    [(KeyboardInterrupt(), "interrupted", "interrupted"), (RuntimeError("boom"), "failed", "boom")],
)
def test_interrupted_and_failed_runs_are_recorded(
    store: Store, learnable_data_dir: Path, monkeypatch, error, status, text
) -> None:
    def explode(*args, **kwargs):
        raise error

    with monkeypatch.context() as patch, pytest.raises(type(error)):
        patch.setattr(runner, "run_recipe", explode)
        run_config(_config(), store, data_dir=learnable_data_dir, progress=False)
    (record,) = store.list_runs()
    assert record.status == status and text in record.error
    assert record.metrics["params"] == 535_818  # what was measured before the failure is kept
    # a failed or interrupted run does not block the config from being trained again
    retried = run_config(_config(), store, data_dir=learnable_data_dir, progress=False)
    assert not retried.reused and retried.record.status == "finished"


def test_bad_data_leaves_no_row(store: Store, tmp_path: Path) -> None:
    with pytest.raises(DataError):
        run_config(_config(), store, data_dir=tmp_path / "missing", progress=False)
    assert store.list_runs() == []


def test_energy_meter_stops_once() -> None:
    from mnistbench.engine.energy import EnergyMeter

    meter = EnergyMeter("a test")
    meter.start()
    first = meter.stop()
    assert meter.stop() is first  # a second stop (the runner's exit) changes nothing
    assert first.scope.startswith("a test")
    assert first.energy_kwh == pytest.approx(first.cpu_kwh + first.gpu_kwh + first.ram_kwh)
