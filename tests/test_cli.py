"""The command line: bad input gets one clear paragraph, exit 2, no traceback, an intact store."""

from __future__ import annotations

import gzip
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import real_data_root
from mnistbench.cli import main
from mnistbench.store import Store

REQUIRED_JSON_KEYS = {
    "run_id", "config_hash", "model", "dataset", "status", "epochs", "test_accuracy",
    "best_val_accuracy", "params", "flops_per_sample", "time_per_epoch_s", "wall_time_s",
    "train_images_per_s", "peak_memory_mb", "energy_kwh",
}  # fmt: skip
QUICK = ["--epochs", "1", "--val-size", "100", "--quiet"]


def store_snapshot(path: Path) -> list[tuple]:
    """Every row of every table, to prove a failed command changed nothing."""
    with sqlite3.connect(path) as connection:
        tables = [
            r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        ]
        return [
            (t, *row) for t in sorted(tables) for row in connection.execute(f"SELECT * FROM {t}")
        ]


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """A store that already holds one finished run."""
    path = tmp_path / "results.sqlite"
    with Store(path) as store:
        run_id = store.start_run({"model": "mlp", "dataset": "mnist"}, "0" * 16, {"device": "cpu"})
        store.log_epoch(run_id, 1, {"train_loss": 0.3, "test_accuracy": 0.97})
        store.finish_run(run_id, "finished", {"test_accuracy": 0.97, "params": 535_818})
    return path


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_clean_error(code: int, err: str, *phrases: str) -> None:
    assert code == 2
    assert "Traceback" not in err
    assert err.startswith("mnistbench: error: ")
    for phrase in phrases:
        assert phrase in err, f"{phrase!r} not in {err!r}"


