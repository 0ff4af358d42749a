"""Download a data set's IDX files from the public mirrors, verified and written atomically."""

from __future__ import annotations

import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from http.client import HTTPException
from pathlib import Path

from tqdm import tqdm

from mnistbench.data.catalog import ROLES, DatasetSpec, get_dataset_spec
from mnistbench.data.idx import read_content
from mnistbench.data.locate import (
    DOWNLOAD_COMMAND,
    ENV_DATA,
    ENV_OFFLINE,
    check_digest,
    default_download_root,
    find_file,
    offline_requested,
    verify_file,
)
from mnistbench.errors import DataError

_CHUNK = 1 << 20  # download read size in bytes; large enough that Python overhead is nil
_USER_AGENT = "mnistbench/0.1 (+urllib)"


class DownloadFailed(DataError):
    """Every mirror failed for one file; keeps the parts so callers can summarise."""

    def __init__(self, filename: str, urls: Sequence[str], last_error: str) -> None:
        self.filename = filename
        self.urls = tuple(urls)
        self.last_error = last_error
        super().__init__(
            f"Could not download {filename}: tried {', '.join(self.urls)} and every attempt "
            f"failed (last error: {last_error}). Check the network connection and proxy "
            f"settings and retry `{DOWNLOAD_COMMAND}`, or copy the four files by hand into a "
            f"folder and point --data-dir or {ENV_DATA} at it."
        )

    @property
    def summary(self) -> str:
        """One sentence for embedding in a larger message."""
        return f"downloading {self.filename} failed (last error: {self.last_error})"


# ---------------------------------------------------------------------------------------------
# Download
# ---------------------------------------------------------------------------------------------


def _offline_error(spec: DatasetSpec, filenames: Sequence[str], folder: Path) -> DataError:
    return DataError(
        f"{ENV_OFFLINE} is set, so mnistbench will not download {', '.join(filenames)} of "
        f"{spec.display_name} into {folder}. Point --data-dir DIR or {ENV_DATA}=DIR at local "
        f"copies (DIR holding {spec.name}/ with the four IDX files), or unset {ENV_OFFLINE} on "
        f"a machine with network access and run `{DOWNLOAD_COMMAND}`."
    )


def _is_intact(folder: Path, filename: str, expected_sha256: str) -> bool:
    path = find_file(folder, filename)
    if path is None:
        return False
    try:
        verify_file(path, expected_sha256)
    except DataError:
        return False
    return True


def _fetch_url(url: str, dest: Path, timeout_s: float, show_progress: bool, desc: str) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout_s) as response, dest.open("wb") as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        received = 0
        with tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=desc,
            disable=not show_progress,
            leave=False,
        ) as bar:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if total is not None and received != total:
        raise OSError(f"connection closed after {received} of {total} bytes")


def _download_file(
    urls: Sequence[str],
    dest: Path,
    expected_sha256: str,
    *,
    show_progress: bool,
    retries: int,
    timeout_s: float,
    backoff_s: float,
) -> None:
    last_error = "no mirror was tried"
    for attempt in range(max(1, retries)):
        if attempt:
            time.sleep(backoff_s * 2 ** (attempt - 1))
        for url in urls:
            # Same folder as the destination so os.replace is an atomic rename, never a copy.
            fd, tmp_name = tempfile.mkstemp(
                prefix=f".{dest.name}.", suffix=".part", dir=dest.parent
            )
            os.close(fd)
            tmp = Path(tmp_name)
            try:
                _fetch_url(url, tmp, timeout_s, show_progress, dest.name)
                check_digest(tmp, read_content(tmp), expected_sha256)
                os.replace(tmp, dest)
                return
            # ValueError: a malformed mirror URL, reported like any other failed mirror.
            except (urllib.error.URLError, HTTPException, OSError, ValueError, DataError) as exc:
                reason = getattr(exc, "reason", None) or exc
                last_error = f"{url}: {type(exc).__name__}: {reason}"
            finally:
                tmp.unlink(missing_ok=True)
    raise DownloadFailed(dest.name, urls, last_error)


def download_dataset(
    name: str,
    root: Path | None = None,
    progress: bool = True,
    mirrors: Sequence[str] | None = None,
    retries: int = 3,
    timeout_s: float = 30,
    backoff_s: float = 1.0,
) -> Path:
    """Download the missing or corrupt files of `name` into `<root>/<name>` and return that folder.

    `root` defaults to $MNISTBENCH_DATA, else the user cache. Each file is tried on every mirror
    in turn, for `retries` rounds with exponential backoff (`backoff_s`, doubling) between rounds;
    it is written to a temporary file beside its destination, verified by the SHA-256 of its
    decompressed content, then renamed into place. With MNISTBENCH_OFFLINE=1 nothing is fetched
    and DataError is raised if anything is missing.
    """
    spec = get_dataset_spec(name)
    folder = (Path(root).expanduser() if root is not None else default_download_root()) / spec.name
    todo = [r for r in ROLES if not _is_intact(folder, spec.files[r], spec.sha256[r])]
    if not todo:
        return folder
    if offline_requested():
        raise _offline_error(spec, [spec.files[r] for r in todo], folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"Cannot create the download folder {folder}: {exc.strerror or exc}. Pick a writable "
            f"root with --data-dir or {ENV_DATA}, or fix the folder's permissions."
        ) from exc
    bases = tuple(mirrors) if mirrors is not None else spec.mirrors
    show_progress = progress and sys.stderr.isatty()
    for role in todo:
        filename = spec.files[role]
        _download_file(
            [base.rstrip("/") + "/" + filename for base in bases],
            folder / filename,
            spec.sha256[role],
            show_progress=show_progress,
            retries=retries,
            timeout_s=timeout_s,
            backoff_s=backoff_s,
        )
    return folder
