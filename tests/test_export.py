"""CSV, JSON and JSON-lines exports of runs and epochs, from a store written by hand."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from mnistbench.cli import main
from mnistbench.errors import ConfigError
from mnistbench.experiments.configure import make_config
from mnistbench.report import export
from mnistbench.store import Store, export_jsonl

ENV = {"device": "cpu", "device_name": "Test CPU", "torch_version": "2.13.0"}


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "results.sqlite"
    with Store(path) as store:
        for seed in (0, 1):
            config = make_config("mlp", seed=seed, lr=0.002)
            run_id = store.start_run(config.to_dict(), config.config_hash(), ENV)
            for epoch in (1, 2, 3):
                store.log_epoch(
                    run_id, epoch, {"train_loss": 1 / epoch, "val_accuracy": 0.9 + epoch / 100}
                )
            store.finish_run(
                run_id,
                "finished",
                {"test_accuracy": 0.97 + seed / 100, "params": 535_818, "status": "odd",
                 "per_class": [0.9, 0.95], "energy_kwh": None},
            )  # fmt: skip
        config = make_config("cnn", lr=10.0)
        run_id = store.start_run(config.to_dict(), config.config_hash(), ENV)
        store.log_epoch(run_id, 1, {"train_loss": float("nan")})
        store.finish_run(run_id, "diverged", {"test_accuracy": 0.1}, error="loss became NaN")
    return path


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_runs_csv_is_flat_config_metrics_environment(store_path: Path) -> None:
    with Store(store_path) as store:
        rows = _csv(export(store, "csv", "runs"))
    assert [r["run_id"] for r in rows] == ["1", "2", "3"]
    first, second, diverged = rows
    assert list(first)[:5] == ["run_id", "config_hash", "model", "dataset", "status"]
    assert first["status"] == "finished" and first["metric.status"] == "odd"  # no clash
    assert float(second["test_accuracy"]) == pytest.approx(0.98)
    assert first["params"] == "535818" and first["config.lr"] == "0.002"
    assert first["config.seed"] == "0" and second["config.seed"] == "1"
    assert first["env.device_name"] == "Test CPU"
    assert json.loads(first["per_class"]) == [0.9, 0.95]  # nested values as JSON text
    assert first["energy_kwh"] == "" and first["config.model_options"] == "[]"
    assert diverged["status"] == "diverged" and diverged["error"] == "loss became NaN"
    assert diverged["params"] == "" and diverged["config.model"] == "cnn"


def test_runs_json_matches_csv(store_path: Path) -> None:
    with Store(store_path) as store:
        rows = json.loads(export(store, "json", "runs"))
        csv_rows = _csv(export(store, "csv", "runs"))
    assert len(rows) == 3
    assert rows[0]["config.lr"] == 0.002 and rows[0]["per_class"] == [0.9, 0.95]
    assert rows[0]["energy_kwh"] is None and rows[2]["config.model"] == "cnn"
    assert set(rows[0]) | set(rows[2]) == set(csv_rows[0])


def test_epochs_export(store_path: Path) -> None:
    with Store(store_path) as store:
        rows = _csv(export(store, "csv", "epochs"))
        as_json = json.loads(export(store, "json", "epochs"))
    assert len(rows) == len(as_json) == 3 + 3 + 1
    assert list(rows[0])[:7] == ["run_id", "config_hash", "model", "dataset", "status", "seed",
                                 "epoch"]  # fmt: skip
    assert [(r["run_id"], r["seed"], r["epoch"]) for r in rows[3:6]] == [
        ("2", "1", "1"), ("2", "1", "2"), ("2", "1", "3")
    ]  # fmt: skip
    assert float(rows[1]["train_loss"]) == pytest.approx(0.5)
    assert as_json[-1]["train_loss"] is None and as_json[-1]["status"] == "diverged"


def test_bad_choices_raise_config_error(store_path: Path) -> None:
    with Store(store_path) as store:
        with pytest.raises(ConfigError, match="--format"):
            export(store, "xml")
        with pytest.raises(ConfigError, match="--what"):
            export(store, "csv", "artefacts")


def test_cli_export(capsys, store_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "deep" / "runs.json"
    assert main(["export", "--store", str(store_path), "--format", "json", "--out", str(out)]) == 0
    assert len(json.loads(out.read_text())) == 3
    assert "wrote" in capsys.readouterr().err
    args = ["export", "--store", str(store_path), "--what", "epochs", "--out", "-"]
    assert main(args) == 0
    assert len(_csv(capsys.readouterr().out)) == 7
    code = main(["export", "--store", str(tmp_path / "none.sqlite"), "--out", "-"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("mnistbench: error: No results store")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["export", "--store", str(store_path), "--out", str(blocker / "runs.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "Cannot write the export" in err and "Traceback" not in err


def test_jsonl_export_is_the_store_jsonl_export(store_path: Path) -> None:
    with Store(store_path) as store:
        text = export(store, "jsonl")
        assert text == "".join(export_jsonl(store))
        with pytest.raises(ConfigError, match="--what runs"):
            export(store, "jsonl", "epochs")
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["config"]["seed"] for line in lines] == [0, 1, 0]
    assert [len(line["epochs"]) for line in lines] == [3, 3, 1]
    assert lines[2]["status"] == "diverged" and lines[2]["error"] == "loss became NaN"


def test_cli_export_jsonl(capsys, store_path: Path) -> None:
    assert main(["export", "--store", str(store_path), "--format", "jsonl", "--out", "-"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(json.loads(line)["format"] == "mnistbench-run" for line in lines)
