"""Find, verify, download and load the raw IDX files of a data set.

Lookup order and error messages are written for machines without network access: every
failure says which folders were searched and how to point mnistbench at local copies.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import Literal

import torch
from tqdm import tqdm

from mnistbench.data.catalog import DATASETS, ROLES, DatasetSpec, get_dataset_spec
from mnistbench.data.idx import read_content, read_idx_bytes
from mnistbench.errors import DataError

ENV_DATA = "MNISTBENCH_DATA"
ENV_OFFLINE = "MNISTBENCH_OFFLINE"
DOWNLOAD_COMMAND = "mnistbench data download"
_CHUNK = 1 << 20  # download read size in bytes; large enough that Python overhead is nil
_USER_AGENT = "mnistbench/0.1 (+urllib)"


@dataclass
class RawDataset:
    """The four arrays of a data set as stored, plus the folder they came from."""

    name: str
    train_images: torch.Tensor  # (60000, 28, 28) uint8
    train_labels: torch.Tensor  # (60000,) int64
    test_images: torch.Tensor  # (10000, 28, 28) uint8
    test_labels: torch.Tensor  # (10000,) int64
    source_dir: Path


@dataclass
class FileCheck:
    """Result of checking one file of a data set, for `mnistbench data check`."""

    role: str  # one of catalog.ROLES
    path: Path | None  # None when the file was not found
    status: Literal["ok", "missing", "corrupt"]
    detail: str


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
# Where to look
# ---------------------------------------------------------------------------------------------


def offline_requested() -> bool:
    """True when MNISTBENCH_OFFLINE asks mnistbench never to touch the network."""
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in {"1", "true", "yes", "on"}


def cache_root() -> Path:
    """The per-user download folder: ${XDG_CACHE_HOME:-~/.cache}/mnistbench."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "mnistbench"


def env_data_root() -> Path | None:
    """The folder named by MNISTBENCH_DATA, if set (relative paths are taken from the cwd)."""
    value = os.environ.get(ENV_DATA, "").strip()
    return Path(value).expanduser() if value else None


def default_download_root() -> Path:
    """Where `download_dataset` puts files when no root is given."""
    return env_data_root() or cache_root()


def _root_candidates(root: Path, name: str) -> list[Path]:
    # A root may also be a dataset folder itself; but a folder named after a *different* known
    # dataset (--data-dir ~/data/mnist while loading fashion-mnist) is never a match.
    own = [root / name]
    if root.name == name or root.name not in DATASETS:
        own.append(root)
    return own


def search_dirs(name: str, data_dir: str | Path | None) -> list[Path]:
    """The folders that may hold dataset `name`, in lookup order (they need not exist).

    Order: `<data_dir>/<name>` and `<data_dir>`; `$MNISTBENCH_DATA/<name>` and
    `$MNISTBENCH_DATA`; `${XDG_CACHE_HOME:-~/.cache}/mnistbench/<name>`; then folders that a
    distribution package installs to (Fashion-MNIST: /usr/share/datasets/fashion-mnist).
    A `data_dir` that was given but does not exist raises DataError.
    """
    spec = get_dataset_spec(name)
    candidates: list[Path] = []
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        if not root.is_dir():
            raise DataError(
                f"--data-dir {root} does not exist or is not a folder. Point --data-dir or "
                f"{ENV_DATA} at a folder holding {spec.name}/ with the four IDX files "
                f"({', '.join(spec.files[r] for r in ROLES)}), or drop --data-dir to use the "
                f"download cache at {cache_root()}."
            )
        candidates += _root_candidates(root, spec.name)
    env_root = env_data_root()
    if env_root is not None:
        candidates += _root_candidates(env_root, spec.name)
    candidates.append(cache_root() / spec.name)
    candidates += [Path(d) for d in spec.system_dirs]
    return list(dict.fromkeys(candidates))  # drop repeats, keep order


