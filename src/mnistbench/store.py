"""Results store: one SQLite file (WAL mode) holding runs, per-epoch metrics and artefacts.

Several mnistbench processes may write to the same store at once; each write is one transaction.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil

from mnistbench.errors import StoreError

RUN_STATUSES = ("running", "finished", "diverged", "failed", "interrupted")
COMPLETED_STATUSES = ("finished", "diverged")  # a config with one of these is not trained again
FINAL_STATUSES = tuple(s for s in RUN_STATUSES if s != "running")

SCHEMA_VERSION = 1
STORE_FORMAT = "mnistbench-results"
BUSY_TIMEOUT_S = 30.0

# Headline numbers copied from the metrics dicts into real columns so they can be queried in SQL.
RUN_METRIC_COLUMNS = {
    "test_accuracy": "REAL",
    "best_val_accuracy": "REAL",
    "params": "INTEGER",
    "time_per_epoch_s": "REAL",
}
EPOCH_METRIC_COLUMNS = (
    "train_loss",
    "train_accuracy",
    "val_accuracy",
    "test_accuracy",
    "train_time_s",
)

_SQLITE_MAGIC = b"SQLite format 3\x00"
# psutil derives a process's start time from the boot time, which is only accurate to ~1 s.
_PID_START_TOLERANCE_S = 2.0
# What identifies a run in flat exports (`to_dict`, `mnistbench export`), in this order.
RECORD_KEYS = (
    "run_id",
    "config_hash",
    "model",
    "dataset",
    "status",
    "error",
    "started_at",
    "finished_at",
)

_RUN_COLUMNS = (
    "run_id, config_hash, model, dataset, status, config_json, environment_json, "
    "metrics_json, error, started_at, finished_at, pid, hostname"
)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT
);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    config_hash TEXT NOT NULL,
    model TEXT,
    dataset TEXT,
    status TEXT NOT NULL,
    config_json TEXT,
    environment_json TEXT,
    metrics_json TEXT,
    error TEXT,
    started_at TEXT,
    finished_at TEXT,
    pid INTEGER,
    hostname TEXT,
    {", ".join(f"{name} {kind}" for name, kind in RUN_METRIC_COLUMNS.items())}
);
CREATE INDEX IF NOT EXISTS runs_config_hash ON runs (config_hash);
CREATE TABLE IF NOT EXISTS epochs (
    run_id INTEGER NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    metrics_json TEXT,
    {", ".join(f"{name} REAL" for name in EPOCH_METRIC_COLUMNS)},
    PRIMARY KEY (run_id, epoch)
);
CREATE TABLE IF NOT EXISTS artefacts (
    artefact_id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    content BLOB NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (run_id, name)
);
"""


def default_store_path() -> Path:
    """The store used when no --store is given: ./mnistbench-results/results.sqlite."""
    return Path("mnistbench-results") / "results.sqlite"


@dataclass
class RunRecord:
    """One row of the runs table, with its JSON columns decoded."""

    run_id: int
    config_hash: str
    model: str
    dataset: str
    status: str
    config: dict
    environment: dict
    metrics: dict
    error: str | None
    started_at: str
    finished_at: str | None
    pid: int | None = None
    hostname: str | None = None

    def to_dict(self) -> dict:
        """Flat JSON-ready dict: identity fields, every metric at top level, config/env nested.

        A metric whose name clashes with an identity field is kept as ``metric_<name>``.
        """
        out: dict[str, Any] = {key: getattr(self, key) for key in RECORD_KEYS}
        reserved = {*RECORD_KEYS, "config", "environment"}
        for key, value in self.metrics.items():
            out[f"metric_{key}" if key in reserved else key] = value
        out["config"] = self.config
        out["environment"] = self.environment
        return out


