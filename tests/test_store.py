"""SQLite results store tests: round trips, bad paths, reopening, concurrency, stale runs."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mnistbench.errors import StoreError
from mnistbench.store import (
    COMPLETED_STATUSES,
    RECORD_KEYS,
    RUN_STATUSES,
    SCHEMA_VERSION,
    Artefact,
    Store,
    default_store_path,
    open_existing_store,
)
from mnistbench.store.schema_records import RecordError
from run_configs import real_config
from unwritable import unwritable

CONFIG = {"model": "mlp", "dataset": "mnist", "epochs": 3, "lr": 0.01}
ENV = {"python": "3.11", "torch": "2.x", "device": "cpu"}


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "results" / "results.sqlite"


@pytest.fixture
def store(store_path: Path):
    with Store(store_path) as s:
        yield s


def _raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(str(path), isolation_level=None)


def _set_columns(path: Path, run_id: int, **columns: object) -> None:
    """Edit a run row directly, to fake runs left behind by other processes."""
    conn = _raw(path)
    try:
        assignments = ", ".join(f"{name} = ?" for name in columns)
        conn.execute(f"UPDATE runs SET {assignments} WHERE run_id = ?", (*columns.values(), run_id))
    finally:
        conn.close()


def _dump(path: Path) -> dict[str, list[tuple]]:
    conn = _raw(path)
    try:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
            for table in ("meta", "runs", "epochs", "artefacts")
        }
    finally:
        conn.close()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped, so the pid no longer exists (not even as a zombie)
    return proc.pid


def _start(store: Store, config_hash: str = "hash-a", **overrides: object) -> int:
    return store.start_run({**CONFIG, **overrides}, config_hash, ENV)


# ------------------------------------------------------------------------ round trips


def test_default_store_path_is_relative_results_folder() -> None:
    assert default_store_path() == Path("mnistbench-results") / "results.sqlite"


def test_store_without_path_uses_default_and_creates_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with Store() as s:
        assert s.path == default_store_path()
    assert (tmp_path / "mnistbench-results" / "results.sqlite").is_file()


def test_round_trip(store: Store) -> None:
    run_id = _start(store)
    confusion = [[5, 1], [0, 7]]
    store.log_epoch(run_id, 1, {"train_loss": 0.9, "train_accuracy": 0.7, "val_accuracy": None})
    store.log_epoch(run_id, 2, {"train_loss": 0.5, "train_accuracy": 0.8, "val_accuracy": 0.81})
    metrics = {
        "test_accuracy": 0.93,
        "best_val_accuracy": 0.91,
        "params": 101_770,
        "time_per_epoch_s": 1.5,
        "confusion_matrix": confusion,
        "per_class": {"0": 0.99, "1": None},
        "note": "ok",
    }
    store.finish_run(run_id, "finished", metrics)
    store.add_artefact(run_id, "summary.json", "json", json.dumps({"a": 1}))
    store.add_artefact(run_id, "curve.png", "png", b"\x89PNG\r\n\x1a\n\x00\xff")

    run = store.get_run(run_id)
    assert run.run_id == run_id
    assert (run.config_hash, run.model, run.dataset) == ("hash-a", "mlp", "mnist")
    assert run.status == "finished"
    assert run.config == CONFIG
    assert run.environment == ENV
    assert run.metrics == metrics
    assert run.error is None
    assert run.started_at.endswith("+00:00")
    assert run.finished_at is not None and run.finished_at >= run.started_at
    assert run.pid == os.getpid()
    assert run.hostname == socket.gethostname()

    assert store.list_runs() == [run]
    assert store.epochs(run_id) == [
        {"epoch": 1, "train_loss": 0.9, "train_accuracy": 0.7, "val_accuracy": None},
        {"epoch": 2, "train_loss": 0.5, "train_accuracy": 0.8, "val_accuracy": 0.81},
    ]
    artefacts = store.artefacts(run_id)
    assert [(a.run_id, a.name, a.kind, a.content) for a in artefacts] == [
        (run_id, "summary.json", "json", b'{"a": 1}'),
        (run_id, "curve.png", "png", b"\x89PNG\r\n\x1a\n\x00\xff"),
    ]
    assert all(isinstance(a, Artefact) and isinstance(a.content, bytes) for a in artefacts)

    flat = run.to_dict()
    assert tuple(flat)[: len(RECORD_KEYS)] == RECORD_KEYS
    assert flat["test_accuracy"] == 0.93
    assert flat["confusion_matrix"] == confusion
    assert flat["config"] == CONFIG
    assert flat["environment"] == ENV
    json.dumps(flat, allow_nan=False)


def test_headline_metrics_become_sql_columns(store: Store, store_path: Path) -> None:
    run_id = _start(store)
    store.finish_run(
        run_id,
        "finished",
        {"test_accuracy": 0.9, "best_val_accuracy": 0.88, "params": 1234, "time_per_epoch_s": 2.5},
    )
    other = _start(store)
    store.finish_run(other, "failed", {"test_accuracy": float("nan")}, error="boom")
    conn = _raw(store_path)
    rows = conn.execute(
        "SELECT run_id, test_accuracy, best_val_accuracy, params, time_per_epoch_s FROM runs "
        "ORDER BY run_id"
    ).fetchall()
    conn.close()
    assert rows == [(run_id, 0.9, 0.88, 1234, 2.5), (other, None, None, None, None)]
    assert store.get_run(other).error == "boom"


def test_non_finite_and_numpy_values_are_stored_as_json(store: Store) -> None:
    run_id = _start(store)
    store.log_epoch(
        run_id,
        1,
        {"train_loss": float("nan"), "val_accuracy": np.float32(0.25), "train_time_s": 1},
    )
    store.finish_run(
        run_id,
        "diverged",
        {
            "final_loss": float("inf"),
            "neg": float("-inf"),
            "steps": np.int64(7),
            "confusion_matrix": np.array([[1, 2], [3, 4]]),
            "curve": [0.5, float("nan")],
        },
    )
    assert store.epochs(run_id) == [
        {"epoch": 1, "train_loss": None, "val_accuracy": 0.25, "train_time_s": 1}
    ]
    metrics = store.get_run(run_id).metrics
    assert metrics == {
        "final_loss": None,
        "neg": None,
        "steps": 7,
        "confusion_matrix": [[1, 2], [3, 4]],
        "curve": [0.5, None],
    }
    json.dumps(store.get_run(run_id).to_dict(), allow_nan=False)


def test_epoch_logged_twice_replaces_earlier_row(store: Store) -> None:
    run_id = _start(store)
    store.log_epoch(run_id, 1, {"train_loss": 1.0, "extra": 1})
    store.log_epoch(run_id, 2, {"train_loss": 0.8})
    store.log_epoch(run_id, 1, {"train_loss": 0.7})
    assert store.epochs(run_id) == [
        {"epoch": 1, "train_loss": 0.7},
        {"epoch": 2, "train_loss": 0.8},
    ]


def test_artefact_added_twice_replaces_earlier_one(store: Store) -> None:
    run_id = _start(store)
    store.add_artefact(run_id, "plot", "svg", "<svg>old</svg>")
    store.add_artefact(run_id, "plot", "png", b"new")
    (artefact,) = store.artefacts(run_id)
    assert (artefact.name, artefact.kind, artefact.content) == ("plot", "png", b"new")


def test_metric_named_like_identity_field_is_kept_in_to_dict(store: Store) -> None:
    run_id = _start(store)
    store.finish_run(run_id, "finished", {"status": "weird", "test_accuracy": 0.5})
    flat = store.get_run(run_id).to_dict()
    assert flat["status"] == "finished"
    assert flat["metric_status"] == "weird"


def test_list_runs_filters_and_order(store: Store) -> None:
    a = _start(store, "h1")
    b = _start(store, "h2", model="cnn")
    c = _start(store, "h3", dataset="fashion")
    store.finish_run(a, "finished")
    store.finish_run(c, "failed", error="x")
    assert [r.run_id for r in store.list_runs()] == [a, b, c]
    assert [r.run_id for r in store.list_runs(status="running")] == [b]
    assert [r.run_id for r in store.list_runs(model="mlp")] == [a, c]
    assert [r.run_id for r in store.list_runs(model="mlp", dataset="fashion")] == [c]
    assert store.list_runs(status="diverged") == []


def test_find_completed_returns_latest_finished_or_diverged(store: Store) -> None:
    assert store.find_completed("h") is None
    first = _start(store, "h")
    store.finish_run(first, "finished", {"test_accuracy": 0.9})
    second = _start(store, "h")
    store.finish_run(second, "diverged")
    for status in ("failed", "interrupted"):
        store.finish_run(_start(store, "h"), status, error="no")
    _start(store, "h")  # still running
    other = _start(store, "other")
    store.finish_run(other, "finished")

    found = store.find_completed("h")
    assert found is not None and found.run_id == second and found.status == "diverged"

    only_bad = _start(store, "bad")
    store.finish_run(only_bad, "failed")
    store.finish_run(_start(store, "bad"), "interrupted")
    _start(store, "bad")
    assert store.find_completed("bad") is None
    assert set(COMPLETED_STATUSES) <= set(RUN_STATUSES)


# ------------------------------------------------------------------------ API misuse


def test_finish_run_with_bad_status_raises_value_error(store: Store) -> None:
    run_id = _start(store)
    for status in ("running", "done", ""):
        with pytest.raises(ValueError, match="status"):
            store.finish_run(run_id, status)
    assert store.get_run(run_id).status == "running"


def test_start_run_needs_model_and_dataset(store: Store) -> None:
    with pytest.raises(ValueError, match="dataset"):
        store.start_run({"model": "mlp"}, "h", {})
    assert store.list_runs() == []


def test_unknown_run_raises_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match="no run with id 42"):
        store.get_run(42)
    with pytest.raises(StoreError, match="no run with id 42"):
        store.log_epoch(42, 1, {"train_loss": 1.0})
    with pytest.raises(StoreError, match="no run with id 42"):
        store.finish_run(42, "finished")
    with pytest.raises(StoreError, match="no run with id 42"):
        store.add_artefact(42, "a", "json", "{}")
    assert store.epochs(42) == []
    assert store.artefacts(42) == []


def test_bad_epoch_number_raises_value_error(store: Store) -> None:
    run_id = _start(store)
    with pytest.raises(ValueError, match="epoch"):
        store.log_epoch(run_id, 0, {})


def test_closed_store_raises_store_error(store_path: Path) -> None:
    s = Store(store_path)
    s.close()
    s.close()  # twice is fine
    with pytest.raises(StoreError, match="closed"):
        s.list_runs()


# ------------------------------------------------------------------------ unusable paths


def test_path_under_read_only_folder_raises_store_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    path = locked / "results.sqlite"
    with unwritable(locked):  # chattr +i as root, where a chmod 0o500 folder stays writable
        with pytest.raises(StoreError) as info:
            Store(path)
        assert str(path) in str(info.value)
        assert "--store" in str(info.value)
        assert not path.exists()


def test_open_existing_store_opens_read_only_only_where_it_must(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="No results store"):
        open_existing_store(tmp_path / "none.sqlite")
    assert not (tmp_path / "none.sqlite").exists()
    path = tmp_path / "s" / "results.sqlite"
    with Store(path) as s:
        _start(s)
    with open_existing_store(path) as s:
        assert not s.read_only and len(s.list_runs()) == 1
    with unwritable(path, path.parent), open_existing_store(path) as s:
        assert s.read_only and len(s.list_runs()) == 1


def test_path_whose_parent_is_a_regular_file_raises_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("I am a file")
    for path in (blocker / "results.sqlite", blocker / "deeper" / "results.sqlite"):
        with pytest.raises(StoreError) as info:
            Store(path)
        assert str(path) in str(info.value)
        assert "--store" in str(info.value)
    assert blocker.read_text() == "I am a file"


def test_path_that_is_a_directory_raises_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as info:
        Store(tmp_path)
    assert str(tmp_path) in str(info.value)
    assert "--store" in str(info.value)


def test_non_sqlite_file_raises_store_error_and_is_left_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    content = b"epoch,loss\n1,0.5\n" * 200
    path.write_bytes(content)
    with pytest.raises(StoreError) as info:
        Store(path)
    assert str(path) in str(info.value)
    assert "--store" in str(info.value)
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.sqlite"]


def test_foreign_sqlite_database_raises_store_error_and_is_left_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    conn = _raw(path)
    conn.execute("CREATE TABLE meta (key TEXT, value TEXT)")
    conn.execute("INSERT INTO meta VALUES ('owner', 'someone else')")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not an mnistbench results store") as info:
        Store(path)
    assert "--store" in str(info.value)
    assert path.read_bytes() == before


def test_newer_schema_version_raises_store_error(store_path: Path) -> None:
    Store(store_path).close()
    conn = _raw(store_path)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION + 1,))
    conn.close()
    before = store_path.read_bytes()
    with pytest.raises(StoreError, match="newer") as info:
        Store(store_path)
    assert str(store_path) in str(info.value)
    assert "--store" in str(info.value)
    assert store_path.read_bytes() == before


def test_store_locked_by_another_writer_raises_store_error(store: Store, store_path: Path) -> None:
    blocker = _raw(store_path)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with Store(store_path, timeout_s=0.2) as impatient:
            with pytest.raises(StoreError, match="locked") as info:
                _start(impatient)
            assert "--store" in str(info.value)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert store.list_runs() == []


# ------------------------------------------------------------------------ reopening


def test_reopening_keeps_rows_and_does_not_change_them(store_path: Path) -> None:
    with Store(store_path) as s:
        done = _start(s, "h1")
        s.log_epoch(done, 1, {"train_loss": 0.5})
        s.add_artefact(done, "summary.json", "json", "{}")
        s.finish_run(done, "finished", {"test_accuracy": 0.9})
        stale = _start(s, "h2")
    # A 'running' row from a dead process must survive a plain open (only mark_stale_runs acts).
    _set_columns(store_path, stale, pid=_dead_pid())
    before = _dump(store_path)
    assert len(before["runs"]) == 2 and len(before["epochs"]) == 1

    with Store(store_path) as s:
        assert [r.run_id for r in s.list_runs()] == [done, stale]
        assert s.get_run(stale).status == "running"
        assert s.epochs(done) == [{"epoch": 1, "train_loss": 0.5}]
    assert _dump(store_path) == before

    with Store(store_path) as s:
        new = _start(s, "h3")
    assert new > stale
    assert _dump(store_path)["runs"][:2] == before["runs"]


# ------------------------------------------------------------------------ concurrency

_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from mnistbench.store import Store

    path, tag, runs, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    Path(f"{go}.{tag}").touch()
    deadline = time.monotonic() + 30
    while not go.exists():
        if time.monotonic() > deadline:
            sys.exit("no go signal")
        time.sleep(0.002)
    with Store(path) as store:
        for i in range(runs):
            config = {"model": "mlp", "dataset": "mnist", "writer": tag, "i": i}
            run_id = store.start_run(config, f"{tag}-{i}", {"writer": tag})
            for epoch in (1, 2):
                store.log_epoch(run_id, epoch, {"train_loss": 1.0 / epoch})
            store.add_artefact(run_id, "summary.json", "json", "{}")
            store.finish_run(run_id, "finished", {"test_accuracy": 0.5})
            time.sleep(0.001)  # let the other writer in between runs, not just between commits
    """
)


