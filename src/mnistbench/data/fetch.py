"""Load a data set's four IDX files, verified, finding (and downloading) them as needed; and
check them for `mnistbench data check`."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from mnistbench.data.catalog import ROLES, DatasetSpec, get_dataset_spec
from mnistbench.data.download import DownloadFailed, download_dataset
from mnistbench.data.idx import read_content, read_idx_bytes
from mnistbench.data.locate import (
    DOWNLOAD_COMMAND,
    ENV_DATA,
    ENV_OFFLINE,
    best_folder,
    check_digest,
    find_file,
    first_complete,
    offline_requested,
    present_files,
    search_dirs,
)
from mnistbench.errors import DataError


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


# ---------------------------------------------------------------------------------------------
# Loading and checking
# ---------------------------------------------------------------------------------------------


def _describe_dirs(dirs: Sequence[Path]) -> str:
    return "; ".join(f"{d}" if d.is_dir() else f"{d} (does not exist)" for d in dirs)


def _not_found_error(spec: DatasetSpec, dirs: Sequence[Path], reason: str) -> DataError:
    best = best_folder(spec, dirs)
    if best is None:
        what = f"none of its files ({', '.join(spec.files[r] for r in ROLES)}) was found"
    else:
        present = present_files(spec, best)
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
    check_digest(path, content, expected_sha256)
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
    folder = first_complete(spec, dirs)
    if folder is None:
        root = Path(data_dir).expanduser() if data_dir is not None else None
        folder = _obtain(spec, dirs, root, download, progress)
    paths = present_files(spec, folder)
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
    folder = first_complete(spec, dirs) or best_folder(spec, dirs)
    where = str(folder) if folder is not None else f"any of: {_describe_dirs(dirs)}"
    checks = []
    for role in ROLES:
        path = find_file(folder, spec.files[role]) if folder is not None else None
        checks.append(_check_one(role, path, spec.sha256[role], where))
    return checks
