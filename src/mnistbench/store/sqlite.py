"""Opening the store's SQLite file safely: path checks, read-only opening, the integrity check on
open, WAL, schema creation and migration, and SQLite errors turned into one-paragraph StoreErrors.

Several mnistbench processes may write to the same store at once; each write is one transaction.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TypeVar

from mnistbench.errors import StoreCorruptError, StoreError, StoreFullError
from mnistbench.store.files import BUSY_TIMEOUT_S, SQLITE_MAGIC, connect_read_only, error_name
from mnistbench.store.records import default_store_path, dumps
from mnistbench.store.schema import (
    SCHEMA_VERSION,
    STORE_FORMAT,
    CardBuilder,
    build_card,
    create_tables,
    default_card_builder,
    migrate,
)

_UNRESOLVED = object()  # the default card builder has not been looked up yet
_Self = TypeVar("_Self", bound="Database")
# Errors in how the code calls SQLite (a value it cannot bind, a closed cursor): bugs to show as
# they are, never to be reported as a problem with the user's disk or file.
_CALLER_BUGS = (sqlite3.ProgrammingError, sqlite3.InterfaceError)


class Database:
    """One open SQLite connection to a results store, with its checks, transactions and error
    messages; ``Store`` adds the runs API on top."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        timeout_s: float = BUSY_TIMEOUT_S,
        read_only: bool = False,
        card_builder: CardBuilder | None = None,
    ) -> None:
        self.path = Path(path).expanduser() if path is not None else default_store_path()
        self.timeout_s = timeout_s
        self.read_only = read_only
        self.schema_version = SCHEMA_VERSION  # the schema the file has (read-only: may be older)
        self._card_builder: object = card_builder if card_builder is not None else _UNRESOLVED
        self._cards: dict[str, dict] = {}  # cards built for runs without one, by config JSON
        self._conn: sqlite3.Connection | None = None
        self._conn = self._open_read_only() if read_only else self._open()

    # ----------------------------------------------------------------- opening

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
            self._quick_check(conn)
            version = self._inspect(conn)
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                self._enable_wal(conn)
            if version is None:
                with self._transaction("create its tables", conn):
                    # Another process may have created the store since we looked.
                    if self._inspect(conn) is None:
                        create_tables(conn)
            elif version < SCHEMA_VERSION:
                action = f"update it from schema {version} to {SCHEMA_VERSION}"
                with self._transaction(action, conn):
                    current = self._inspect(conn)  # another process may have migrated it
                    if current is not None and current < SCHEMA_VERSION:
                        migrate(conn, current, self._card_for)
        except sqlite3.Error as exc:
            conn.close()
            raise self._translate_error(exc, "open it") from exc
        except BaseException:  # StoreError, or Ctrl-C while waiting for the lock
            conn.close()
            raise
        return conn

    def _open_read_only(self) -> sqlite3.Connection:
        self._check_existing_file()
        try:
            conn = connect_read_only(self.path, self.timeout_s)
        except sqlite3.Error as exc:
            raise self._translate_error(exc, "open it read-only") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")
            conn.execute("PRAGMA query_only = ON")  # belt and braces: the URI is already ro
            self._quick_check(conn)
            version = self._inspect(conn)
            if version is None:
                raise StoreError(
                    f"{self.path} holds no mnistbench results (an empty database). Pass --store "
                    "PATH to an existing results store."
                )
            self.schema_version = version  # an older schema is read as if migrated
        except sqlite3.Error as exc:
            conn.close()
            raise self._translate_error(exc, "open it read-only") from exc
        except BaseException:
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
            self._check_existing_file()
            # SQLite would open an unwritable file read-only without a word and fail at the
            # first write; say so now. (access() honours read-only mounts and immutable files
            # even for root.)
            if not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
                raise StoreError(
                    f"The results store at {path} is not writable (the file or its folder is "
                    "read-only), so mnistbench cannot record runs in it. Reading commands "
                    "(report, export, list) open it read-only; to record runs, make the file "
                    "and its folder writable or pass --store PATH to a writable location."
                )
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"Cannot create the folder {path.parent} for the results store {path}: "
                f"{exc.strerror or exc}. Pass --store PATH to a writable location."
            ) from exc

    def _check_existing_file(self) -> None:
        path = self.path
        if not path.exists():
            raise StoreError(
                f"No results store at {path}. Run something first (`mnistbench run mlp`), or "
                "pass --store PATH to an existing results store."
            )
        if path.is_dir() or not path.is_file():
            raise StoreError(
                f"The results store path {path} exists but is not a regular file. Pass "
                "--store PATH to a regular file or a new file name."
            )
        try:
            with path.open("rb") as fh:
                header = fh.read(len(SQLITE_MAGIC))
        except OSError as exc:
            raise StoreError(
                f"Cannot read the results store at {path}: {exc.strerror or exc}. Fix its "
                "permissions, or pass --store PATH to a readable location."
            ) from exc
        # An empty file is fine: SQLite treats it as a new database.
        if header and header != SQLITE_MAGIC:
            raise StoreError(
                f"{path} exists but is not a SQLite database, so it cannot be the results "
                "store; it was left untouched. Move it away, or pass --store PATH to a new "
                "or existing mnistbench store."
            )

    def _quick_check(self, conn: sqlite3.Connection) -> None:
        """Refuse a damaged file before reading or writing it.

        quick_check reads every page and checks each b-tree's structure (not that indexes
        match their tables, which integrity_check in ``check_store`` adds): a corrupt inner
        page, which plain reads may step around for a long time, is found at once.
        """
        try:
            problems = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
        except sqlite3.DatabaseError as exc:
            if error_name(exc) not in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
                raise
            problems = [str(exc)]
        if problems != ["ok"]:
            raise self._corrupt_error("open it", "; ".join(problems))

    def _inspect(self, conn: sqlite3.Connection) -> int | None:
        """The schema version (None: empty database); StoreError for a foreign or newer file."""
        # All reads in one transaction: separate statements could straddle another process's
        # schema creation and see a half-made store as a foreign database.
        own_transaction = not conn.in_transaction
        try:  # BEGIN inside: a signal just after it still reaches the COMMIT below
            if own_transaction:
                conn.execute("BEGIN")
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
                if error_name(exc) != "SQLITE_BUSY" or time.monotonic() > deadline:
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
        except sqlite3.OperationalError:
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
        return version

    @staticmethod
    def _has_foreign_tables(conn: sqlite3.Connection) -> bool:
        row = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchone()
        return row is not None

    def _card_for(self, config: dict) -> dict:
        """The card of a run recorded without one (built once per distinct config)."""
        if self._card_builder is _UNRESOLVED:
            self._card_builder = default_card_builder()
        key = dumps(config)
        if key not in self._cards:
            self._cards[key] = build_card(config, self._card_builder)  # type: ignore[arg-type]
        return self._cards[key]

    # ----------------------------------------------------------------- closing

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ----------------------------------------------------------------- errors and transactions

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"The results store at {self.path} has already been closed.")
        return self._conn

    def _corrupt_error(self, action: str, detail: str) -> StoreCorruptError:
        return StoreCorruptError(
            f"The results store at {self.path} is damaged ({detail}), so mnistbench did not "
            f"{action}; the file was left as it is. Run `mnistbench store check --store "
            f"{self.path}` to see what is wrong, and `mnistbench store recover --store "
            f"{self.path} --out NEW.sqlite` to copy every readable run into a new store."
        )

    def _translate_error(self, exc: sqlite3.Error, action: str) -> StoreError:
        name = error_name(exc)
        if name in ("SQLITE_BUSY", "SQLITE_LOCKED"):
            return StoreError(
                f"The results store at {self.path} stayed locked by another process for more "
                f"than {self.timeout_s:g} s, so mnistbench could not {action}. Wait for the "
                "other mnistbench process to finish, or pass --store PATH to use a separate store."
            )
        if name == "SQLITE_FULL":
            return StoreFullError(
                f"The disk holding the results store at {self.path} is full, so mnistbench could "
                f"not {action}. Nothing of this write was kept: the store is as it was before "
                "it, and every run recorded earlier is intact. Free some disk space and run the "
                "same command again; runs already finished are not trained again."
            )
        if name in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
            return self._corrupt_error(action, str(exc))
        if name in ("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM"):
            return StoreError(
                f"The results store at {self.path} is not writable, so mnistbench could not "
                f"{action} ({exc}). Make the file and its folder writable, or pass --store PATH "
                "to a writable location."
            )
        return StoreError(
            f"The results store at {self.path} failed while trying to {action}: {exc}. Check "
            f"the disk, and run `mnistbench store check --store {self.path}`; or pass --store "
            "PATH to use another store."
        )

    def _require_writable(self, action: str) -> None:
        if self.read_only:
            raise StoreError(
                f"The results store at {self.path} was opened read-only, so mnistbench could "
                f"not {action}. Open it for writing (the file and its folder must be writable), "
                "or pass --store PATH to a writable store."
            )

    @contextmanager
    def _reading(self, action: str) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        try:
            yield conn
        except _CALLER_BUGS:
            raise
        except sqlite3.Error as exc:
            raise self._translate_error(exc, action) from exc

    @contextmanager
    def _transaction(
        self, action: str, conn: sqlite3.Connection | None = None
    ) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it is kept or none of it (disk full, Ctrl-C, error).

        BEGIN IMMEDIATE takes the write lock up front so that a concurrent writer waits on
        busy_timeout instead of failing mid-transaction."""
        self._require_writable(action)
        conn = conn if conn is not None else self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            # One handler around BEGIN, the body and COMMIT: a Ctrl-C or SIGTERM (raised as
            # KeyboardInterrupt between any two bytecodes) just after BEGIN or just before
            # COMMIT must roll back too, or the connection stays inside the transaction and
            # the next write, recording the run as interrupted, fails "cannot start a
            # transaction within a transaction".
            if conn.in_transaction:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error) and not isinstance(exc, _CALLER_BUGS):
                raise self._translate_error(exc, action) from exc
            raise