def test_two_processes_writing_at_once_all_land(tmp_path: Path) -> None:
    path = tmp_path / "shared" / "results.sqlite"  # created by whichever writer comes first
    go = tmp_path / "go"
    runs = 25
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), tag, str(runs), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("a", "b")
    ]
    try:
        deadline = time.monotonic() + 60
        while not all(Path(f"{go}.{tag}").exists() for tag in ("a", "b")):
            assert all(p.poll() is None for p in procs), "a writer died before starting"
            assert time.monotonic() < deadline, "writers did not start"
            time.sleep(0.01)
        go.touch()  # both open the (new) store and write at the same moment
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err

    with Store(path) as s:
        all_runs = s.list_runs()
        assert len(all_runs) == 2 * runs
        assert {r.status for r in all_runs} == {"finished"}
        assert {r.config_hash for r in all_runs} == {
            f"{tag}-{i}" for tag in ("a", "b") for i in range(runs)
        }
        assert len({r.pid for r in all_runs}) == 2
        for r in all_runs:
            assert [e["epoch"] for e in s.epochs(r.run_id)] == [1, 2]
            assert len(s.artefacts(r.run_id)) == 1


# ------------------------------------------------------------------------ stale runs


def test_mark_stale_runs_interrupts_runs_of_dead_processes(store: Store, store_path: Path) -> None:
    dead = _dead_pid()
    orphan = _start(store, "orphan")
    _set_columns(store_path, orphan, pid=dead)
    mine = _start(store, "mine")
    elsewhere = _start(store, "elsewhere")
    _set_columns(store_path, elsewhere, pid=dead, hostname=socket.gethostname() + "-other")
    done = _start(store, "done")
    _set_columns(store_path, done, pid=dead)
    store.finish_run(done, "finished")

    assert store.mark_stale_runs() == 1
    run = store.get_run(orphan)
    assert run.status == "interrupted"
    assert run.error == f"process {dead} ended without finishing the run (killed?)"
    assert run.finished_at is not None
    assert store.get_run(mine).status == "running"
    assert store.get_run(elsewhere).status == "running"  # cannot see other hosts' processes
    assert store.get_run(done).status == "finished"
    assert store.mark_stale_runs() == 0


