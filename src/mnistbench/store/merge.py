"""Merging: copying runs that ended elsewhere (another store, a JSON-lines export) into a store,
each at most once."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from mnistbench.store.files import SQLITE_MAGIC
from mnistbench.store.records import Artefact, InvalidRecord, StoredRun, now_iso
from mnistbench.store.rows import insert_epoch, insert_run, run_values, upsert_artefact


def is_present(conn: sqlite3.Connection, stored: StoredRun) -> bool:
    """Whether the store already has this run: same config hash, host and start time."""
    run = stored.run
    row = conn.execute(
        "SELECT 1 FROM runs WHERE config_hash = ? AND started_at = ? AND hostname IS ?",
        (run.config_hash, run.started_at, run.hostname),
    ).fetchone()
    return row is not None


def import_into(conn: sqlite3.Connection, stored: StoredRun) -> bool:
    """Insert a run with its epochs and artefacts under a new run_id, unless present; the
    caller holds the write transaction. Returns whether it was inserted."""
    if is_present(conn, stored):
        return False
    copy_into(conn, stored, keep_identity=False)
    return True


def copy_into(conn: sqlite3.Connection, stored: StoredRun, *, keep_identity: bool) -> int:
    """Insert a run's rows (``keep_identity``: with its run_id and pid, as recovery does);
    returns the run_id it got."""
    run_id = insert_run(conn, run_values(stored.run, keep_identity=keep_identity))
    for epoch in stored.epochs:
        insert_epoch(conn, run_id, int(epoch["epoch"]), epoch)
    for artefact in stored.artefacts:
        created_at = artefact.created_at or now_iso()
        upsert_artefact(
            conn,
            run_id,
            Artefact(run_id, artefact.name, artefact.kind, artefact.content, created_at),
        )
    return run_id


def read_runs(path: str | Path) -> Iterator[StoredRun | InvalidRecord]:
    """The runs of a results store or of a JSON-lines export (``mnistbench export --format
    jsonl``), told apart by the file's first bytes; a store is opened read-only. A record that
    breaks the run format comes as an InvalidRecord (``Store.import_runs`` refuses or skips)."""
    from mnistbench.store.jsonl import read_jsonl  # here: both import the runs API
    from mnistbench.store.runs import Store

    path = Path(path)
    with path.open("rb") as fh:
        header = fh.read(len(SQLITE_MAGIC))
    if header != SQLITE_MAGIC:
        yield from read_jsonl(path)
        return
    with Store(path, read_only=True) as store:
        yield from store.checked_runs()
