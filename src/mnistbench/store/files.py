"""Low-level access to a store's file: SQLite's error names, and connections that cannot write."""

from __future__ import annotations

import sqlite3
import urllib.parse
from pathlib import Path

from mnistbench.errors import StoreError

SQLITE_MAGIC = b"SQLite format 3\x00"
BUSY_TIMEOUT_S = 30.0  # how long a write waits for another process's transaction


def error_name(exc: sqlite3.Error) -> str:
    """SQLite's primary result code name (``SQLITE_FULL``, ``SQLITE_CORRUPT`` ...) of an error.

    Python 3.11+ names the (extended) code; on 3.10 it is inferred from the message.
    """
    name = getattr(exc, "sqlite_errorname", None)
    if name:
        return "_".join(name.split("_")[:2])  # SQLITE_CORRUPT_INDEX -> SQLITE_CORRUPT
    message = str(exc).lower()
    for needle, inferred in (
        ("locked", "SQLITE_BUSY"),
        ("busy", "SQLITE_BUSY"),
        ("disk is full", "SQLITE_FULL"),
        ("readonly", "SQLITE_READONLY"),
        ("read-only", "SQLITE_READONLY"),
        ("unable to open", "SQLITE_CANTOPEN"),
        ("malformed", "SQLITE_CORRUPT"),
        ("not a database", "SQLITE_NOTADB"),
        ("disk i/o error", "SQLITE_IOERR"),
    ):
        if needle in message:
            return inferred
    return "SQLITE_ERROR"


def connect_read_only(path: Path, timeout_s: float = BUSY_TIMEOUT_S) -> sqlite3.Connection:
    """A connection that cannot write to the file at ``path`` (it must exist).

    ``mode=ro`` first: it reads a WAL store's recent commits through its -shm file, creating
    that file when the folder allows. When the -shm file can neither be opened nor created (a
    read-only folder or medium), fall back to ``immutable=1``: SQLite then assumes nothing
    changes the file while it is open, so it takes no locks and never looks at a -wal file. That
    is safe here because no SQLite process can write a file in a folder where it cannot create
    its -shm or -journal file; a -wal file left with commits in it would be ignored, so that
    case is refused instead of read without them.
    """
    uri = "file:" + urllib.parse.quote(str(path.resolve()))
    try:
        return _connect_and_touch(f"{uri}?mode=ro", timeout_s)
    except sqlite3.OperationalError as exc:
        if error_name(exc) != "SQLITE_CANTOPEN":
            raise
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise StoreError(
            f"The results store at {path} has recent commits in {wal.name}, which can only be "
            f"read together with {path.name}-shm, and that file can neither be opened nor "
            "created here (read-only folder?). Copy the store's folder somewhere writable and "
            "open the copy, or make the folder writable."
        )
    return _connect_and_touch(f"{uri}?mode=ro&immutable=1", timeout_s)


def _connect_and_touch(uri: str, timeout_s: float) -> sqlite3.Connection:
    # sqlite3.connect opens lazily; reading the schema makes a file that cannot be opened fail
    # here, where the caller can still choose another way to open it.
    conn = sqlite3.connect(uri, uri=True, timeout=timeout_s, isolation_level=None)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except BaseException:
        conn.close()
        raise
    return conn
