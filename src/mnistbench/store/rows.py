"""How runs, epochs and artefacts map onto the store's rows: one INSERT helper per table (used by
recording, merging and recovery alike) and the SELECT that reads a run back."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from mnistbench.store.records import Artefact, RunRecord, dumps, jsonable, loads, number
from mnistbench.store.schema import EPOCH_METRIC_COLUMNS, RUN_METRIC_COLUMNS, V2_RUN_COLUMNS
from mnistbench.store.schema_records import RecordError, check_row

RUN_COLUMNS = (
    "run_id",
    "config_hash",
    "model",
    "dataset",
    "status",
    "config_json",
    "environment_json",
    "metrics_json",
    "error",
    "started_at",
    "finished_at",
    "pid",
    "hostname",
    *V2_RUN_COLUMNS,
)
_WRITABLE_RUN_COLUMNS = frozenset((*RUN_COLUMNS, *RUN_METRIC_COLUMNS))


def run_select(schema_version: int) -> str:
    """The column list that reads RunRecords; a schema-1 store (opened read-only, so not
    migrated) reads NULL for the columns it lacks."""
    if schema_version >= 2:
        return ", ".join(RUN_COLUMNS)
    return ", ".join(f"NULL AS {name}" if name in V2_RUN_COLUMNS else name for name in RUN_COLUMNS)


def record_from_row(row: tuple, card_for: Callable[[dict], dict]) -> RunRecord:
    """A RunRecord from a row of ``run_select``; a run without a card gets ``card_for(config)``.

    The row is checked against the run format (store/schema_records.py) like a merged line: a
    row written by hand or by an old version raises RecordError naming the run and the problem,
    and its stored config is never used to build or import anything."""
    values = dict(zip(RUN_COLUMNS, row, strict=True))
    where = f"run {values['run_id']} of the store"
    try:
        config = loads(values["config_json"])
        environment = loads(values["environment_json"])
        metrics = loads(values["metrics_json"])
        card = loads(values["model_card_json"]) if values["model_card_json"] else None
    except (ValueError, RecursionError, TypeError) as exc:
        raise _bad_row(where, f"a JSON column does not hold JSON ({type(exc).__name__})") from None
    fields = {
        key: values[key]
        for key in ("config_hash", "model", "dataset", "status", "error", "started_at")
    }
    fields.update(
        finished_at=values["finished_at"],
        hostname=values["hostname"],
        fingerprint=values["model_fingerprint"],
        config=config,
        environment=environment,
        metrics=metrics,
        model_card=card or {},
    )
    problem = check_row(fields)
    if problem is not None:
        raise _bad_row(where, problem)
    if card is None:  # only a valid config reaches the card builder (registered names only)
        card = card_for({"model": values["model"], **config})
    return RunRecord(
        run_id=values["run_id"],
        config_hash=values["config_hash"],
        model=values["model"],
        dataset=values["dataset"],
        status=values["status"],
        config=config,
        environment=environment,
        metrics=metrics,
        error=values["error"],
        started_at=values["started_at"],
        finished_at=values["finished_at"],
        pid=values["pid"],
        hostname=values["hostname"],
        model_card=card,
        fingerprint=values["model_fingerprint"],
    )


def _bad_row(where: str, problem: str) -> RecordError:
    return RecordError(
        f"The results store holds an invalid record ({where}): {problem}. It was written by "
        "hand, by a damaged copy or by another program; `mnistbench store recover --out "
        "NEW.sqlite` copies every valid run into a new store, leaving this one out.",
        problem=problem,
    )


def metric_columns(metrics: dict) -> dict[str, int | float | None]:
    """The run metrics that also live in a column of their own (for SQL filters), by column."""
    columns: dict[str, int | float | None] = {}
    for name, kind in RUN_METRIC_COLUMNS.items():
        if name in metrics:
            value = number(metrics[name])
            columns[name] = round(value) if value is not None and kind == "INTEGER" else value
    return columns


def run_values(run: RunRecord, *, keep_identity: bool) -> dict[str, Any]:
    """The runs-table columns of a RunRecord copied into another store.

    Merging (``keep_identity=False``) drops the run_id (the target numbers its own runs) and the
    pid (it named a process of the other machine); recovery keeps both.
    """
    metrics = jsonable(dict(run.metrics))
    values: dict[str, Any] = {
        "config_hash": run.config_hash,
        "model": run.model,
        "dataset": run.dataset,
        "status": run.status,
        "config_json": dumps(run.config),
        "environment_json": dumps(run.environment),
        "metrics_json": dumps(metrics),
        "error": run.error,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "hostname": run.hostname,
        "model_card_json": dumps(run.model_card) if run.model_card else None,
        "model_fingerprint": run.fingerprint,
        **metric_columns(metrics),
    }
    if keep_identity:
        values.update(run_id=run.run_id, pid=run.pid)
    return values


def insert_run(conn: sqlite3.Connection, values: dict[str, Any]) -> int:
    """INSERT one runs row from {column: value}; returns its run_id."""
    unknown = set(values) - _WRITABLE_RUN_COLUMNS
    if unknown:
        raise ValueError(f"insert_run: no runs column(s) {', '.join(sorted(unknown))}")
    names = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    cursor = conn.execute(f"INSERT INTO runs ({names}) VALUES ({marks})", tuple(values.values()))
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def insert_epoch(conn: sqlite3.Connection, run_id: int, epoch: int, metrics: dict) -> None:
    """Record one epoch's metrics; recording the same epoch again replaces it."""
    clean = jsonable({key: value for key, value in metrics.items() if key != "epoch"})
    columns = ", ".join(EPOCH_METRIC_COLUMNS)
    marks = ", ".join("?" for _ in EPOCH_METRIC_COLUMNS)
    conn.execute(
        f"INSERT OR REPLACE INTO epochs (run_id, epoch, metrics_json, {columns}) "
        f"VALUES (?, ?, ?, {marks})",
        (
            run_id,
            int(epoch),
            dumps(clean),
            *(number(clean.get(name)) for name in EPOCH_METRIC_COLUMNS),
        ),
    )


def upsert_artefact(
    conn: sqlite3.Connection, run_id: int, artefact: Artefact, *, artefact_id: int | None = None
) -> None:
    """Store a run's artefact (its created_at must be set); the same name again replaces it."""
    conn.execute(
        "INSERT INTO artefacts (artefact_id, run_id, name, kind, content, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, name) DO UPDATE SET "
        "kind = excluded.kind, content = excluded.content, created_at = excluded.created_at",
        (
            artefact_id,
            run_id,
            artefact.name,
            artefact.kind,
            sqlite3.Binary(artefact.content),
            artefact.created_at,
        ),
    )
