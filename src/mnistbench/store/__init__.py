"""Results store: one SQLite file (WAL mode) holding runs, per-epoch metrics and artefacts.

``Store`` is the API (``runs.py``); ``sqlite.py`` opens the file safely (``files.py``: error
names, read-only connections), ``schema.py`` holds the tables and migrations, ``rows.py`` the
INSERT helpers, ``merge.py`` and ``jsonl.py`` move runs between stores and exports,
``liveness.py`` tells killed runs, ``check.py`` and ``pages.py`` check and recover a damaged file.
"""

from mnistbench.store.check import RecoveryCounts, StoreCheck, check_store, recover_store
from mnistbench.store.files import BUSY_TIMEOUT_S
from mnistbench.store.jsonl import (
    ARTEFACT_LIMIT_BYTES,
    JsonlSummary,
    export_jsonl,
    read_jsonl,
    write_jsonl,
)
from mnistbench.store.merge import read_runs
from mnistbench.store.records import (
    COMPLETED_STATUSES,
    FINAL_STATUSES,
    RECORD_KEYS,
    RUN_STATUSES,
    Artefact,
    RunRecord,
    StoredRun,
    default_store_path,
)
from mnistbench.store.runs import Store, open_existing_store
from mnistbench.store.schema import (
    EPOCH_METRIC_COLUMNS,
    RUN_METRIC_COLUMNS,
    SCHEMA_VERSION,
    STORE_FORMAT,
    install_card_builder,
    minimal_card,
)

__all__ = [
    "ARTEFACT_LIMIT_BYTES",
    "BUSY_TIMEOUT_S",
    "COMPLETED_STATUSES",
    "EPOCH_METRIC_COLUMNS",
    "FINAL_STATUSES",
    "RECORD_KEYS",
    "RUN_METRIC_COLUMNS",
    "RUN_STATUSES",
    "SCHEMA_VERSION",
    "STORE_FORMAT",
    "Artefact",
    "JsonlSummary",
    "RecoveryCounts",
    "RunRecord",
    "Store",
    "StoreCheck",
    "StoredRun",
    "check_store",
    "default_store_path",
    "export_jsonl",
    "install_card_builder",
    "minimal_card",
    "open_existing_store",
    "read_jsonl",
    "read_runs",
    "recover_store",
    "write_jsonl",
]