def find_file(folder: Path, filename: str) -> Path | None:
    """`folder/filename` if present, else its decompressed twin (name without .gz), else None."""
    for candidate in (filename, filename.removesuffix(".gz")):
        path = folder / candidate
        if path.is_file():
            return path
    return None


def _present(spec: DatasetSpec, folder: Path) -> dict[str, Path]:
    found = {role: find_file(folder, spec.files[role]) for role in ROLES}
    return {role: path for role, path in found.items() if path is not None}


def _first_complete(spec: DatasetSpec, dirs: Sequence[Path]) -> Path | None:
    return next((d for d in dirs if len(_present(spec, d)) == len(ROLES)), None)


def locate_dataset(name: str, data_dir: str | Path | None = None) -> Path | None:
    """The first folder among `search_dirs` that holds all four files, or None."""
    spec = get_dataset_spec(name)
    return _first_complete(spec, search_dirs(spec.name, data_dir))


def _best_folder(spec: DatasetSpec, dirs: Sequence[Path]) -> Path | None:
    # The folder with the most files (the first on ties): where a partial copy most likely is.
    counts = [(len(_present(spec, d)), -i, d) for i, d in enumerate(dirs)]
    best = max(counts, default=(0, 0, None))
    return best[2] if best[0] > 0 else None


# ---------------------------------------------------------------------------------------------
# Verification
# ---------------------------------------------------------------------------------------------


def _known_content(digest: str) -> str | None:
    for spec in DATASETS.values():
        for role, expected in spec.sha256.items():
            if expected == digest:
                return f"{spec.name} {role.replace('_', ' ')}"
    return None


def _check_digest(path: Path, content: bytes, expected_sha256: str) -> None:
    actual = hashlib.sha256(content).hexdigest()
    if actual == expected_sha256.lower():
        return
    known = _known_content(actual)
    what = f" That content is the {known} file, so it is in the wrong folder." if known else ""
    raise DataError(
        f"{path} has the wrong content: SHA-256 of its decompressed bytes is {actual}, "
        f"expected {expected_sha256}.{what} Delete it and download it again with "
        f"`{DOWNLOAD_COMMAND}`, or copy an intact version in its place."
    )


def verify_file(path: Path, expected_sha256: str) -> None:
    """Raise DataError unless the decompressed content of `path` has `expected_sha256`."""
    path = Path(path)
    _check_digest(path, read_content(path), expected_sha256)


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
                _check_digest(tmp, read_content(tmp), expected_sha256)
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


# ---------------------------------------------------------------------------------------------
# Loading and checking
# ---------------------------------------------------------------------------------------------


def _describe_dirs(dirs: Sequence[Path]) -> str:
    return "; ".join(f"{d}" if d.is_dir() else f"{d} (does not exist)" for d in dirs)


def _not_found_error(spec: DatasetSpec, dirs: Sequence[Path], reason: str) -> DataError:
    best = _best_folder(spec, dirs)
    if best is None:
        what = f"none of its files ({', '.join(spec.files[r] for r in ROLES)}) was found"
    else:
        present = _present(spec, best)
        missing = [spec.files[r] for r in ROLES if r not in present]
        what = (
            f"{best} holds only {len(present)} of the 4 files; missing there: {', '.join(missing)}"
        )
    return DataError(
        f"{spec.display_name} data not found: {what}. Searched, in order: {_describe_dirs(dirs)}. "
        f"{reason} To use local copies, pass --data-dir DIR or set {ENV_DATA}=DIR, where DIR "
        f"holds mnist/ and/or fashion-mnist/ with the four IDX files (gzip or decompressed); "
        f"on a machine with network access, run `{DOWNLOAD_COMMAND}`."
    )


