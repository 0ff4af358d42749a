"""Reading a damaged store for recovery, including one whose first page (the list of tables)
is damaged: that page is rebuilt in a scratch copy from a new store's, which lists the same
tables at the same pages because mnistbench always creates them in the same order."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mnistbench.errors import StoreError
from mnistbench.store.schema import create_tables
from mnistbench.store.sqlite import connect_read_only, error_name

PAGE_SIZE = 4096  # SQLite's default; mnistbench never changes it
_HEADER_DB_SIZE = slice(28, 32)  # "in-header database size" (pages), big-endian
# The first byte of a b-tree page says what it is: interior/leaf of a table or of an index.
_TABLE_PAGES, _INDEX_PAGES = {0x05, 0x0D}, {0x02, 0x0A}


@contextmanager
def open_damaged(path: Path, scratch_dir: Path) -> Iterator[tuple[sqlite3.Connection, bool]]:
    """A read-only connection to the store at ``path`` whose tables can be queried, and whether
    its first page had to be rebuilt (in a copy under ``scratch_dir``, removed afterwards)."""
    try:
        conn = connect_read_only(path)
        try:
            conn.execute("PRAGMA table_info(runs)").fetchall()
        except BaseException:
            conn.close()
            raise
    except sqlite3.DatabaseError as exc:
        if error_name(exc) not in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
            raise StoreError(f"Cannot read the results store at {path}: {exc}.") from exc
    else:
        try:
            yield conn, False
        finally:
            conn.close()
        return
    with tempfile.TemporaryDirectory(dir=scratch_dir, prefix=".recover-") as scratch:
        copy = Path(scratch) / path.name
        shutil.copyfile(path, copy)
        _rebuild_first_page(copy)
        conn = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
        try:
            yield conn, True
        finally:
            conn.close()


def _rebuild_first_page(copy: Path) -> None:
    """Overwrite the copy's first page with a new store's, keeping the copy's size; StoreError
    when the copy's pages are not where a new store's table list says they are."""
    with tempfile.TemporaryDirectory() as scratch:
        reference = Path(scratch) / "reference.sqlite"
        conn = sqlite3.connect(reference, isolation_level=None)
        try:
            conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
            conn.execute("BEGIN")
            create_tables(conn)
            conn.execute("COMMIT")
            roots = conn.execute("SELECT type, name, rootpage FROM sqlite_master").fetchall()
        finally:
            conn.close()
        first_page = bytearray(reference.read_bytes()[:PAGE_SIZE])
    size_pages = copy.stat().st_size // PAGE_SIZE
    first_page[_HEADER_DB_SIZE] = size_pages.to_bytes(4, "big")
    with copy.open("r+b") as fh:
        for kind, name, root in roots:
            if not root:
                continue
            fh.seek((root - 1) * PAGE_SIZE)
            page_type = fh.read(1)
            expected = _TABLE_PAGES if kind == "table" else _INDEX_PAGES
            if not page_type or page_type[0] not in expected:
                raise StoreError(
                    f"The first page of the store, which lists its tables, is damaged, and page "
                    f"{root} does not hold the {kind} {name!r} where a store made by mnistbench "
                    "keeps it, so its rows cannot be found one by one. The SQLite shell's "
                    "recovery scans every page and may still get rows out: `sqlite3 DAMAGED "
                    ".recover | sqlite3 NEW.sqlite`."
                )
        fh.seek(0)
        fh.write(first_page)
