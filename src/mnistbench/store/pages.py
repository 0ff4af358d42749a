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
from mnistbench.store.files import connect_read_only, error_name
from mnistbench.store.schema import create_tables

PAGE_SIZE = 4096  # SQLite's default; mnistbench never changes it, so a new store's page 1 fits
_HEADER_DB_SIZE = slice(28, 32)  # "in-header database size" (pages), big-endian
# The first byte of a b-tree page says what it is: interior/leaf of a table or of an index.
_TABLE_PAGES, _INDEX_PAGES = {0x05, 0x0D}, {0x02, 0x0A}
_SHELL_HINT = (
    "The SQLite shell's own recovery scans every page and may still get rows out: "
    "`sqlite3 DAMAGED.sqlite .recover | sqlite3 NEW.sqlite`."
)


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
        wal = path.with_name(path.name + "-wal")
        if wal.exists():  # recent commits, maybe a good copy of the damaged page
            shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
        # A cut-off file keeps its table list but claims more pages than it has: first try
        # with only the page count in the header corrected, then with a new table list.
        _set_page_count(copy)
        conn = _try_open(copy)
        if conn is None:
            _rebuild_first_page(copy)
            conn = _try_open(copy)
        if conn is None:
            raise StoreError(
                f"The first page of {path}, which lists its tables, is damaged beyond repair, "
                f"so no row can be found. {_SHELL_HINT}"
            )
        try:
            yield conn, True
        finally:
            conn.close()


def _try_open(copy: Path) -> sqlite3.Connection | None:
    conn = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
    try:
        conn.execute("PRAGMA table_info(runs)").fetchall()
    except sqlite3.DatabaseError:
        conn.close()
        return None
    return conn


def _page_size(copy: Path) -> int:
    """The page size the header states, or SQLite's default where the header is damaged."""
    with copy.open("rb") as fh:
        fh.seek(16)
        stated = int.from_bytes(fh.read(2), "big")
    stated = 65536 if stated == 1 else stated  # how the header writes 64 KiB
    is_power_of_two = stated & (stated - 1) == 0
    return stated if 512 <= stated <= 65536 and is_power_of_two else PAGE_SIZE


def _set_page_count(copy: Path) -> None:
    with copy.open("r+b") as fh:
        fh.seek(_HEADER_DB_SIZE.start)
        fh.write((copy.stat().st_size // _page_size(copy)).to_bytes(4, "big"))


def _rebuild_first_page(copy: Path) -> None:
    """Overwrite the copy's first page with a new store's, keeping the copy's size; StoreError
    when the copy's pages are not where a new store's table list says they are."""
    if _page_size(copy) != PAGE_SIZE:
        raise StoreError(
            f"The first page of the store, which lists its tables, is damaged, and the store "
            f"does not use {PAGE_SIZE}-byte pages as mnistbench's do. {_SHELL_HINT}"
        )
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
            if not root or root > size_pages:
                continue  # a table past the end of a cut-off file is lost whatever we do
            fh.seek((root - 1) * PAGE_SIZE)
            page_type = fh.read(1)
            expected = _TABLE_PAGES if kind == "table" else _INDEX_PAGES
            if not page_type or page_type[0] not in expected:
                raise StoreError(
                    f"The first page of the store, which lists its tables, is damaged, and page "
                    f"{root} does not hold the {kind} {name!r} where a store made by mnistbench "
                    f"keeps it, so its rows cannot be found one by one. {_SHELL_HINT}"
                )
        fh.seek(0)
        fh.write(first_page)
