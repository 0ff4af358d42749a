"""A store that says when it is hurt: damaged files are refused on open and can be checked and
recovered; read-only stores open for reading; a full disk rolls a write back with a clear error."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from mnistbench.errors import StoreCorruptError, StoreError, StoreFullError
from mnistbench.store import RunRecord, Store, check_store, recover_store
from mnistbench.store.records import Artefact
from run_configs import real_config
from unwritable import unwritable

PAGE = 4096
CONFIG = {"model": "mlp", "dataset": "mnist", "epochs": 3}


def card(config: dict) -> dict:
    return {"card_version": 1, "model": config["model"], "source": {"kind": "test"}}


REAL, HASH = real_config("mlp")


def make_store(path: Path, runs: int, epochs: int) -> Path:
    """A store of finished runs, each with `epochs` epochs and one small artefact."""
    with Store(path, card_builder=card) as store:
        for i in range(runs):
            config, config_hash = real_config("mlp", epochs=3, seed=i)
            run = RunRecord(
                run_id=0, config_hash=config_hash, model="mlp", dataset="mnist",
                status="finished", config=config, environment={"device": "cpu"},
                metrics={"test_accuracy": 0.9 + i / 1000}, error=None,
                started_at=f"2026-01-01T00:00:{i:02d}.000+00:00",
                finished_at=f"2026-01-01T00:01:{i:02d}.000+00:00", hostname="vm",
            )  # fmt: skip
            history = [
                {"epoch": e, "train_loss": 1 / e, "val_accuracy": 0.5 + e / 1000, "seed": i}
                for e in range(1, epochs + 1)
            ]
            artefact = Artefact(0, "confusion_matrix", "json", b"[[9, 1], [2, 8]]", "2026")
            assert store.import_run(run, history, [artefact])
    return path


def everything(path: Path, read_only: bool = False) -> list[tuple]:
    """Every run with its epochs and artefacts, as read through Store (ids included)."""
    with Store(path, read_only=read_only, card_builder=card) as store:
        return [
            (run, store.epochs(run.run_id), store.artefacts(run.run_id))
            for run in store.list_runs()
        ]


def damage(path: Path, offset: int, size: int = PAGE) -> None:
    with path.open("r+b") as fh:
        fh.seek(offset)
        fh.write(bytes((i * 151 + 7) % 256 for i in range(size)))  # garbage, but repeatable


def root_page(path: Path, table: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)
        ).fetchone()[0]
    finally:
        conn.close()


def page(path: Path, number: int) -> bytes:
    return path.read_bytes()[(number - 1) * PAGE : number * PAGE]


def assert_refused_as_damaged(path: Path) -> None:
    before = path.read_bytes()
    for read_only in (False, True):
        with pytest.raises(StoreCorruptError) as info:
            Store(path, read_only=read_only)
        message = str(info.value)
        assert "damaged" in message and str(path) in message
        assert "mnistbench store check" in message and "mnistbench store recover" in message
    assert path.read_bytes() == before


# ------------------------------------------------------------------------ damaged files


def test_garbage_at_offset_8192_is_refused_though_plain_sqlite_reads_on(tmp_path: Path) -> None:
    """The review's damage: 4 KB of garbage at offset 8192 (page 3, the index of the meta table
    in every store this code creates). Plain SQLite still lists every run and epoch, which is how
    it went unnoticed; the quick_check on open finds it."""
    path = make_store(tmp_path / "s.sqlite", runs=30, epochs=3)
    expected = everything(path)
    damage(path, 8192)
    conn = sqlite3.connect(path)
    assert len(conn.execute("SELECT * FROM runs").fetchall()) == 30
    assert len(conn.execute("SELECT * FROM epochs").fetchall()) == 90
    conn.close()

    assert_refused_as_damaged(path)
    report = check_store(path)
    assert not report.ok and any("Page 3" in problem for problem in report.problems)
    assert report.row_counts["runs"] == 30
    assert any("store recover" in line for line in report.lines())

    counts = recover_store(path, tmp_path / "new.sqlite", card_builder=card)
    assert (counts.runs, counts.epochs, counts.artefacts) == (30, 90, 30)
    assert (counts.runs_unreadable, counts.epochs_unreadable, counts.orphans) == (0, 0, 0)
    assert everything(tmp_path / "new.sqlite") == expected
    assert check_store(tmp_path / "new.sqlite").ok


@pytest.fixture
def big_store(tmp_path: Path) -> Path:
    """30 runs x 40 epochs: the epochs table spans dozens of pages under an interior root."""
    path = make_store(tmp_path / "big.sqlite", runs=30, epochs=40)
    assert page(path, root_page(path, "epochs"))[0] == 0x05  # an interior table page
    return path


def test_damaged_inner_page_loses_that_table_only(big_store: Path, tmp_path: Path) -> None:
    expected = everything(big_store)
    damage(big_store, (root_page(big_store, "epochs") - 1) * PAGE)
    assert_refused_as_damaged(big_store)
    assert not check_store(big_store).ok

    counts = recover_store(big_store, tmp_path / "new.sqlite", card_builder=card)
    assert (counts.runs, counts.epochs, counts.artefacts) == (30, 0, 30)
    assert any("epochs: not one row could be read" in note for note in counts.notes)
    recovered = everything(tmp_path / "new.sqlite")
    assert [(run, artefacts) for run, _, artefacts in recovered] == [
        (run, artefacts) for run, _, artefacts in expected
    ]


def test_damaged_leaf_page_loses_only_its_rows(big_store: Path, tmp_path: Path) -> None:
    root = page(big_store, root_page(big_store, "epochs"))
    cells = int.from_bytes(root[3:5], "big")
    pointers = [int.from_bytes(root[12 + 2 * i : 14 + 2 * i], "big") for i in range(cells)]
    leaf = int.from_bytes(root[pointers[cells // 2] : pointers[cells // 2] + 4], "big")
    rows_on_leaf = int.from_bytes(page(big_store, leaf)[3:5], "big")
    assert page(big_store, leaf)[0] == 0x0D and rows_on_leaf > 0  # a leaf of the table
    expected = everything(big_store)
    damage(big_store, (leaf - 1) * PAGE)
    assert_refused_as_damaged(big_store)

    counts = recover_store(big_store, tmp_path / "new.sqlite", card_builder=card)
    assert (counts.runs, counts.artefacts) == (30, 30)
    assert counts.epochs == 30 * 40 - rows_on_leaf
    assert counts.epochs_unreadable == rows_on_leaf
    recovered = everything(tmp_path / "new.sqlite")
    for (run, epochs, _), (old_run, old_epochs, _) in zip(recovered, expected, strict=True):
        assert run == old_run
        assert all(epoch in old_epochs for epoch in epochs)  # nothing made up


def test_truncated_file_is_refused_and_what_remains_recovered(big_store, tmp_path) -> None:
    expected = everything(big_store)
    os.truncate(big_store, big_store.stat().st_size // 2)
    assert_refused_as_damaged(big_store)
    report = check_store(big_store)
    assert not report.ok

    counts = recover_store(big_store, tmp_path / "new.sqlite", card_builder=card)
    assert counts.first_page_repaired  # its header claimed pages the file no longer has
    recovered = everything(tmp_path / "new.sqlite")
    assert counts.runs == len(recovered)
    assert counts.runs + counts.runs_unreadable == 30
    old = {run.run_id: (run, epochs, artefacts) for run, epochs, artefacts in expected}
    for run, epochs, artefacts in recovered:
        assert run == old[run.run_id][0]
        assert all(epoch in old[run.run_id][1] for epoch in epochs)
        assert artefacts == old[run.run_id][2] or artefacts == []


def test_damaged_first_page_is_refused_and_every_row_recovered(big_store, tmp_path) -> None:
    expected = everything(big_store)
    damage(big_store, 16, PAGE - 16)  # the magic string survives, the rest of page 1 does not
    assert_refused_as_damaged(big_store)
    assert not check_store(big_store).ok

    counts = recover_store(big_store, tmp_path / "new.sqlite", card_builder=card)
    assert counts.first_page_repaired
    assert (counts.runs, counts.epochs, counts.artefacts) == (30, 1200, 30)
    assert everything(tmp_path / "new.sqlite") == expected


def test_recover_never_overwrites(big_store: Path, tmp_path: Path) -> None:
    taken = tmp_path / "taken.sqlite"
    taken.write_bytes(b"mine")
    for out in (taken, big_store):
        with pytest.raises(StoreError, match="never overwrites"):
            recover_store(big_store, out)
    assert taken.read_bytes() == b"mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.sqlite", "taken.sqlite"]


def test_check_store_of_a_healthy_store(tmp_path: Path) -> None:
    path = make_store(tmp_path / "s.sqlite", runs=2, epochs=3)
    with Store(path) as store:  # open: recent commits sit in the write-ahead log
        store.finish_run(store.start_run(REAL, HASH, {}), "failed")
        report = check_store(path)
        assert report.wal_bytes is not None and report.wal_bytes > 0
    assert report.ok and report.problems == []
    assert report.schema_version == 2
    assert report.row_counts == {"meta": 2, "runs": 3, "epochs": 6, "artefacts": 2}
    assert check_store(path).wal_bytes is None  # the last close folded the log into the file


# ------------------------------------------------------------------------ read-only stores


def test_store_in_an_unwritable_folder_opens_read_only(tmp_path: Path) -> None:
    """Proves that a WAL store whose file and folder cannot be written, not even by root (the
    folder and file are made immutable), opens with read_only=True and reads every run, epoch
    and artefact although SQLite cannot create its -shm file; that a writable open fails with a
    clear StoreError; and that nothing in the folder is created or changed."""
    folder = tmp_path / "ro"
    folder.mkdir()
    path = make_store(folder / "results.sqlite", runs=3, epochs=2)
    expected = everything(path)
    stat = path.stat()
    assert sorted(p.name for p in folder.iterdir()) == ["results.sqlite"]  # no -shm to reuse
    with unwritable(path, folder):
        with pytest.raises(OSError):
            (folder / "probe").write_bytes(b"")  # the setup really is unwritable
        with pytest.raises(StoreError, match="not writable") as info:
            Store(path)
        assert "--store" in str(info.value)
        assert everything(path, read_only=True) == expected
        with Store(path, read_only=True) as store, pytest.raises(StoreError, match="read-only"):
            store.start_run(CONFIG, "h", {})
        assert sorted(p.name for p in folder.iterdir()) == ["results.sqlite"]
    assert (path.stat().st_mtime_ns, path.stat().st_size) == (stat.st_mtime_ns, stat.st_size)


def test_unwritable_folder_with_unread_commits_is_refused_not_misread(tmp_path: Path) -> None:
    """A -wal file holding commits, copied without its -shm file into a read-only place, can
    only be read by creating the -shm; reading the store without it would silently drop those
    runs, so the read-only open refuses with a clear error."""
    source = make_store(tmp_path / "live.sqlite", runs=1, epochs=1)
    writer = sqlite3.connect(source, isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("UPDATE runs SET error = 'only in the log'")
    folder = tmp_path / "copy"
    folder.mkdir()
    for suffix in ("", "-wal"):
        shutil.copyfile(f"{source}{suffix}", folder / f"results.sqlite{suffix}")
    writer.close()
    path = folder / "results.sqlite"
    assert (folder / "results.sqlite-wal").stat().st_size > 0
    with unwritable(path, path.with_name("results.sqlite-wal"), folder):
        with pytest.raises(StoreError, match="recent commits") as info:
            Store(path, read_only=True)
        assert "writable" in str(info.value)


def test_read_only_open_cannot_write_even_through_sqlite(tmp_path: Path) -> None:
    """Runs everywhere, also as root where chmod proves nothing: SQLite itself opened the file
    read-only (mode=ro), so a write that goes around Store's own check fails in SQLite too;
    every Store write raises StoreError; the file's bytes and mtime are unchanged."""
    path = make_store(tmp_path / "s.sqlite", runs=2, epochs=2)
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    with Store(path, read_only=True) as store:
        run = store.get_run(1)
        writes = [
            lambda: store.start_run(CONFIG, "h", {}),
            lambda: store.log_epoch(1, 3, {"train_loss": 0.1}),
            lambda: store.finish_run(1, "failed"),
            lambda: store.add_artefact(1, "x", "json", "{}"),
            lambda: store.import_run(run, [], []),
            store.mark_stale_runs,
        ]
        for write in writes:
            with pytest.raises(StoreError, match="read-only"):
                write()
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            store._connection().execute("UPDATE runs SET status = 'failed'")
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