def test_mark_stale_runs_treats_reused_pid_as_dead(store: Store, store_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.1)
        # A run that began long before the live process with its pid was created: pid reused.
        reused = _start(store, "reused")
        _set_columns(store_path, reused, pid=sleeper.pid, started_at="2000-01-01T00:00:00+00:00")
        # A run started by that live process (after it was created): still running.
        alive = _start(store, "alive")
        _set_columns(store_path, alive, pid=sleeper.pid)

        assert store.mark_stale_runs() == 1
        assert store.get_run(reused).status == "interrupted"
        assert store.get_run(alive).status == "running"
    finally:
        sleeper.kill()
        sleeper.wait()


# ------------------------------------------------------------------------ merging stores


def test_import_from_copies_ended_runs_once_with_epochs_artefacts_and_times(tmp_path) -> None:
    with Store(tmp_path / "gpu.sqlite") as source:
        card = {"card_version": 1, "model": "mlp", "fingerprint": "abcdabcdabcdabcd"}
        config, hash_gpu = real_config("mlp", device="cuda")
        done = source.start_run(config, hash_gpu, ENV, card)
        source.log_epoch(done, 1, {"train_loss": 0.5, "test_accuracy": 0.98})
        source.add_artefact(done, "samples", "png", b"\x89PNG fake bytes")
        source.finish_run(done, "finished", {"test_accuracy": 0.98, "params": 1234})
        _start(source, "hash-still-running")
        original = source.get_run(done)
    with Store(tmp_path / "here.sqlite") as target:
        mine = _start(target, "hash-cpu")
        target.finish_run(mine, "finished", {"test_accuracy": 0.97})
        with Store(tmp_path / "gpu.sqlite") as source:
            assert target.import_from(source)[:2] == (1, 0)
            assert target.import_from(source)[:2] == (0, 1)  # merging again adds nothing
        runs = target.list_runs()
        assert [r.config_hash for r in runs] == ["hash-cpu", hash_gpu]
        copied = runs[1]
        assert copied.metrics == original.metrics and copied.config == original.config
        assert (copied.started_at, copied.finished_at) == (
            original.started_at,
            original.finished_at,
        )
        assert copied.hostname == original.hostname and copied.pid is None
        assert (copied.model_card, copied.fingerprint) == (card, "abcdabcdabcdabcd")
        assert target.epochs(copied.run_id) == [
            {"epoch": 1, "train_loss": 0.5, "test_accuracy": 0.98}
        ]
        assert [a.content for a in target.artefacts(copied.run_id)] == [b"\x89PNG fake bytes"]
        assert target.list_runs(status="finished")[1].metrics["params"] == 1234
        assert target.find_completed(hash_gpu) is not None  # its config is not trained again
        assert target.find_completed(hash_gpu, fingerprint="abcdabcdabcdabcd") is not None


def test_a_record_of_the_wrong_shape_is_refused_before_anything_is_written(store: Store) -> None:
    config, config_hash = real_config("mlp")
    run = store.get_run(store.start_run(config, config_hash, ENV))
    store.finish_run(run.run_id, "finished")
    broken = replace(store.get_run(run.run_id), hostname={"not": "a host name"})
    with pytest.raises(RecordError, match="hostname: Input should be a valid string"):
        store.import_run(broken, [], [])
    assert len(store.list_runs()) == 1
