"""A store's health: ``check_store`` runs SQLite's full integrity check without writing anything;
``recover_store`` copies every readable run of a damaged store into a new one."""

from __future__ import annotations

import json
import os
import sqlite3
from collections import defaultdict
from contextlib import closing, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mnistbench.errors import StoreError
from mnistbench.store.files import SQLITE_MAGIC, connect_read_only
from mnistbench.store.merge import copy_into
from mnistbench.store.pages import open_damaged
from mnistbench.store.records import Artefact, StoredRun, loads
from mnistbench.store.rows import record_from_row, run_select
from mnistbench.store.runs import Store
from mnistbench.store.schema import CardBuilder
from mnistbench.store.schema_records import RecordError, stored_config_hash
from mnistbench.store.weights import WeightsRef, check_weights

TABLES = ("meta", "runs", "epochs", "artefacts")
# Past the last row id SQLite could tell us, how many more ids recovery tries one by one: rows
# behind a damaged page can only be found by asking for their ids.
PROBE_SLACK = 1000


@dataclass
class StoreCheck:
    """What ``check_store`` found; ``ok`` is True only when SQLite found nothing wrong."""

    path: str
    ok: bool
    problems: list[str]
    schema_version: int | None
    row_counts: dict[str, int | None]  # None: the table could not be counted
    size_bytes: int
    wal_bytes: int | None  # None: no -wal file
    shm_present: bool
    # kept weights (store/weights.py): files verified by hash, and those missing or changed
    weights_verified: int = 0
    weights_missing: list[str] = field(default_factory=list)
    weights_changed: list[str] = field(default_factory=list)
    invalid_runs: list[str] = field(default_factory=list)  # "run N: problem" (run format)

    def lines(self) -> list[str]:
        """The report for a terminal, one finding a line."""
        counts = ", ".join(
            f"{table} {'unreadable' if count is None else count}"
            for table, count in self.row_counts.items()
        )
        out = [
            f"store: {self.path} ({self.size_bytes:,} bytes, schema "
            f"{self.schema_version if self.schema_version is not None else 'unknown'})",
            f"rows: {counts}",
        ]
        if self.wal_bytes:
            out.append(
                f"write-ahead log: {self.wal_bytes:,} bytes in {Path(self.path).name}-wal "
                "(recent commits live there until SQLite copies them into the file: keep it "
                "next to the store when you copy the store)"
            )
        if self.shm_present and not self.wal_bytes:
            out.append(f"{Path(self.path).name}-shm present, no commits in a -wal file (harmless)")
        out.append(f"weights: {self.weights_verified} file(s) match their SHA-256")
        out.extend(
            f"weights missing (merged or copied without --with-weights?): {m}"
            for m in self.weights_missing
        )
        out.extend(
            f"weights CHANGED since written (refused on load): {c}" for c in self.weights_changed
        )
        if self.invalid_runs:
            out.append(
                f"records: {len(self.invalid_runs)} run(s) break the run format (written by "
                "hand or by another program; report and merge refuse them):"
            )
            out.extend(f"  {problem}" for problem in self.invalid_runs)
        if not self.problems:
            out.append("integrity: ok (SQLite's integrity_check found nothing wrong)")
        if not self.problems and self.invalid_runs:
            out.append(
                f"Copy every valid run into a new store with `mnistbench store recover "
                f"--store {self.path} --out NEW.sqlite`."
            )
        elif self.problems:
            out.append(f"integrity: DAMAGED, {len(self.problems)} problem(s):")
            out.extend(f"  {problem}" for problem in self.problems)
            out.append(
                f"Copy every readable run into a new store with `mnistbench store recover "
                f"--store {self.path} --out NEW.sqlite`."
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_store(path: str | Path) -> StoreCheck:
    """Run SQLite's full ``integrity_check`` (b-trees, and that indexes match their tables) on a
    store without writing to it, and count its rows."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"No results store at {path}. Pass --store PATH to an existing store.")
    wal, shm = (path.with_name(path.name + suffix) for suffix in ("-wal", "-shm"))
    report = StoreCheck(
        path=str(path),
        ok=False,
        problems=[],
        schema_version=None,
        row_counts={},
        size_bytes=path.stat().st_size,
        wal_bytes=wal.stat().st_size if wal.exists() else None,
        shm_present=shm.exists(),
    )
    with path.open("rb") as fh:
        if fh.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
            report.problems.append("the file does not start like a SQLite database")
            return report
    try:
        conn = connect_read_only(path)
    except sqlite3.Error as exc:
        report.problems.append(f"SQLite cannot open it: {exc}")
        return report
    with closing(conn):
        found = []
        for pragma in ("integrity_check(100)", "quick_check(100)"):
            try:
                found += [row[0] for row in conn.execute(f"PRAGMA {pragma}")]
                break
            except sqlite3.DatabaseError as exc:  # then the quicker check may still say where
                found.append(f"{pragma.split('(')[0]}: {exc}")
        report.problems.extend(problem for problem in found if problem != "ok")
        with suppress(sqlite3.Error, TypeError, ValueError):
            (value,) = conn.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'"
            ).fetchone()
            report.schema_version = int(value)
        for table in TABLES:
            try:
                report.row_counts[table] = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[
                    0
                ]
            except sqlite3.Error as exc:
                report.row_counts[table] = None
                report.problems.append(f"{table}: {exc}")
        if not report.problems:
            report.invalid_runs = _invalid_runs(conn, report.schema_version or 1)
        _check_kept_weights(conn, path, report)
    report.ok = not report.problems and not report.invalid_runs and not report.weights_changed
    return report


def _invalid_runs(conn: sqlite3.Connection, schema_version: int, shown: int = 20) -> list[str]:
    """'run N: problem' for each row that breaks the run format (store/schema_records.py)."""
    found = []
    with suppress(sqlite3.Error):
        for row in conn.execute(f"SELECT {run_select(schema_version)} FROM runs ORDER BY run_id"):
            try:
                run = record_from_row(row, lambda config: {})
            except RecordError as error:
                found.append(f"run {row[0]}: {error.problem}"[:500])
                continue
            try:
                recomputed = stored_config_hash(run.config)
            except (TypeError, ValueError):
                recomputed = "not computable"
            if recomputed != run.config_hash:
                found.append(
                    f"run {row[0]}: its config_hash {run.config_hash} is not the hash of its "
                    f"config ({recomputed}); runs are not reused from it"[:500]
                )
    return found[:shown] + ([f"and {len(found) - shown} more"] if len(found) > shown else [])


def _check_kept_weights(conn: sqlite3.Connection, path: Path, report: StoreCheck) -> None:
    """Hash every weights file a run's metrics name (a changed file makes the store not ok;
    a missing one is listed: merges carry weights only when asked)."""
    refs = []
    with suppress(sqlite3.Error):
        for run_id, metrics_json in conn.execute("SELECT run_id, metrics_json FROM runs"):
            try:
                ref = WeightsRef.of_metrics(json.loads(metrics_json or "{}"), run_id)
            except (ValueError, StoreError) as error:
                report.problems.append(f"run {run_id}: {error}")
                continue
            if ref is not None:
                refs.append((run_id, ref))
    found = check_weights(path, refs)
    report.weights_verified = found.verified
    report.weights_missing = list(found.missing or [])
    report.weights_changed = list(found.changed or [])


@dataclass
class RecoveryCounts:
    """What ``recover_store`` copied, and how many row ids it could not read.

    An unreadable id sat behind a damaged page; past the last id SQLite still knew, some of
    them may never have held a row, so those counts are upper bounds.
    """

    runs: int = 0
    epochs: int = 0
    artefacts: int = 0
    runs_unreadable: int = 0
    epochs_unreadable: int = 0
    artefacts_unreadable: int = 0
    orphans: int = 0  # epochs and artefacts read whose run was unreadable
    first_page_repaired: bool = False  # page 1 (header, table list) was damaged and repaired
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        text = (
            f"copied {self.runs} run(s), {self.epochs} epoch(s), {self.artefacts} artefact(s); "
            f"unreadable: {self.runs_unreadable} run(s), {self.epochs_unreadable} epoch(s), "
            f"{self.artefacts_unreadable} artefact(s)"
        )
        if self.orphans:
            text += f"; {self.orphans} epoch(s)/artefact(s) of unreadable runs left out"
        return text + "".join(f"; {note}" for note in self.notes)


def recover_store(
    path: str | Path, out: str | Path, *, card_builder: CardBuilder | None = None
) -> RecoveryCounts:
    """Copy every readable run of a (damaged) store, with its epochs and artefacts, into a new
    store at ``out``, keeping run ids, statuses and pids; rows SQLite cannot read are skipped
    and counted. The damaged file is only read; ``out`` appears only once complete.

    Python's sqlite3 module does not offer SQLite's own recovery (the shell's ``.recover``), so
    rows are read one id at a time: a lookup by id walks one path from the root of its table,
    so rows on intact pages are found even when a page next to them is damaged.
    """
    path, out = Path(path), Path(out)
    if not path.is_file():
        raise StoreError(f"No results store at {path}. Pass --store PATH to an existing store.")
    if out.exists() or out.resolve() == path.resolve():
        raise StoreError(
            f"{out} already exists; recovery writes a new store and never overwrites a file. "
            "Pass --out a new file name."
        )
    counts = RecoveryCounts()
    partial = out.with_name(f".{out.name}.partial")
    for leftover in (partial, *(partial.with_name(partial.name + s) for s in ("-wal", "-shm"))):
        leftover.unlink(missing_ok=True)
    try:
        with open_damaged(path, partial.parent) as (source, repaired):
            counts.first_page_repaired = repaired
            with Store(partial, card_builder=card_builder) as target:
                runs = _read_runs(source, target, counts)
                with target._transaction(f"write the recovered runs into {out}") as conn:
                    for stored in runs:
                        copy_into(conn, stored, keep_identity=True)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return counts


def _read_runs(
    source: sqlite3.Connection, target: Store, counts: RecoveryCounts
) -> list[StoredRun]:
    columns = {row[1] for row in source.execute("PRAGMA table_info(runs)")}
    select = run_select(2 if "model_card_json" in columns else 1)
    runs = {}
    for run_id, row in _rows(source, "runs", select, counts, "runs_unreadable"):
        try:
            runs[run_id] = record_from_row(row, target._card_for)
        except (ValueError, TypeError):  # a text column damaged inside an intact page
            counts.runs_unreadable += 1
        except RecordError as error:  # readable, but not a valid run (written by hand?)
            counts.runs_unreadable += 1
            counts.notes.append(f"run {run_id} left out: {error.problem}"[:300])
    epochs: dict[int, list[dict]] = defaultdict(list)
    select = "run_id, epoch, metrics_json"
    for _, (run_id, epoch, metrics) in _rows(source, "epochs", select, counts, "epochs_unreadable"):
        try:
            epochs[run_id].append({"epoch": int(epoch), **loads(metrics)})
        except (ValueError, TypeError):
            counts.epochs_unreadable += 1
    artefacts: dict[int, list[Artefact]] = defaultdict(list)
    select = "run_id, name, kind, content, created_at"
    for _, (run_id, name, kind, content, created) in _rows(
        source, "artefacts", select, counts, "artefacts_unreadable"
    ):
        artefacts[run_id].append(Artefact(run_id, name, kind, bytes(content or b""), created))
    counts.orphans = sum(len(v) for k, v in (*epochs.items(), *artefacts.items()) if k not in runs)
    recovered = []
    for run_id, run in sorted(runs.items()):
        run_epochs = sorted(epochs.get(run_id, []), key=lambda epoch: epoch["epoch"])
        recovered.append(StoredRun(run, run_epochs, artefacts.get(run_id, [])))
        counts.runs += 1
        counts.epochs += len(run_epochs)
        counts.artefacts += len(artefacts.get(run_id, []))
    return recovered


def _rows(source: sqlite3.Connection, table: str, select: str, counts: RecoveryCounts, bad: str):
    """(rowid, row) for every readable row of a table, in rowid order; each id up to the last
    one known to exist whose lookup fails adds one to ``counts.<bad>``."""
    known, limit = _last_rowid(source, table)
    if limit == 0 and known is None:
        counts.notes.append(f"{table}: not one row could be read (its first page is damaged)")
        return
    if limit != known:
        counts.notes.append(
            f"{table}: the end of the table is damaged; ids after {known} were tried up to "
            f"{limit} and those that failed are not counted"
        )
    for rowid in range(1, limit + 1):
        try:
            row = source.execute(f"SELECT {select} FROM {table} WHERE rowid = ?", (rowid,))
            found = row.fetchone()
        except sqlite3.DatabaseError:
            if known is not None and rowid <= known:
                setattr(counts, bad, getattr(counts, bad) + 1)
            continue
        if found is not None:
            yield rowid, found


def _last_rowid(source: sqlite3.Connection, table: str) -> tuple[int | None, int]:
    """(the largest id known to exist, the largest id to try).

    Both are max(rowid) when SQLite can reach the table's last page. Otherwise the largest id a
    scan or a seek still reaches, and for runs sqlite_sequence (AUTOINCREMENT never hands out an
    id above it); past that, PROBE_SLACK more ids are tried. (None, 0): nothing reachable.
    """
    try:
        top = source.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0] or 0
        return top, top
    except sqlite3.DatabaseError:
        pass
    seen = None
    with suppress(sqlite3.DatabaseError):
        for (rowid,) in source.execute(f"SELECT rowid FROM {table} ORDER BY rowid"):
            seen = rowid
    # Seeks walk one path each, so they find ids beyond a damaged page that stopped the scan.
    for exponent in range(48):
        with suppress(sqlite3.DatabaseError):
            found = source.execute(
                f"SELECT rowid FROM {table} WHERE rowid >= ? ORDER BY rowid LIMIT 1",
                (2**exponent,),
            ).fetchone()
            if found is not None:
                seen = max(seen or 0, found[0])
    with suppress(sqlite3.DatabaseError, TypeError):
        (sequence,) = source.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)
        ).fetchone()
        return max(seen or 0, int(sequence)), max(seen or 0, int(sequence))
    if seen is None:
        return None, 0
    return seen, seen + PROBE_SLACK