# ------------------------------------------------------------------------ disk full


def test_disk_full_rolls_back_each_write_and_writing_resumes_with_space(tmp_path: Path) -> None:
    """SQLite's max_page_count makes the store "full" without filling the disk: each write that
    needs a page more fails with StoreFullError, keeps nothing of itself, leaves every earlier
    row intact, and the same writes succeed once there is room again."""
    path = make_store(tmp_path / "s.sqlite", runs=3, epochs=2)
    expected = everything(path)
    with Store(path, card_builder=card) as store:
        conn = store._connection()  # max_page_count is a setting of this one connection
        run_id = store.start_run(REAL, HASH, {})
        store.log_epoch(run_id, 1, {"train_loss": 0.5})
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
        conn.execute(f"PRAGMA max_page_count = {pages}")
        big = b"x" * (64 * PAGE)
        huge_metrics = {"curve": list(range(40_000))}
        row_before = store.get_run(run_id)

        with pytest.raises(StoreFullError) as info:
            store.add_artefact(run_id, "big", "bin", big)
        message = str(info.value)
        assert "full" in message and "Nothing of this write was kept" in message
        assert store.artefacts(run_id) == []
        with pytest.raises(StoreFullError):
            store.finish_run(run_id, "finished", huge_metrics)
        assert store.get_run(run_id) == row_before  # still running, no half-written metrics
        with pytest.raises(StoreFullError):
            store.start_run({**CONFIG, "note": "y" * 30 * PAGE}, "h-full", {})
        stored = everything_open(store)
        assert len(stored) == 4 and stored[:3] == expected
        with pytest.raises(StoreFullError):  # several rows, one transaction: none of them kept
            store.import_run(
                RunRecord(0, HASH, "mlp", "mnist", "finished", REAL, {}, {}, None, "t", "t"),
                [{"epoch": 1, "train_loss": 0.1}],
                [Artefact(0, "big", "bin", big, "t")],
            )
        assert everything_open(store) == stored

        conn.execute("PRAGMA max_page_count = 1073741823")  # space is back
        store.add_artefact(run_id, "big", "bin", big)
        store.finish_run(run_id, "finished", huge_metrics)
        assert store.get_run(run_id).metrics == huge_metrics
        assert store.artefacts(run_id)[0].content == big
    assert check_store(path).ok


