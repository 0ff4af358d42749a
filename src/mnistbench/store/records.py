"""What the store holds, as Python values: runs, epochs and artefacts, and how their values are
turned into the strict JSON the store's text columns hold."""

from __future__ import annotations

import json
import math
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

RUN_STATUSES = ("running", "finished", "diverged", "failed", "interrupted")
COMPLETED_STATUSES = ("finished", "diverged")  # a config with one of these is not trained again
FINAL_STATUSES = tuple(s for s in RUN_STATUSES if s != "running")

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


def default_store_path() -> Path:
    """The store used when no --store is given: ./mnistbench-results/results.sqlite."""
    return Path("mnistbench-results") / "results.sqlite"


@dataclass
class RunRecord:
    """One row of the runs table, with its JSON columns decoded.

    ``model_card`` is never empty: runs recorded before schema 2 get a reconstructed card
    (see ``mnistbench.store.schema.build_card``). ``fingerprint`` is the model's architecture
    fingerprint (None for runs recorded before schema 2, or without a card)."""

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
    model_card: dict = field(default_factory=dict)
    fingerprint: str | None = None

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


@dataclass
class StoredRun:
    """A run with everything recorded about it: what merging and exporting move between stores."""

    run: RunRecord
    epochs: list[dict]
    artefacts: list[Artefact]


@dataclass(frozen=True)
class InvalidRecord:
    """A record a reader could not take (a line of an export, a row of a store): where it is
    and what is wrong, for ``merge`` to refuse the file or, with --skip-invalid, list it."""

    where: str
    problem: str


class MergeCounts(NamedTuple):
    """What a merge did: runs copied, runs already there, and the records it left out."""

    copied: int
    present: int
    invalid: tuple[InvalidRecord, ...] = ()


def now_iso() -> str:
    """The current time as the store writes it: UTC, ISO 8601, milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def jsonable(value: Any) -> Any:
    """Turn metrics into plain JSON values; NaN/inf become None so strict JSON never fails."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    # numpy scalars/arrays and torch tensors: engine code often hands them over unconverted.
    for method in ("tolist", "item"):
        convert = getattr(value, method, None)
        if callable(convert):
            with suppress(Exception):
                return jsonable(convert())
    return str(value)


def dumps(value: Any) -> str:
    """Strict JSON text for a store column (key order kept, so a config reads as written)."""
    return json.dumps(jsonable(value), allow_nan=False, sort_keys=False)


def loads(text: str | None) -> Any:
    """A JSON column's value; a NULL column reads as {}."""
    return {} if text is None else json.loads(text)


def number(value: Any) -> int | float | None:
    """A finite number for a REAL/INTEGER column, or None (bools and strings are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None
