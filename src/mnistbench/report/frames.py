"""The results store as pandas DataFrames, for one's own analysis: `mnistbench.runs()` (one row
per run) and `mnistbench.epochs()` (one row per run and epoch).

A column per configuration field, per metric and per environment field (`env_` prefix); a metric
that shares a configuration field's name (`target_accuracy`) is `metric_<name>`. List-valued
fields stay Python lists, and `test_accuracy_ci95` is also split into `test_accuracy_ci95_low` /
`_high` (the run's stored Wilson interval, else the one computed from its accuracy and number of
test images by `mnistbench.statistics`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from mnistbench.report import cards, uncertainty
from mnistbench.statistics import accuracy_interval
from mnistbench.store import RunRecord, Store

RUN_FIELDS = ("run_id", "config_hash", "model", "dataset", "status", "started_at", "finished_at")
STORE_FILTERS = ("status", "model", "dataset")  # filtered in SQL; any other key on the frame


def _open(store: Store | str | Path | None) -> Store:
    return store if isinstance(store, Store) else Store(store, read_only=True)


def _scalar_or_list(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def run_row(run: RunRecord) -> dict[str, Any]:
    """One run as a flat dict: identity, config, metrics, environment (`env_`), family."""
    row: dict[str, Any] = {name: getattr(run, name) for name in RUN_FIELDS}
    row["hostname"] = run.hostname or run.environment.get("hostname")
    row["family"] = cards.family(cards.card_of(run))
    for key, value in run.config.items():
        row.setdefault(key, _scalar_or_list(value))
    for key, value in run.metrics.items():
        row[key if key not in row else f"metric_{key}"] = _scalar_or_list(value)
    for key, value in run.environment.items():
        row[f"env_{key}"] = _scalar_or_list(value)
    low, high = _interval(run)
    row["test_accuracy_ci95_low"], row["test_accuracy_ci95_high"] = low, high
    return row


def _interval(run: RunRecord) -> tuple[float | None, float | None]:
    """The run's 95% interval for its test accuracy: stored, else from its counts."""
    stored = run.metrics.get("test_accuracy_ci95")
    if isinstance(stored, (list, tuple)) and len(stored) == 2:
        return float(stored[0]), float(stored[1])
    accuracy = run.metrics.get("test_accuracy")
    if not isinstance(accuracy, (int, float)) or isinstance(accuracy, bool):
        return None, None
    found = accuracy_interval(float(accuracy), uncertainty.n_test(run.metrics, run.config))
    return found.low, found.high


def _select(store: Store, filters: dict[str, Any]) -> list[RunRecord]:
    in_sql = {k: filters[k] for k in STORE_FILTERS if k in filters}
    return store.list_runs(**in_sql)


def _filtered(frame: pd.DataFrame, filters: dict[str, Any]) -> pd.DataFrame:
    for key, value in filters.items():
        if key in STORE_FILTERS:
            continue
        if key not in frame.columns:
            raise ValueError(
                f"No column {key!r} to filter on: the runs have {', '.join(sorted(frame.columns))}."
                " Filter on one of these (e.g. device='cpu', epochs=5)."
            )
        frame = frame[frame[key].map(lambda v, want=value: v == want)]
    return frame.reset_index(drop=True)


def runs(store: Store | str | Path | None = None, **filters: Any) -> pd.DataFrame:
    """Every run in `store` (default: the default results store), one row each.

    Filters are equalities on any column: `runs(model="mlp", device="cpu", status="finished")`.
    """
    opened = _open(store)
    frame = pd.DataFrame([run_row(r) for r in _select(opened, filters)])
    if frame.empty:
        return pd.DataFrame(columns=[*RUN_FIELDS, "test_accuracy"])
    return _filtered(frame, filters)


def epoch_rows(run: RunRecord, epochs: Iterable[dict]) -> list[dict[str, Any]]:
    """A run's epochs as flat rows tagged with the run's identity and seed."""
    found = []
    for epoch in epochs:
        row: dict[str, Any] = {
            "run_id": run.run_id,
            "model": run.model,
            "dataset": run.dataset,
            "seed": run.config.get("seed"),
        }
        row.update({k: _scalar_or_list(v) for k, v in epoch.items()})
        found.append(row)
    return found


def epochs(store: Store | str | Path | None = None, **filters: Any) -> pd.DataFrame:
    """Every epoch of the runs `runs(store, **filters)` selects, one row per run and epoch
    (`stage` and `stage_epoch` tell a pretrained model's stages apart)."""
    opened = _open(store)
    chosen = runs(opened, **filters)
    wanted = set(chosen["run_id"]) if "run_id" in chosen else set()
    rows = [
        row
        for run in _select(opened, filters)
        if run.run_id in wanted
        for row in epoch_rows(run, opened.epochs(run.run_id))
    ]
    return pd.DataFrame(rows, columns=None if rows else ["run_id", "model", "dataset", "epoch"])