def everything_open(store: Store) -> list[tuple]:
    return [(r, store.epochs(r.run_id), store.artefacts(r.run_id)) for r in store.list_runs()]


# ------------------------------------------------------------------------ Ctrl-C mid-write


class _InterruptAfter:
    """A connection that runs `statement` and then raises KeyboardInterrupt, as a Ctrl-C or
    SIGTERM landing between that statement and the next bytecode does; all else passes on."""

    def __init__(self, conn: sqlite3.Connection, statement: str, before: bool = False) -> None:
        self.conn, self.statement, self.before = conn, statement, before

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        if sql == self.statement and self.before:
            raise KeyboardInterrupt
        cursor = self.conn.execute(sql, *args)
        if sql == self.statement:
            raise KeyboardInterrupt
        return cursor

    def __getattr__(self, name: str) -> object:
        return getattr(self.conn, name)


@pytest.mark.parametrize(
    ("statement", "before"), [("BEGIN IMMEDIATE", False), ("COMMIT", True)],
    ids=["just-after-BEGIN", "just-before-COMMIT"],
)  # fmt: skip
def test_interrupt_at_a_transaction_edge_rolls_back_and_the_run_can_still_be_ended(
    tmp_path: Path, statement: str, before: bool
) -> None:
    """CI's SIGTERM test once failed "cannot start a transaction within a transaction": the
    signal landed where the rollback did not reach, the epoch's transaction stayed open, and
    recording the run as interrupted failed. Now the epoch is not kept, the connection is out
    of its transaction, and the end of the run is recorded."""
    path = tmp_path / "s.sqlite"
    with Store(path, card_builder=card) as store:
        run_id = store.start_run(REAL, HASH, {})
        store.log_epoch(run_id, 1, {"train_loss": 0.5})
        real_conn = store._conn
        store._conn = _InterruptAfter(real_conn, statement, before)
        with pytest.raises(KeyboardInterrupt):
            store.log_epoch(run_id, 2, {"train_loss": 0.4})
        store._conn = real_conn
        assert not real_conn.in_transaction
        store.finish_run(run_id, "interrupted", error="interrupted (Ctrl-C or SIGTERM)")
    with Store(path, read_only=True, card_builder=card) as store:
        assert store.get_run(run_id).status == "interrupted"
        assert [e["epoch"] for e in store.epochs(run_id)] == [1]