def _obtain(
    spec: DatasetSpec, dirs: Sequence[Path], data_dir: Path | None, download: bool, progress: bool
) -> Path:
    if not download:
        raise _not_found_error(spec, dirs, "Downloading was not attempted (download disabled).")
    if offline_requested():
        raise _not_found_error(
            spec, dirs, f"Downloading was not attempted because {ENV_OFFLINE} is set."
        )
    try:
        return download_dataset(spec.name, root=data_dir, progress=progress)
    except DownloadFailed as exc:
        raise _not_found_error(spec, dirs, f"Then {exc.summary}.") from exc
    except DataError as exc:
        raise _not_found_error(spec, dirs, f"Then downloading failed: {exc}") from exc


def _read_verified(path: Path, expected_sha256: str) -> torch.Tensor:
    content = read_content(path)  # decompressed once; hashed and parsed from the same bytes
    _check_digest(path, content, expected_sha256)
    return read_idx_bytes(content, path)


def _check_shapes(spec: DatasetSpec, arrays: dict[str, torch.Tensor], folder: Path) -> None:
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        ok = images.ndim == 3 and labels.ndim == 1 and len(images) == len(labels)
        if ok and len(labels):
            ok = int(labels.min()) >= 0 and int(labels.max()) < spec.num_classes
        if not ok:
            raise DataError(
                f"The {split} files in {folder} do not fit together: images "
                f"{tuple(images.shape)}, labels {tuple(labels.shape)} with values expected in "
                f"0..{spec.num_classes - 1}. They are probably from different data sets; replace "
                f"them with a matching set (`{DOWNLOAD_COMMAND}`)."
            )


def load_dataset(
    name: str, data_dir: str | Path | None = None, download: bool = True, progress: bool = True
) -> RawDataset:
    """Locate (downloading if allowed), verify and parse the four files of dataset `name`.

    Every file's decompressed content is checked against the catalog's SHA-256 before use.
    Raises ConfigError for an unknown name and one DataError for anything wrong with the files.
    """
    spec = get_dataset_spec(name)
    dirs = search_dirs(spec.name, data_dir)
    folder = _first_complete(spec, dirs)
    if folder is None:
        root = Path(data_dir).expanduser() if data_dir is not None else None
        folder = _obtain(spec, dirs, root, download, progress)
    paths = _present(spec, folder)
    # Serial on purpose: decoding the four files in threads measured no faster on 2 cores.
    arrays = {role: _read_verified(paths[role], spec.sha256[role]) for role in ROLES}
    _check_shapes(spec, arrays, folder)
    return RawDataset(
        name=spec.name,
        train_images=arrays["train_images"],
        train_labels=arrays["train_labels"].long(),
        test_images=arrays["test_images"],
        test_labels=arrays["test_labels"].long(),
        source_dir=folder,
    )


def _check_one(role: str, path: Path | None, expected_sha256: str, where: str) -> FileCheck:
    if path is None:
        return FileCheck(role, None, "missing", f"not found in {where}")
    try:
        content = read_content(path)
    except DataError as exc:
        cause = exc.__cause__ or exc
        return FileCheck(role, path, "corrupt", f"cannot be read or decompressed: {cause}")
    actual = hashlib.sha256(content).hexdigest()
    if actual != expected_sha256.lower():
        return FileCheck(
            role, path, "corrupt", f"SHA-256 {actual} does not match expected {expected_sha256}"
        )
    return FileCheck(role, path, "ok", f"SHA-256 {actual[:16]}… matches")


def check_dataset(name: str, data_dir: str | Path | None = None) -> list[FileCheck]:
    """Check each file of `name` in the folder holding most of them; never raises for bad files.

    Raises DataError only for an explicit `data_dir` that does not exist.
    """
    spec = get_dataset_spec(name)
    dirs = search_dirs(spec.name, data_dir)
    folder = _first_complete(spec, dirs) or _best_folder(spec, dirs)
    where = str(folder) if folder is not None else f"any of: {_describe_dirs(dirs)}"
    checks = []
    for role in ROLES:
        path = find_file(folder, spec.files[role]) if folder is not None else None
        checks.append(_check_one(role, path, spec.sha256[role], where))
    return checks
