"""Where a data set's IDX files are looked for, in order, and how a file's content is verified.

Lookup order and messages are written for machines without network access: every failure says
which folders were searched and how to point mnistbench at local copies.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from mnistbench.data.catalog import DATASETS, ROLES, DatasetSpec, get_dataset_spec
from mnistbench.data.idx import read_content
from mnistbench.errors import DataError

ENV_DATA = "MNISTBENCH_DATA"
ENV_OFFLINE = "MNISTBENCH_OFFLINE"
DOWNLOAD_COMMAND = "mnistbench data download"


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


def present_files(spec: DatasetSpec, folder: Path) -> dict[str, Path]:
    found = {role: find_file(folder, spec.files[role]) for role in ROLES}
    return {role: path for role, path in found.items() if path is not None}


def first_complete(spec: DatasetSpec, dirs: Sequence[Path]) -> Path | None:
    return next((d for d in dirs if len(present_files(spec, d)) == len(ROLES)), None)


def locate_dataset(name: str, data_dir: str | Path | None = None) -> Path | None:
    """The first folder among `search_dirs` that holds all four files, or None."""
    spec = get_dataset_spec(name)
    return first_complete(spec, search_dirs(spec.name, data_dir))


def best_folder(spec: DatasetSpec, dirs: Sequence[Path]) -> Path | None:
    # The folder with the most files (the first on ties): where a partial copy most likely is.
    counts = [(len(present_files(spec, d)), -i, d) for i, d in enumerate(dirs)]
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


def check_digest(path: Path, content: bytes, expected_sha256: str) -> None:
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
    check_digest(path, read_content(path), expected_sha256)