# ------------------------------------------------------------------------ the store verbs


def test_store_check_and_recover_from_the_command_line(tmp_path: Path, capsys) -> None:
    """`store check` exits 0 on a sound store and 1 on a damaged one, naming the page and the
    recover command; `store recover --out` copies every run, and refuses to overwrite."""
    from mnistbench.cli import main

    path = make_store(tmp_path / "s.sqlite", runs=30, epochs=3)
    assert main(["store", "check", "--store", str(path)]) == 0
    out = capsys.readouterr().out
    assert "runs 30, epochs 90, artefacts 30" in out and "integrity: ok" in out

    damage(path, 8192)
    assert main(["store", "check", "--store", str(path), "--json"]) == 1
    found = json.loads(capsys.readouterr().out)
    assert found["ok"] is False and any("Page 3" in p for p in found["problems"])

    new = tmp_path / "new.sqlite"
    assert main(["store", "recover", "--store", str(path), "--out", str(new)]) == 0
    assert "copied 30 run(s), 90 epoch(s), 30 artefact(s)" in capsys.readouterr().out
    assert main(["store", "check", "--store", str(new)]) == 0
    capsys.readouterr()
    assert main(["store", "recover", "--store", str(path), "--out", str(new)]) == 2
    assert "never overwrites" in capsys.readouterr().err
