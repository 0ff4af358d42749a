"""The store's tables, its schema versions and the migrations between them, and the model card a
run gets when none was recorded (runs of schema 1, callers that pass none)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from mnistbench.store.records import dumps, loads

# 1: runs, epochs, artefacts (up to commit 5ae60b7). 2: runs carry their model card and the
# model's architecture fingerprint (model_card_json, model_fingerprint).
SCHEMA_VERSION = 2
STORE_FORMAT = "mnistbench-results"

CardBuilder = Callable[[dict], dict]

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
# Columns schema 2 added to runs; ALTER TABLE appends them, so a new store lists them last too
# and a migrated store has exactly the layout of a new one.
V2_RUN_COLUMNS = {"model_card_json": "TEXT", "model_fingerprint": "TEXT"}

# The order of these statements fixes each table's root page in a new store; keep new tables
# and indexes at the end (store recovery rebuilds a damaged first page from this order).
SCHEMA_STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT
)""",
    f"""CREATE TABLE IF NOT EXISTS runs (
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
    {", ".join(f"{name} {kind}" for name, kind in RUN_METRIC_COLUMNS.items())},
    {", ".join(f"{name} {kind}" for name, kind in V2_RUN_COLUMNS.items())}
)""",
    "CREATE INDEX IF NOT EXISTS runs_config_hash ON runs (config_hash)",
    f"""CREATE TABLE IF NOT EXISTS epochs (
    run_id INTEGER NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    metrics_json TEXT,
    {", ".join(f"{name} REAL" for name in EPOCH_METRIC_COLUMNS)},
    PRIMARY KEY (run_id, epoch)
)""",
    """CREATE TABLE IF NOT EXISTS artefacts (
    artefact_id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    content BLOB NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (run_id, name)
)""",
)


def create_tables(conn: sqlite3.Connection) -> None:
    """Create the current schema in an empty database; the caller holds a write transaction."""
    # Not executescript(): it would COMMIT the caller's transaction first.
    for statement in SCHEMA_STATEMENTS:
        conn.execute(statement)
    conn.executemany(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
        [("schema_version", str(SCHEMA_VERSION)), ("format", STORE_FORMAT)],
    )


def migrate(conn: sqlite3.Connection, version: int, card_for: Callable[[dict], dict]) -> None:
    """Bring a store of an older schema to SCHEMA_VERSION in place; the caller holds the write
    transaction, so a failure (disk full, Ctrl-C) leaves the store exactly as it was."""
    if version < 2:
        for name, kind in V2_RUN_COLUMNS.items():
            conn.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
        rows = conn.execute("SELECT run_id, model, config_json FROM runs").fetchall()
        for run_id, model, config_json in rows:
            config = {"model": model, **loads(config_json)}
            conn.execute(
                "UPDATE runs SET model_card_json = ? WHERE run_id = ?",
                (dumps(card_for(config)), run_id),
            )
        # The fingerprint stays NULL: what was trained then may differ from today's code, so a
        # migrated run is never taken for a run of today's architecture (find_completed).
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))


def minimal_card(config: dict) -> dict:
    """The card of a run whose card cannot be rebuilt: its model name and nothing more."""
    return {
        "card_version": 1,
        "model": str(config.get("model")),
        "source": {"kind": "reconstructed"},
        "measurement": {"version": 1},
    }


# The builder a Store uses, when it is given none, for runs recorded without a card. A card
# says what the model is, which only the model registry knows, and the store never imports the
# models (the layer contract in pyproject.toml): the program that opens stores installs one at
# its start (the CLI and the tests install mnistbench.cards.reconstruct_card). None: minimal cards.
_installed_card_builder: CardBuilder | None = None


def install_card_builder(builder: CardBuilder | None) -> None:
    """Make `builder` the card builder of every Store opened without one from now on."""
    global _installed_card_builder
    _installed_card_builder = builder


def default_card_builder() -> CardBuilder | None:
    """The builder installed with `install_card_builder`, or None (runs get minimal cards)."""
    return _installed_card_builder


def build_card(config: dict, builder: CardBuilder | None) -> dict:
    """The model card for a run recorded without one, built from its config.

    A builder that fails (say a model no longer registered) gives the minimal card with the
    reason, rather than an error: a store must open whatever the installed code knows.
    """
    if builder is None:
        return minimal_card(config)
    try:
        card = builder(dict(config))
    except Exception as exc:
        return {**minimal_card(config), "reconstruct_error": f"{type(exc).__name__}: {exc}"}
    if not isinstance(card, dict) or not card:
        return {**minimal_card(config), "reconstruct_error": f"builder returned {card!r}"}
    return card
