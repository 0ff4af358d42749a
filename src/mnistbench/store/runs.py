"""The results store's API: record runs, their epochs and artefacts, and read them back."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from mnistbench.errors import StoreError
from mnistbench.store import liveness, merge
from mnistbench.store.records import (
    COMPLETED_STATUSES,
    FINAL_STATUSES,
    Artefact,
    RunRecord,
    StoredRun,
    default_store_path,
    dumps,
    jsonable,
    loads,
    now_iso,
)
from mnistbench.store.rows import (
    insert_epoch,
    insert_run,
    metric_columns,
    record_from_row,
    run_select,
    upsert_artefact,
)
from mnistbench.store.sqlite import Database


class Store(Database):
    """A results store backed by one SQLite file; use as a context manager or call close().

    ``Store(path, read_only=True)`` never writes to the file (it opens on a read-only file,
    folder or medium, and an older schema is read as if migrated); its writes raise StoreError.
    ``card_builder(config) -> dict`` builds the model card of runs recorded without one
    (default: the one installed with ``install_card_builder``, which the CLI sets to
    ``mnistbench.cards.reconstruct_card``; else a minimal card).
    """

    # ----------------------------------------------------------------- writing

    def start_run(
        self,
        config: dict,
        config_hash: str,
        environment: dict,
        model_card: dict | None = None,
        *,
        fingerprint: str | None = None,
        started_at: str | None = None,
        hostname: str | None = None,
        pid: int | None = None,
    ) -> int:
        """Record a new run with status 'running'; returns its run_id.

        started_at, hostname and pid default to now, this host and this process; executors pass
        the values of the worker that trains the run. Without a card the run gets the one
        ``card_builder`` makes; without a fingerprint it takes the card's, if it has one.
        """
        missing = [key for key in ("model", "dataset") if key not in config]
        if missing:
            raise ValueError(f"start_run: config lacks the key(s) {', '.join(missing)}")
        if model_card is not None and (not isinstance(model_card, dict) or not model_card):
            raise ValueError(f"start_run: model_card must be a non-empty dict, got {model_card!r}")
        if model_card is None:
            model_card = self._card_for(config)
        elif fingerprint is None and isinstance(model_card.get("fingerprint"), str):
            fingerprint = model_card["fingerprint"]
        values = {
            "config_hash": config_hash,
            "model": str(config["model"]),
            "dataset": str(config["dataset"]),
            "status": "running",
            "config_json": dumps(config),
            "environment_json": dumps(environment),
            "metrics_json": "{}",
            "started_at": started_at or now_iso(),
            "pid": os.getpid() if pid is None else pid,
            "hostname": hostname or socket.gethostname(),
            "model_card_json": dumps(model_card),
            "model_fingerprint": fingerprint,
        }
        with self._transaction("record a new run") as conn:
            return insert_run(conn, values)

    def log_epoch(self, run_id: int, epoch: int, metrics: dict[str, float | int | None]) -> None:
        """Record one epoch's metrics (epoch is 1-based); logging an epoch again replaces it."""
        if isinstance(epoch, bool) or int(epoch) != epoch or epoch < 1:
            raise ValueError(f"log_epoch: epoch must be an integer >= 1, got {epoch!r}")
        with self._transaction(f"record epoch {epoch} of run {run_id}") as conn:
            self._require_run(conn, run_id)
            insert_epoch(conn, run_id, epoch, dict(metrics))  # the epoch column wins over a key

    def finish_run(
        self, run_id: int, status: str, metrics: dict | None = None, error: str | None = None
    ) -> None:
        """Set a run's final status, metrics (replacing earlier ones when given) and error."""
        if status not in FINAL_STATUSES:
            raise ValueError(
                f"finish_run: status must be one of {', '.join(FINAL_STATUSES)}, got {status!r}"
            )
        assignments = ["status = ?", "error = ?", "finished_at = ?"]
        values: list[Any] = [status, error, now_iso()]
        if metrics is not None:
            clean = jsonable(dict(metrics))
            assignments.append("metrics_json = ?")
            values.append(dumps(clean))
            for name, number in metric_columns(clean).items():
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
            upsert_artefact(conn, run_id, Artefact(run_id, name, kind, data, now_iso()))

    def import_run(self, run: RunRecord, epochs: list[dict], artefacts: list[Artefact]) -> bool:
        """Copy a run that has ended, from another store or an export, here with its epochs and
        artefacts in one transaction; False (and nothing written) when this store has it.

        A run is the same run when config hash, host and start time all match, so merging the
        same store twice adds nothing. Its times, host, card and fingerprint are kept; its pid
        is dropped, since it named a process of the other machine.
        """
        if run.status == "running":
            raise ValueError(f"import_run: run {run.run_id} is still running")
        if not run.model_card:  # a record built by hand; runs read from a store have one
            run = replace(run, model_card=self._card_for({"model": run.model, **run.config}))
        action = f"import the run of {run.model} started at {run.started_at}"
        with self._transaction(action) as conn:
            return merge.import_into(conn, StoredRun(run, epochs, artefacts))

    def import_runs(self, runs: Iterable[StoredRun]) -> tuple[int, int]:
        """Import every run that has ended (see ``import_run``), one transaction each; returns
        (copied, already here). Runs still running are left out."""
        copied = present = 0
        for stored in runs:
            if stored.run.status == "running":
                continue
            if self.import_run(stored.run, stored.epochs, stored.artefacts):
                copied += 1
            else:
                present += 1
        return copied, present

    def import_from(self, other: Store) -> tuple[int, int]:
        """Copy every run of another store that has ended and is not here yet; returns (copied,
        already here). Runs still running are left behind."""
        return self.import_runs(other.stored_runs())

    def mark_stale_runs(self) -> int:
        """Mark this host's 'running' runs whose process is gone as 'interrupted'; returns count.

        Only this host's rows: a pid says nothing about a process on another machine, so on a
        store shared between hosts (rare) another host's killed run stays 'running' until that
        host opens the store. A pid that is alive but started after the run began belongs to a
        new process that reused the number, so that run is stale too.
        """
        self._require_writable("mark interrupted runs")
        hostname = socket.gethostname()
        with self._reading("look for interrupted runs") as conn:
            rows = conn.execute(
                "SELECT run_id, pid, started_at FROM runs "
                "WHERE status = 'running' AND hostname = ? AND pid IS NOT NULL",
                (hostname,),
            ).fetchall()
        stale = [
            (run_id, pid) for run_id, pid, started in rows if not liveness.pid_runs(pid, started)
        ]
        if not stale:
            return 0
        count = 0
        with self._transaction("mark interrupted runs") as conn:
            for run_id, pid in stale:
                # Only if still running: the run may have finished since we looked.
                cursor = conn.execute(
                    "UPDATE runs SET status = 'interrupted', error = ?, finished_at = ? "
                    "WHERE run_id = ? AND status = 'running'",
                    (liveness.stale_reason(pid), now_iso(), run_id),
                )
                count += cursor.rowcount
        return count

    def _require_run(self, conn: Any, run_id: int) -> None:
        if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
            raise StoreError(
                f"The results store at {self.path} has no run with id {run_id}. List the runs "
                "in this store, or pass --store PATH if the run lives in another store."
            )

    # ----------------------------------------------------------------- reading

    def _select_runs(self, action: str, where: str = "", params: tuple = ()) -> list[RunRecord]:
        with self._reading(action) as conn:
            rows = conn.execute(
                f"SELECT {run_select(self.schema_version)} FROM runs {where}", params
            ).fetchall()
            return [record_from_row(row, self._card_for) for row in rows]

    def get_run(self, run_id: int) -> RunRecord:
        """The run with this id; StoreError when there is none."""
        found = self._select_runs(f"read run {run_id}", "WHERE run_id = ?", (run_id,))
        if not found:
            raise StoreError(
                f"The results store at {self.path} has no run with id {run_id}. List the runs "
                "in this store, or pass --store PATH if the run lives in another store."
            )
        return found[0]

    def find_completed(
        self, config_hash: str, *, fingerprint: str | None = None
    ) -> RunRecord | None:
        """The latest finished or diverged run with this config hash, or None.

        With a fingerprint, only runs whose recorded model fingerprint equals it count (a run
        without one, e.g. recorded before schema 2, never does).
        """
        marks = ", ".join("?" for _ in COMPLETED_STATUSES)
        where = f"WHERE config_hash = ? AND status IN ({marks})"
        params: tuple = (config_hash, *COMPLETED_STATUSES)
        if fingerprint is not None:
            if self.schema_version < 2:
                return None
            where += " AND model_fingerprint = ?"
            params += (fingerprint,)
        found = self._select_runs(
            "look up earlier runs", f"{where} ORDER BY run_id DESC LIMIT 1", params
        )
        return found[0] if found else None

    def list_runs(
        self, *, status: str | None = None, model: str | None = None, dataset: str | None = None
    ) -> list[RunRecord]:
        """All runs matching the given filters, ordered by run_id."""
        filters = {"status": status, "model": model, "dataset": dataset}
        clauses = [f"{column} = ?" for column, value in filters.items() if value is not None]
        values = tuple(value for value in filters.values() if value is not None)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._select_runs("list runs", f"{where} ORDER BY run_id", values)

    def epochs(self, run_id: int) -> list[dict]:
        """The run's epochs in order, each {"epoch": n, **metrics}; [] for an unknown run."""
        with self._reading(f"read the epochs of run {run_id}") as conn:
            rows = conn.execute(
                "SELECT epoch, metrics_json FROM epochs WHERE run_id = ? ORDER BY epoch",
                (run_id,),
            ).fetchall()
        return [{"epoch": epoch, **loads(metrics)} for epoch, metrics in rows]

    def artefacts(self, run_id: int) -> list[Artefact]:
        """The run's artefacts in the order they were first added; [] for an unknown run."""
        with self._reading(f"read the artefacts of run {run_id}") as conn:
            rows = conn.execute(
                "SELECT run_id, name, kind, content, created_at FROM artefacts "
                "WHERE run_id = ? ORDER BY artefact_id",
                (run_id,),
            ).fetchall()
        return [Artefact(r, n, k, bytes(c), created) for r, n, k, c, created in rows]

    def stored_runs(self, runs: Iterable[RunRecord] | None = None) -> Iterator[StoredRun]:
        """Each run (default: every run that has ended) with its epochs and artefacts."""
        chosen = runs if runs is not None else self.list_runs()
        for run in chosen:
            if runs is None and run.status == "running":
                continue
            yield StoredRun(run, self.epochs(run.run_id), self.artefacts(run.run_id))


def open_existing_store(path: str | Path | None = None, **options: Any) -> Store:
    """The existing store at ``path`` for commands that only read it (report, export, list):
    opened for writing where the file and its folder allow, so interrupted runs can be marked
    and an older schema migrated; read-only where they do not. StoreError when there is none."""
    store_path = Path(path).expanduser() if path is not None else default_store_path()
    if not store_path.exists():
        raise StoreError(
            f"No results store at {store_path}. Run something first (`mnistbench run mlp`), "
            "or point --store at an existing results.sqlite."
        )
    writable = os.access(store_path, os.W_OK) and os.access(store_path.parent, os.W_OK)
    return Store(store_path, read_only=not writable, **options)