def test_run_records_and_prints_json(capsys, learnable_data_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite"
    code, out, _ = run_cli(
        capsys, "run", "mlp", "--data-dir", str(learnable_data_dir), "--store", str(store),
        "--epochs", "2", "--val-size", "100", "--json",
    )  # fmt: skip
    assert code == 0
    record = json.loads(out)
    assert record.keys() >= REQUIRED_JSON_KEYS
    assert record["status"] == "finished" and record["epochs"] == 2
    assert 0.9 < record["test_accuracy"] <= 1.0
    assert record["params"] == 535_818
    with Store(store) as s:
        (run,) = s.list_runs()
        assert len(s.epochs(run.run_id)) == 2
        (matrix,) = [a for a in s.artefacts(run.run_id) if a.name == "confusion_matrix"]
        assert sum(map(sum, json.loads(matrix.content))) == 300  # every test image counted once


def test_finished_config_is_not_trained_again(capsys, learnable_data_dir: Path, tmp_path: Path):
    args = [
        "run",
        "mlp",
        "--data-dir",
        str(learnable_data_dir),
        "--store",
        str(tmp_path / "s"),
        *QUICK,
    ]
    assert run_cli(capsys, *args)[0] == 0
    code, out, _ = run_cli(capsys, *args)
    assert code == 0 and "already in the store" in out
    assert run_cli(capsys, *args, "--force")[0] == 0
    with Store(tmp_path / "s") as store:
        assert [r.run_id for r in store.list_runs()] == [1, 2]


def test_same_seed_same_accuracy(capsys, learnable_data_dir: Path, tmp_path: Path) -> None:
    args = ["run", "cnn", "--data-dir", str(learnable_data_dir), "--store", str(tmp_path / "s")]
    results = [
        json.loads(run_cli(capsys, *args, *QUICK, "--subset", "500", "--json", "--force")[1])
        for _ in range(2)
    ]
    assert results[0]["test_accuracy"] == results[1]["test_accuracy"]
    assert results[0]["final_train_loss"] == results[1]["final_train_loss"]


def test_report_and_list(capsys, store_path: Path) -> None:
    code, out, _ = run_cli(capsys, "report", "--store", str(store_path))
    assert code == 0 and "| mlp |" in out and "97.00%" in out
    assert "97.81% ([study A](docs/studies.md#study-a)" in out  # published beside measured
    # study A's README calls its times training time; its scripts' timer includes the test pass
    assert "| 15 s cuda (README: training; its scripts' timer: training + test pass) |" in out
    code, out, _ = run_cli(capsys, "list")
    assert code == 0
    for row in ("| mlp | mlp | 535,818 | 97.81%", "| cnn | cnn | 206,922", "| microresnet |"):
        assert row in out
    # an SVC's parameters (support vectors) exist only after its fit: never listed as 0
    assert "| svm_rbf | svm | after the fit |" in out


def test_report_without_store(capsys, tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "report", "--store", str(tmp_path / "none.sqlite"))
    assert_clean_error(code, err, "No results store", "--store")


def _drop(root: Path, name: str) -> None:
    (root / "mnist" / name).unlink()


def _corrupt(root: Path, name: str) -> None:
    (root / "mnist" / name).write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x02ab"))


def _truncate(root: Path, name: str) -> None:
    path = root / "mnist" / name
    path.write_bytes(path.read_bytes()[:-200])


@pytest.mark.parametrize(
    ("damage", "phrases"),
    [
        (_drop, ("t10k-labels-idx1-ubyte", "MNISTBENCH_DATA", "--data-dir")),
        (_corrupt, ("t10k-labels-idx1-ubyte", "expected", "SHA-256", "data download")),
        (_truncate, ("t10k-labels-idx1-ubyte",)),
    ],
    ids=["one-file-missing", "file-corrupt", "file-truncated"],
)
def test_damaged_data_is_named(capsys, learnable_data_dir, store_path, damage, phrases) -> None:
    before = store_snapshot(store_path)
    damage(learnable_data_dir, "t10k-labels-idx1-ubyte.gz")
    code, _, err = run_cli(
        capsys,
        "run",
        "mlp",
        "--data-dir",
        str(learnable_data_dir),
        "--store",
        str(store_path),
        *QUICK,
    )
    assert_clean_error(code, err, *phrases)
    assert store_snapshot(store_path) == before


@pytest.mark.parametrize(
    ("args", "phrases"),
    [
        (["run", "mlp", "--data-dir", "/no/such/folder"], ("/no/such/folder", "MNISTBENCH_DATA")),
        (["run", "mlpp"], ("Unknown model 'mlpp'", "mlp", "mnistbench list")),
        (["run", "resnet"], ("Unknown model", "microresnet")),
        (["run", "mlp", "--dataset", "cifar10"], ("cifar10", "mnist", "fashion-mnist")),
        (["run", "mlp", "--lr", "0"], ("--lr", "positive")),
        (["run", "mlp", "--lr", "-0.01"], ("--lr", "positive")),
        (["run", "mlp", "--epochs", "0"], ("--epochs", "at least 1")),
        (["run", "mlp", "--batch-size", "0"], ("--batch-size", "at least 1")),
        (["run", "mlp", "--device", "cuda"], ("cuda", "--device cpu")),
    ],
)
def test_bad_input_is_a_clean_error(capsys, store_path: Path, args, phrases) -> None:
    import torch

    if "--device" in args and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    before = store_snapshot(store_path)
    code, _, err = run_cli(capsys, *args, "--store", str(store_path), "--no-download")
    assert_clean_error(code, err, *phrases)
    assert store_snapshot(store_path) == before


def test_unwritable_store_path(capsys, tmp_path: Path, learnable_data_dir: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, _, err = run_cli(
        capsys, "run", "mlp", "--data-dir", str(learnable_data_dir), "--store",
        str(blocker / "results.sqlite"), *QUICK,
    )  # fmt: skip
    assert_clean_error(code, err, str(blocker), "--store")
    assert blocker.read_text() == "not a folder"


def test_data_check(capsys, learnable_data_dir: Path) -> None:
    code, out, _ = run_cli(
        capsys, "data", "check", "--dataset", "mnist", "--data-dir", str(learnable_data_dir)
    )
    assert code == 0 and out.count("| ok |") == 4
    _corrupt(learnable_data_dir, "train-images-idx3-ubyte.gz")
    code, out, err = run_cli(
        capsys, "data", "check", "--dataset", "mnist", "--data-dir", str(learnable_data_dir)
    )
    assert code == 1 and "| corrupt |" in out and "mnistbench data download" in err


def test_data_download_offline_is_a_clean_error(capsys, tmp_path: Path) -> None:
    code, _, err = run_cli(
        capsys, "data", "download", "--dataset", "mnist", "--data-dir", str(tmp_path / "d")
    )
    assert_clean_error(code, err, "MNISTBENCH_OFFLINE")


def test_module_entry_point_in_a_real_process(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mnistbench", "run", "cnnn", "--store", str(tmp_path / "s.sqlite")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "Did you mean cnn" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.real_data
def test_sigterm_records_interrupted(tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite"
    process = _spawn_run(store, real_data_root("mnist"), "--epochs", "50")
    _wait_for_first_epoch(store)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    with Store(store) as s:
        (run,) = s.list_runs()
        assert run.status == "interrupted" and 1 <= len(s.epochs(run.run_id)) < 50


def test_dry_run_records_nothing(capsys, learnable_data_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite"
    code, out, _ = run_cli(
        capsys, "run", "cnn", "--data-dir", str(learnable_data_dir), "--store", str(store),
        "--dry-run", "--quiet",
    )  # fmt: skip
    assert code == 0 and "dry run of cnn on mnist: finished; nothing recorded" in out
    assert not store.exists()


def _spawn_run(store: Path, root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mnistbench", "run", "mlp", "--subset", "3000", "--val-size",
         "500", "--store", str(store), "--quiet", *args],
        env={**os.environ, "MNISTBENCH_DATA": str(root)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_for_first_epoch(store: Path, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.3)
        if store.exists():
            with Store(store) as s:
                if s.list_runs() and s.epochs(s.list_runs()[0].run_id):
                    return
    raise AssertionError("no epoch was recorded in time")


@pytest.mark.real_data
def test_two_processes_write_one_store(tmp_path: Path) -> None:
    root = real_data_root("mnist")
    store = tmp_path / "s.sqlite"
    processes = [_spawn_run(store, root, "--epochs", "2", "--seed", str(s)) for s in (1, 2)]
    for process in processes:
        _, err = process.communicate(timeout=180)
        assert process.returncode == 0, err
    with Store(store) as s:
        runs = s.list_runs()
        assert sorted(r.config["seed"] for r in runs) == [1, 2]
        assert all(r.status == "finished" and len(s.epochs(r.run_id)) == 2 for r in runs)


@pytest.mark.real_data
def test_sigkill_leaves_the_run_marked_interrupted_later(capsys, tmp_path: Path) -> None:
    root = real_data_root("mnist")
    store = tmp_path / "s.sqlite"
    process = _spawn_run(store, root, "--epochs", "50")
    _wait_for_first_epoch(store)
    process.kill()  # SIGKILL: no handler runs, the row stays 'running'
    process.communicate(timeout=60)
    with Store(store) as s:
        assert s.list_runs()[0].status == "running"
    code, out, _ = run_cli(capsys, "report", "--store", str(store))
    assert code == 0 and "| interrupted | process" in out
    with Store(store) as s:
        assert s.list_runs()[0].status == "interrupted"


def test_options_reach_the_recorded_config(capsys, learnable_data_dir: Path, tmp_path: Path):
    code, out, _ = run_cli(
        capsys, "run", "mlp", "--data-dir", str(learnable_data_dir), "--store",
        str(tmp_path / "s"), "--json", "--epochs", "2", "--val-size", "100", "--optimizer", "sgd",
        "--lr", "0.05", "--nesterov", "--augment", "affine", "--patience", "3", "--target", "0.5",
        "--seed", "7", "--grad-clip", "2", "--label-smoothing", "0.1", "--scheduler", "cosine",
    )  # fmt: skip
    assert code == 0
    config = json.loads(out)["config"]
    expected = {
        "optimizer": "sgd", "lr": 0.05, "nesterov": True, "augment": "affine",
        "early_stopping_patience": 3, "target_accuracy": 0.5, "seed": 7, "grad_clip": 2.0,
        "label_smoothing": 0.1, "scheduler": "cosine", "batch_size": 128,  # from the recipe
    }  # fmt: skip
    assert {key: config[key] for key in expected} == expected


def test_merge_copies_runs_and_refuses_bad_sources(capsys, store_path: Path, tmp_path) -> None:
    target = tmp_path / "merged" / "all.sqlite"
    code, _, err = run_cli(capsys, "merge", str(store_path), "--store", str(target))
    assert code == 0 and "1 run(s) copied, 0 already" in err
    code, _, err = run_cli(capsys, "merge", str(store_path), "--store", str(target))
    assert code == 0 and "0 run(s) copied, 1 already" in err
    code, out, _ = run_cli(capsys, "report", "--store", str(target))
    assert code == 0 and "| mlp |" in out and "97.00%" in out
    before = store_snapshot(target)
    code, _, err = run_cli(capsys, "merge", str(tmp_path / "nope.sqlite"), "--store", str(target))
    assert_clean_error(code, err, "No results store or export at", "nope.sqlite")
    code, _, err = run_cli(capsys, "merge", str(target), "--store", str(target))
    assert_clean_error(code, err, "is the target store itself")
    assert store_snapshot(target) == before


def test_run_summary_labels_energy_and_flop_rate_as_what_they_are() -> None:
    """Energy prints in Wh with measured/estimated; the FLOP rate says it is an estimate and
    either its fraction of the peak or why there is none."""
    from types import SimpleNamespace

    from mnistbench.cli.run import _energy_text, _flop_rate_text

    def run(**metrics):  # what the energy reading looks at of a stored run
        return SimpleNamespace(metrics=metrics)

    tdp = {"energy_kwh": 2.5e-5, "energy_measured": False, "energy_method": "codecarbon TDP"}
    assert _energy_text(run(**tdp)) == "0.025 Wh (estimated: codecarbon TDP)"
    counter = {**tdp, "energy_measured": True, "energy_method": "RAPL"}
    assert _energy_text(run(**counter)) == "0.025 Wh (measured: RAPL)"
    assert _energy_text(run()) == "not measured"
    rate = {"train_flops_per_s": 2.0e10, "fraction_of_peak": 0.125}
    assert _flop_rate_text(rate) == (
        "20.00 GFLOP/s (estimate, 3 x forward), 12.5% of this machine's peak"
    )
    no_peak = {"train_flops_per_s": 2.0e10, "fraction_of_peak_note": "no peak cached"}
    assert _flop_rate_text(no_peak).endswith(", no peak cached")


def test_export_jsonl_then_merge_it_as_a_store(capsys, store_path: Path, tmp_path) -> None:
    """results/*.jsonl is merged as a store is: the same run once, whichever form it came in."""
    export = tmp_path / "results" / "runs.jsonl"
    code, _, err = run_cli(
        capsys, "export", "--store", str(store_path), "--format", "jsonl", "--out", str(export)
    )
    assert code == 0 and "1 run(s), 0 artefact(s)" in err
    target = tmp_path / "merged.sqlite"
    code, _, err = run_cli(capsys, "merge", str(export), "--store", str(target))
    assert code == 0 and "1 run(s) copied, 0 already" in err
    code, _, err = run_cli(capsys, "merge", str(store_path), str(export), "--store", str(target))
    assert code == 0 and err.count("0 run(s) copied, 1 already") == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    code, _, err = run_cli(capsys, "merge", str(bad), "--store", str(target))
    assert_clean_error(code, err, "bad.jsonl, line 1", "it is not JSON")


def test_report_view_prints_or_writes_one_table(capsys, store_path: Path, tmp_path) -> None:
    code, out, _ = run_cli(capsys, "report", "--store", str(store_path), "--view", "studies")
    assert code == 0 and out.startswith("# The published studies reproduced\n")
    out_file = tmp_path / "tables" / "studies.md"
    code, _, err = run_cli(
        capsys, "report", "--store", str(store_path), "--view", "studies", "--out", str(out_file)
    )
    assert code == 0 and out_file.read_text() == out and "studies.md" in err
    code, _, err = run_cli(capsys, "report", "--store", str(store_path), "--view", "studys")
    assert_clean_error(code, err, "Unknown report view 'studys'", "Did you mean studies")
    from mnistbench.report import VIEWS

    with pytest.raises(SystemExit):
        main(["report", "--help"])
    helped = "".join(capsys.readouterr().out.split())  # argparse wraps lines at hyphens
    assert all(name in helped for name in VIEWS)  # --help names every view
