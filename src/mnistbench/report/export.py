"""Export the store's runs or epochs as CSV or JSON, one flat row per run or per epoch, or the
runs as JSON lines (everything recorded about each run, for `mnistbench merge` and for results
kept in a repository; see ``mnistbench.store.jsonl``).

Run rows: identity fields, then every metric (unprefixed, as `mnistbench run --json` prints them),
then `config.<field>` and `env.<field>`. Nested values (lists, dicts) are JSON text in CSV.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from mnistbench.errors import ConfigError
from mnistbench.escape import csv_cell
from mnistbench.store import RECORD_KEYS, RunRecord, Store, export_jsonl

FORMATS = ("csv", "json", "jsonl")
WHAT = ("runs", "epochs")
_IDENTITY = (*RECORD_KEYS, "hostname")
_EPOCH_IDENTITY = ("run_id", "config_hash", "model", "dataset", "status", "seed", "epoch")


def run_row(run: RunRecord) -> dict[str, Any]:
    """One run as a flat dict: identity, metrics, config.*, env.*."""
    row: dict[str, Any] = {key: getattr(run, key) for key in _IDENTITY}
    for key, value in run.metrics.items():
        row[f"metric.{key}" if key in row else key] = value
    row.update({f"config.{key}": value for key, value in run.config.items()})
    row.update({f"env.{key}": value for key, value in run.environment.items()})
    return row


def epoch_rows(store: Store, run: RunRecord) -> list[dict[str, Any]]:
    """The run's epochs as flat dicts, each carrying the run's identity and seed."""
    rows = []
    for epoch in store.epochs(run.run_id):
        row: dict[str, Any] = {
            "run_id": run.run_id,
            "config_hash": run.config_hash,
            "model": run.model,
            "dataset": run.dataset,
            "status": run.status,
            "seed": run.config.get("seed"),
        }
        row.update({key: value for key, value in epoch.items() if key not in row})
        rows.append(row)
    return rows


def collect_rows(store: Store, what: str = "runs") -> list[dict[str, Any]]:
    """Every run (or every epoch of every run), in run order."""
    if what not in WHAT:
        raise ConfigError(
            f"Cannot export {what!r}: choose --what runs (one row per run) or --what epochs "
            "(one row per epoch of every run)."
        )
    runs = store.list_runs()
    if what == "runs":
        return [run_row(run) for run in runs]
    return [row for run in runs for row in epoch_rows(store, run)]


def _columns(rows: list[dict[str, Any]], first: tuple[str, ...]) -> list[str]:
    """Identity columns first, then the rest in the order first seen (stable across runs)."""
    seen = {key: None for key in first if any(key in row for row in rows)}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    return list(seen)


def _cell(value: Any) -> Any:
    """A CSV cell: nested values as JSON text, text that a spreadsheet would run as a formula
    neutralised (escape.csv_cell, OWASP's rule)."""
    if isinstance(value, (list, tuple, dict)):
        return csv_cell(json.dumps(value, sort_keys=True))
    return "" if value is None else csv_cell(value)


def to_csv(rows: list[dict[str, Any]], what: str = "runs") -> str:
    columns = _columns(rows, _IDENTITY if what == "runs" else _EPOCH_IDENTITY)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writerow({key: csv_cell(key) for key in columns})  # metric names are data too
    for row in rows:
        writer.writerow({key: _cell(row.get(key)) for key in columns})
    return buffer.getvalue()


def to_json(rows: list[dict[str, Any]]) -> str:
    # the store already turned NaN/inf into null, so strict JSON cannot fail here
    return json.dumps(rows, indent=1, allow_nan=False) + "\n"


def export(store: Store, fmt: str = "csv", what: str = "runs") -> str:
    """The store's runs or epochs as CSV or JSON text, or its runs as JSON lines."""
    if fmt not in FORMATS:
        raise ConfigError(
            f"Unknown export format {fmt!r}: choose --format csv, json (flat rows) or jsonl "
            "(one run a line with its epochs, model card and small artefacts, for merge)."
        )
    if fmt == "jsonl":
        if what != "runs":
            raise ConfigError(
                "--format jsonl exports whole runs, each with its epochs; use --what runs "
                "(or --format csv/json for one row per epoch)."
            )
        return "".join(export_jsonl(store))
    rows = collect_rows(store, what)
    return to_csv(rows, what) if fmt == "csv" else to_json(rows)
