"""The Markdown report, built only from the store."""

from __future__ import annotations

from pathlib import Path

from mnistbench.config import make_config
from mnistbench.report import runs_markdown
from mnistbench.report.tables import latest_per_config, settings_vs_recipe
from mnistbench.store import Store


def _record(store: Store, config, status: str = "finished", accuracy: float = 0.98) -> int:
    run_id = store.start_run(config.to_dict(), config.config_hash(), {"device": "cpu"})
    store.finish_run(run_id, status, {"test_accuracy": accuracy, "params": 1})
    return run_id


def test_report_rows_and_settings(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        _record(store, make_config("mlp"), accuracy=0.97)
        _record(store, make_config("mlp"), accuracy=0.975)  # a --force rerun replaces the row
        _record(store, make_config("cnn", precision="bf16", scheduler="onecycle"))
        _record(store, make_config("cnn", lr=10.0), status="diverged")
        runs = store.list_runs()
        assert [r.run_id for r in latest_per_config(runs)] == [3, 4, 2]
        assert settings_vs_recipe(runs[0]) == "recipe"
        assert settings_vs_recipe(runs[2]) == "scheduler=onecycle, precision=bf16"
        markdown = runs_markdown(store)
    assert "97.50%" in markdown and "97.00%" not in markdown
    assert "| cnn | conv3x3(16)-pool" in markdown
    assert "| 4 | cnn | mnist | diverged |" in markdown  # not in the results table, listed below


def test_empty_store_says_how_to_start(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        assert "mnistbench run mlp" in runs_markdown(store)
