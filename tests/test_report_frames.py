"""mnistbench.runs() / mnistbench.epochs(): the store as pandas DataFrames, one row per run (per
run and epoch), checked against the store and, for the interval, against statsmodels."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint

import mnistbench
from mnistbench.experiments.configure import make_config
from mnistbench.report.rebuild import committed_store
from mnistbench.store import Store

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store(tmp_path / "results.sqlite") as opened:
        for seed, accuracy in ((0, 0.98), (1, 0.9712)):
            config = make_config("mlp", seed=seed)
            run = opened.start_run(config.to_dict(), config.config_hash(), {"device": "cpu",
                                   "torch_threads": 2})  # fmt: skip
            for epoch, stage in ((1, "pretrain"), (2, "probe")):
                opened.log_epoch(run, epoch, {"test_accuracy": accuracy - 0.01 / epoch,
                                              "stage": stage})  # fmt: skip
            opened.finish_run(run, "finished", {"test_accuracy": accuracy, "params": 535_818,
                                                "target_accuracy": 0.5})  # fmt: skip
        config = make_config("cnn", subset=2000)
        run = opened.start_run(config.to_dict(), config.config_hash(), {"device": "cpu"})
        opened.finish_run(run, "finished", {"test_accuracy": 0.9, "n_test": 2000})
        yield opened


def test_a_row_is_the_run_in_the_store(store: Store) -> None:
    frame = mnistbench.runs(store)
    assert isinstance(frame, pd.DataFrame) and len(frame) == 3
    run = store.list_runs(model="mlp")[0]
    row = frame[frame["run_id"] == run.run_id].iloc[0]
    assert row["model"] == "mlp" and row["seed"] == 0 and row["lr"] == run.config["lr"]
    assert row["test_accuracy"] == 0.98 and row["params"] == 535_818
    assert row["env_torch_threads"] == 2 and row["family"] == "mlp"
    # a metric named like a config field keeps both
    assert row["target_accuracy"] == run.config["target_accuracy"]
    assert row["metric_target_accuracy"] == 0.5
    # no stored interval: Wilson over the 10,000 official test images, as statsmodels gives it
    low, high = proportion_confint(9800, 10_000, alpha=0.05, method="wilson")
    assert row["test_accuracy_ci95_low"] == pytest.approx(low, abs=1e-12)
    assert row["test_accuracy_ci95_high"] == pytest.approx(high, abs=1e-12)
    subset = frame[frame["model"] == "cnn"].iloc[0]  # scored on its 2,000 test images
    low, high = proportion_confint(1800, 2000, alpha=0.05, method="wilson")
    assert subset["test_accuracy_ci95_low"] == pytest.approx(low, abs=1e-12)


def test_filters_on_any_column_and_refuses_an_unknown_one(store: Store) -> None:
    assert list(mnistbench.runs(store, model="mlp", seed=1)["test_accuracy"]) == [0.9712]
    assert len(mnistbench.runs(store, device="cpu")) == 3
    assert mnistbench.runs(store, model="vit").empty
    with pytest.raises(ValueError, match="No column 'colour'"):
        mnistbench.runs(store, colour="red")


def test_epochs_are_one_row_per_run_and_epoch_with_stages(store: Store) -> None:
    frame = mnistbench.epochs(store, model="mlp")
    assert len(frame) == 4
    assert list(frame["stage"]) == ["pretrain", "probe"] * 2
    first = frame[(frame["seed"] == 1) & (frame["epoch"] == 2)].iloc[0]
    assert first["test_accuracy"] == pytest.approx(0.9712 - 0.005)


def test_the_committed_results_give_every_run_once_with_its_interval() -> None:
    if not list((ROOT / "results").glob("*.jsonl")):
        pytest.skip("no committed results in this checkout")
    with committed_store(ROOT) as committed:
        frame = mnistbench.runs(committed)
        stored = committed.list_runs()
    assert len(frame) == len(stored) and frame["run_id"].is_unique
    assert set(frame["run_id"]) == {r.run_id for r in stored}
    scored = frame.dropna(subset=["test_accuracy"])
    assert len(scored) == sum(isinstance(r.metrics.get("test_accuracy"), float) for r in stored)
    assert (scored["test_accuracy_ci95_low"] <= scored["test_accuracy"]).all()
    assert (scored["test_accuracy"] <= scored["test_accuracy_ci95_high"]).all()