@dataclass
class Artefact:
    """A named file-like result of a run (JSON summary, plot, ...)."""

    run_id: int
    name: str
    kind: str
    content: bytes
    created_at: str | None = None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _jsonable(value: Any) -> Any:
    """Turn metrics into plain JSON values; NaN/inf become None so strict JSON never fails."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    # numpy scalars/arrays and torch tensors: engine code often hands them over unconverted.
    for method in ("tolist", "item"):
        convert = getattr(value, method, None)
        if callable(convert):
            with suppress(Exception):
                return _jsonable(convert())
    return str(value)


def _dumps(value: Any) -> str:
    return json.dumps(_jsonable(value), allow_nan=False, sort_keys=False)


def _loads(text: str | None) -> Any:
    return {} if text is None else json.loads(text)


def _metric_columns(metrics: dict) -> dict[str, int | float | None]:
    """The run metrics that also live in a column of their own (for SQL filters), by column."""
    columns: dict[str, int | float | None] = {}
    for name, kind in RUN_METRIC_COLUMNS.items():
        if name in metrics:
            number = _number(metrics[name])
            columns[name] = round(number) if number is not None and kind == "INTEGER" else number
    return columns


def _number(value: Any) -> int | float | None:
    """A finite number for a REAL/INTEGER column, or None (bools and strings are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None


class Store:
    """A results store backed by one SQLite file; use as a context manager or call close()."""

    def __init__(
        self, path: str | Path | None = None, *, timeout_s: float = BUSY_TIMEOUT_S
    ) -> None:
        self.path = Path(path).expanduser() if path is not None else default_store_path()
        self.timeout_s = timeout_s
        self._conn: sqlite3.Connection | None = None
        self._conn = self._open()

    # ----------------------------------------------------------------- opening and closing

    def _open(self) -> sqlite3.Connection:
        self._check_path()
        try:
            conn = sqlite3.connect(str(self.path), timeout=self.timeout_s, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(
                f"Cannot open the results store at {self.path}: {exc}. Make sure its folder "
                "exists and is writable, or pass --store PATH to a writable location."
            ) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            # In WAL mode NORMAL never corrupts the file; a power cut may lose the last commits,
            # which is fine for results and saves an fsync per epoch.
            conn.execute("PRAGMA synchronous = NORMAL")
            # Look at what the file holds before anything writes to it (WAL switch, schema).
            version = self._inspect(conn)
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                self._enable_wal(conn)
            if version is None:
                with self._transaction("create its tables", conn):
                    # Another process may have created the store since we looked.
                    if self._inspect(conn) is None:
                        # Not executescript(): it would COMMIT the open transaction first.
                        for statement in _SCHEMA.split(";"):
                            if statement.strip():
                                conn.execute(statement)
                        conn.executemany(
                            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                            [("schema_version", str(SCHEMA_VERSION)), ("format", STORE_FORMAT)],
                        )
        except sqlite3.Error as exc:
            conn.close()
            raise self._translate_error(exc, "open it") from exc
        except BaseException:  # StoreError, or Ctrl-C while waiting for the lock
            conn.close()
            raise
        return conn

    def _check_path(self) -> None:
        path = self.path
        if path.is_dir():
            raise StoreError(
                f"The results store path {path} is a directory, not a file. Pass --store PATH "
                f"with a file name, e.g. --store {path / 'results.sqlite'}."
            )
        if path.exists():
            if not path.is_file():
                raise StoreError(
                    f"The results store path {path} exists but is not a regular file. Pass "
                    "--store PATH to a regular file or a new file name."
                )
            try:
                with path.open("rb") as fh:
                    header = fh.read(len(_SQLITE_MAGIC))
            except OSError as exc:
                raise StoreError(
                    f"Cannot read the results store at {path}: {exc.strerror or exc}. Fix its "
                    "permissions, or pass --store PATH to a readable and writable location."
                ) from exc
            # An empty file is fine: SQLite treats it as a new database.
            if header and header != _SQLITE_MAGIC:
                raise StoreError(
                    f"{path} exists but is not a SQLite database, so it cannot be the results "
                    "store; it was left untouched. Move it away, or pass --store PATH to a new "
                    "or existing mnistbench store."
                )
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"Cannot create the folder {path.parent} for the results store {path}: "
                f"{exc.strerror or exc}. Pass --store PATH to a writable location."
            ) from exc

    def _inspect(self, conn: sqlite3.Connection) -> int | None:
        """The schema version (None: empty database); StoreError for a foreign or newer file."""
        # All reads in one transaction: separate statements could straddle another process's
        # schema creation and see a half-made store as a foreign database.
        own_transaction = not conn.in_transaction
        if own_transaction:
            conn.execute("BEGIN")
        try:
            version = self._schema_version(conn)
            if version is None and self._has_foreign_tables(conn):
                raise StoreError(
                    f"{self.path} is a SQLite database but not an mnistbench results store, so "
                    "mnistbench will not write into it. Pass --store PATH to a new or existing "
                    "mnistbench store."
                )
        finally:
            if own_transaction and conn.in_transaction:
                conn.execute("COMMIT")
        return version

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        """Switch the file to WAL so readers never block writers; the mode persists in the file."""
        # Changing the journal mode needs an exclusive lock and SQLite reports "locked" at once
        # instead of waiting on busy_timeout, so retry until the timeout ourselves.
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                message = str(exc).lower()
                if ("locked" not in message and "busy" not in message) or (
                    time.monotonic() > deadline
                ):
                    raise
            time.sleep(0.01)

    def _schema_version(self, conn: sqlite3.Connection) -> int | None:
        """The store's schema version, or None for a database without mnistbench tables."""
        has_meta = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        ).fetchone()
        if not has_meta:
            return None
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.Error:
            return None  # a 'meta' table of some other shape: not ours
        if meta.get("format") != STORE_FORMAT or "schema_version" not in meta:
            return None
        try:
            version = int(meta["schema_version"])
        except (TypeError, ValueError) as exc:
            raise StoreError(
                f"The results store at {self.path} has an unreadable schema version "
                f"{meta['schema_version']!r}; the file is damaged. Pass --store PATH to use "
                "another store."
            ) from exc
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"The results store at {self.path} has schema version {version}, newer than "
                f"this mnistbench understands ({SCHEMA_VERSION}); it was written by a newer "
                "mnistbench. Upgrade mnistbench, or pass --store PATH to use another store."
            )
        # No schema older than version 1 exists; migrations go here when version 2 arrives.
        return version

    @staticmethod
    def _has_foreign_tables(conn: sqlite3.Connection) -> bool:
        row = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchone()
        return row is not None

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ----------------------------------------------------------------- transaction helpers

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"The results store at {self.path} has already been closed.")
        return self._conn

    def _translate_error(self, exc: sqlite3.Error, action: str) -> StoreError:
        message = str(exc).lower()
        if "locked" in message or "busy" in message:
            return StoreError(
                f"The results store at {self.path} stayed locked by another process for more "
                f"than {self.timeout_s:g} s, so mnistbench could not {action}. Wait for the "
                "other mnistbench process to finish, or pass --store PATH to use a separate store."
            )
        if "readonly" in message or "read-only" in message or "unable to open" in message:
            return StoreError(
                f"The results store at {self.path} is not writable, so mnistbench could not "
                f"{action} ({exc}). Make the file and its folder writable, or pass --store PATH "
                "to a writable location."
            )
        return StoreError(
            f"The results store at {self.path} failed while trying to {action}: {exc}. The file "
            "may be damaged or the disk full; free space or pass --store PATH to use another store."
        )

    @contextmanager
    def _reading(self, action: str) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        try:
            yield conn
        except sqlite3.Error as exc:
            raise self._translate_error(exc, action) from exc

    @contextmanager
    def _transaction(
        self, action: str, conn: sqlite3.Connection | None = None
    ) -> Iterator[sqlite3.Connection]:
        """One write transaction; BEGIN IMMEDIATE takes the write lock up front so that a
        concurrent writer waits on busy_timeout instead of failing mid-transaction."""
        conn = conn if conn is not None else self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise self._translate_error(exc, action) from exc

    def _require_run(self, conn: sqlite3.Connection, run_id: int) -> None:
        if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
            raise StoreError(
                f"The results store at {self.path} has no run with id {run_id}. List the runs "
                "in this store, or pass --store PATH if the run lives in another store."
            )

    # ----------------------------------------------------------------- writing

    def start_run(
        self,
        config: dict,
        config_hash: str,
        environment: dict,
        *,
        started_at: str | None = None,
        hostname: str | None = None,
        pid: int | None = None,
    ) -> int:
        """Record a new run with status 'running'; returns its run_id. started_at, hostname and
        pid default to now, this host and this process (a pool worker's or Ray task's run passes
        its own: the host that trained it and its real start time)."""
        missing = [key for key in ("model", "dataset") if key not in config]
        if missing:
            raise ValueError(f"start_run: config lacks the key(s) {', '.join(missing)}")
        with self._transaction("record a new run") as conn:
            cursor = conn.execute(
                "INSERT INTO runs (config_hash, model, dataset, status, config_json, "
                "environment_json, metrics_json, started_at, pid, hostname) "
                "VALUES (?, ?, ?, 'running', ?, ?, '{}', ?, ?, ?)",
                (
                    config_hash,
                    str(config["model"]),
                    str(config["dataset"]),
                    _dumps(config),
                    _dumps(environment),
                    started_at or _now(),
                    os.getpid() if pid is None else pid,
                    hostname or socket.gethostname(),
                ),
            )
            run_id = cursor.lastrowid
        assert run_id is not None
        return run_id

    def log_epoch(self, run_id: int, epoch: int, metrics: dict[str, float | int | None]) -> None:
        """Record one epoch's metrics (epoch is 1-based); logging an epoch again replaces it."""
        if isinstance(epoch, bool) or int(epoch) != epoch or epoch < 1:
            raise ValueError(f"log_epoch: epoch must be an integer >= 1, got {epoch!r}")
        clean = _jsonable(dict(metrics))
        clean.pop("epoch", None)  # the epoch column is the source of truth
        columns = ", ".join(EPOCH_METRIC_COLUMNS)
        marks = ", ".join("?" for _ in EPOCH_METRIC_COLUMNS)
        with self._transaction(f"record epoch {epoch} of run {run_id}") as conn:
            self._require_run(conn, run_id)
            conn.execute(
                f"INSERT OR REPLACE INTO epochs (run_id, epoch, metrics_json, {columns}) "
                f"VALUES (?, ?, ?, {marks})",
                (
                    run_id,
                    int(epoch),
                    json.dumps(clean, allow_nan=False),
                    *(_number(clean.get(name)) for name in EPOCH_METRIC_COLUMNS),
                ),
            )

    def finish_run(
        self, run_id: int, status: str, metrics: dict | None = None, error: str | None = None
    ) -> None:
        """Set a run's final status, metrics (replacing earlier ones when given) and error."""
        if status not in FINAL_STATUSES:
            raise ValueError(
                f"finish_run: status must be one of {', '.join(FINAL_STATUSES)}, got {status!r}"
            )
        assignments = ["status = ?", "error = ?", "finished_at = ?"]
        values: list[Any] = [status, error, _now()]
        if metrics is not None:
            clean = _jsonable(dict(metrics))
            assignments.append("metrics_json = ?")
            values.append(json.dumps(clean, allow_nan=False))
            for name, number in _metric_columns(clean).items():
                assignments.append(f"{name} = ?")
                values.append(number)
        with self._transaction(f"record the end of run {run_id}") as conn:
            self._require_run(conn, run_id)
            conn.execute(
                f"UPDATE runs SET {', '.join(assignments)} WHERE run_id = ?", (*values, run_id)
            )

    def add_artefact(self, run_id: int, name: str, kind: str, content: bytes | str) -> None:
        """Store a named artefact for a run; adding the same name again replaces it."""
        data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
        with self._transaction(f"store artefact {name!r} of run {run_id}") as conn:
            self._require_run(conn, run_id)
            conn.execute(
                "INSERT INTO artefacts (run_id, name, kind, content, created_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id, name) DO UPDATE SET "
                "kind = excluded.kind, content = excluded.content, "
                "created_at = excluded.created_at",
                (run_id, name, kind, sqlite3.Binary(data), _now()),
            )

    def import_run(self, run: RunRecord, epochs: list[dict], artefacts: list[Artefact]) -> bool:
        """Copy a completed run of another store here, with its epochs and artefacts, in one
        transaction; returns False (and writes nothing) when this store already holds it.

        A run is the same run when config hash, host and start time all match, so merging the
        same store twice adds nothing. Its times and host are kept; its pid is dropped, since
        it named a process of the other machine.
        """
        if run.status == "running":
            raise ValueError(f"import_run: run {run.run_id} is still running")
        clean_metrics = _jsonable(dict(run.metrics))
        columns = _metric_columns(clean_metrics)
        with self._transaction(f"import run {run.run_id}") as conn:
            duplicate = conn.execute(
                "SELECT 1 FROM runs WHERE config_hash = ? AND started_at = ? AND hostname IS ?",
                (run.config_hash, run.started_at, run.hostname),
            ).fetchone()
            if duplicate:
                return False
            names = ", ".join(columns)
            marks = ", ".join("?" for _ in columns)
            cursor = conn.execute(
                "INSERT INTO runs (config_hash, model, dataset, status, config_json, "
                "environment_json, metrics_json, error, started_at, finished_at, hostname"
                f"{', ' + names if columns else ''}) "
                f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?{', ' + marks if columns else ''})",
                (
                    run.config_hash,
                    run.model,
                    run.dataset,
                    run.status,
                    _dumps(run.config),
                    _dumps(run.environment),
                    json.dumps(clean_metrics, allow_nan=False),
                    run.error,
                    run.started_at,
                    run.finished_at,
                    run.hostname,
                    *columns.values(),
                ),
            )
            run_id = cursor.lastrowid
            epoch_columns = ", ".join(EPOCH_METRIC_COLUMNS)
            epoch_marks = ", ".join("?" for _ in EPOCH_METRIC_COLUMNS)
            for epoch in epochs:
                metrics = _jsonable({k: v for k, v in epoch.items() if k != "epoch"})
                conn.execute(
                    f"INSERT INTO epochs (run_id, epoch, metrics_json, {epoch_columns}) "
                    f"VALUES (?, ?, ?, {epoch_marks})",
                    (
                        run_id,
                        int(epoch["epoch"]),
                        json.dumps(metrics, allow_nan=False),
                        *(_number(metrics.get(name)) for name in EPOCH_METRIC_COLUMNS),
                    ),
                )
            for artefact in artefacts:
                conn.execute(
                    "INSERT INTO artefacts (run_id, name, kind, content, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (
                        run_id,
                        artefact.name,
                        artefact.kind,
                        sqlite3.Binary(artefact.content),
                        artefact.created_at or _now(),
                    ),
                )
        return True

    def import_from(self, other: Store) -> tuple[int, int]:
        """Copy every run of another store that has ended (any status but 'running') and is not
        here yet; returns (copied, already here). Runs still running are left behind."""
        copied = present = 0
        for run in other.list_runs():
            if run.status == "running":
                continue
            if self.import_run(run, other.epochs(run.run_id), other.artefacts(run.run_id)):
                copied += 1
            else:
                present += 1
        return copied, present

    def mark_stale_runs(self) -> int:
        """Mark this host's 'running' runs whose process is gone as 'interrupted'; returns count.

        A pid that is alive but was started after the run began belongs to a new process that
        reused the number (common in containers, where the CLI is often pid 1), so it is stale too.
        """
        hostname = socket.gethostname()
        with self._reading("look for interrupted runs") as conn:
            rows = conn.execute(
                "SELECT run_id, pid, started_at FROM runs "
                "WHERE status = 'running' AND hostname = ? AND pid IS NOT NULL",
                (hostname,),
            ).fetchall()
        stale = [(run_id, pid) for run_id, pid, started in rows if not _pid_runs(pid, started)]
        count = 0
        if not stale:
            return 0
        with self._transaction("mark interrupted runs") as conn:
            for run_id, pid in stale:
                # Only if still running: the run may have finished since we looked.
                cursor = conn.execute(
                    "UPDATE runs SET status = 'interrupted', error = ?, finished_at = ? "
                    "WHERE run_id = ? AND status = 'running'",
                    (f"process {pid} ended without finishing the run (killed?)", _now(), run_id),
                )
                count += cursor.rowcount
        return count

    # ----------------------------------------------------------------- reading

    @staticmethod
    def _record(row: tuple) -> RunRecord:
        (run_id, config_hash, model, dataset, status, config, environment, metrics) = row[:8]
        error, started_at, finished_at, pid, hostname = row[8:]
        return RunRecord(
            run_id=run_id,
            config_hash=config_hash,
            model=model,
            dataset=dataset,
            status=status,
            config=_loads(config),
            environment=_loads(environment),
            metrics=_loads(metrics),
            error=error,
            started_at=started_at,
            finished_at=finished_at,
            pid=pid,
            hostname=hostname,
        )

    def get_run(self, run_id: int) -> RunRecord:
        """The run with this id; StoreError when there is none."""
        with self._reading(f"read run {run_id}") as conn:
            row = conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
        if row is None:
            raise StoreError(
                f"The results store at {self.path} has no run with id {run_id}. List the runs "
                "in this store, or pass --store PATH if the run lives in another store."
            )
        return self._record(row)

    def find_completed(self, config_hash: str) -> RunRecord | None:
        """The latest finished or diverged run with this config hash, or None."""
        marks = ", ".join("?" for _ in COMPLETED_STATUSES)
        with self._reading("look up earlier runs") as conn:
            row = conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE config_hash = ? "
                f"AND status IN ({marks}) ORDER BY run_id DESC LIMIT 1",
                (config_hash, *COMPLETED_STATUSES),
            ).fetchone()
        return None if row is None else self._record(row)

    def list_runs(
        self, *, status: str | None = None, model: str | None = None, dataset: str | None = None
    ) -> list[RunRecord]:
        """All runs matching the given filters, ordered by run_id."""
        filters = {"status": status, "model": model, "dataset": dataset}
        clauses = [f"{column} = ?" for column, value in filters.items() if value is not None]
        values = [value for value in filters.values() if value is not None]
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._reading("list runs") as conn:
            rows = conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs {where} ORDER BY run_id", values
            ).fetchall()
        return [self._record(row) for row in rows]

    def epochs(self, run_id: int) -> list[dict]:
        """The run's epochs in order, each {"epoch": n, **metrics}; [] for an unknown run."""
        with self._reading(f"read the epochs of run {run_id}") as conn:
            rows = conn.execute(
                "SELECT epoch, metrics_json FROM epochs WHERE run_id = ? ORDER BY epoch",
                (run_id,),
            ).fetchall()
        return [{"epoch": epoch, **_loads(metrics)} for epoch, metrics in rows]

    def artefacts(self, run_id: int) -> list[Artefact]:
        """The run's artefacts in the order they were first added; [] for an unknown run."""
        with self._reading(f"read the artefacts of run {run_id}") as conn:
            rows = conn.execute(
                "SELECT run_id, name, kind, content, created_at FROM artefacts "
                "WHERE run_id = ? ORDER BY artefact_id",
                (run_id,),
            ).fetchall()
        return [Artefact(r, n, k, bytes(c), created) for r, n, k, c, created in rows]


def _pid_runs(pid: int, started_at: str | None) -> bool:
    """Whether the process that started a run (recorded pid and start time) is still alive."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        created = process.create_time()
    except psutil.NoSuchProcess:
        return False
    except (psutil.AccessDenied, OSError):
        return True  # cannot tell: leave the run alone rather than wrongly interrupt it
    if started_at is None:
        return True
    try:
        started = datetime.fromisoformat(started_at).timestamp()
    except ValueError:
        return True
    return created <= started + _PID_START_TOLERANCE_S
