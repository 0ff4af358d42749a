"""Kept weights: files beside the store, each named by the SHA-256 of its bytes.

A run's record holds `weights_sha256`, `weights_format` and `weights_bytes` (metrics); the file
is `<store folder>/weights/<sha256>.<extension>`. Content addressing makes a file its own
checksum: a file whose bytes no longer hash to its name was changed after it was written, and
is refused on every read (`read_weights`) and reported by `mnistbench store check`. This module
moves bytes only; what is inside (safetensors, the SVC's arrays, LightGBM's text model) and how
it loads without unpickling is models/weights.py.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mnistbench.errors import StoreError

WEIGHTS_FOLDER = "weights"  # beside the store's SQLite file
# The file extension of each format (the name without it is the hash; the extension only helps
# a person who lists the folder). Formats: models/weights.py.
EXTENSIONS = {
    "safetensors": "safetensors",
    "safetensors-lightgbm-text": "safetensors",
    "svc-npz": "npz",
}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class WeightsError(StoreError):
    """A kept weights file is missing, changed since it was written, or not what the run says."""


@dataclass(frozen=True)
class WeightsRef:
    """Where a run's weights are, as its metrics record them."""

    sha256: str
    format: str
    bytes: int

    @classmethod
    def of_metrics(cls, metrics: dict, run_id: int | None = None) -> WeightsRef | None:
        """The run's reference from its metrics; None when it kept no weights. Values from a
        merged file are checked here (a hash that is not 64 hex digits could name any path)."""
        sha, form, size = (
            metrics.get(k) for k in ("weights_sha256", "weights_format", "weights_bytes")
        )
        if sha is None:
            return None
        which = f"run {run_id}" if run_id is not None else "this run"
        if not isinstance(sha, str) or not _SHA256.match(sha):
            raise WeightsError(
                f"The record of {which} names its weights by {sha!r}, which is not a SHA-256 "
                "(64 lowercase hex digits). The record was changed by hand or by a faulty "
                "merge; train the run again to keep its weights."
            )
        if form not in EXTENSIONS:
            raise WeightsError(
                f"The record of {which} says its weights are in format {form!r}; known formats: "
                f"{', '.join(EXTENSIONS)}. Use a newer mnistbench, or train the run again."
            )
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise WeightsError(f"The record of {which} gives weights_bytes {size!r}; not a size.")
        return cls(sha, form, size)

    def file_name(self) -> str:
        return f"{self.sha256}.{EXTENSIONS[self.format]}"


def weights_dir(store_path: str | Path) -> Path:
    """The folder of kept weights of the store at `store_path`."""
    return Path(store_path).expanduser().parent / WEIGHTS_FOLDER


def sha256_of(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def write_weights(store_path: str | Path, form: str, content: bytes) -> WeightsRef:
    """Write `content` under its hash (a file already there with that name is the same bytes,
    so it is kept); returns the reference the run's metrics record. Written to a temporary
    file and renamed, so a crash never leaves a half-written file under a valid name."""
    if form not in EXTENSIONS:
        raise ValueError(f"unknown weights format {form!r}")
    ref = WeightsRef(sha256_of(content), form, len(content))
    folder = weights_dir(store_path)
    target = folder / ref.file_name()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if target.exists() and sha256_of(target.read_bytes()) == ref.sha256:
            return ref
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".incoming-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(content)
            os.chmod(temporary, 0o644)  # mkstemp makes it private; a store's files are not
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as error:
        raise WeightsError(
            f"Could not write the run's weights to {target}: {error.strerror or error}. Free "
            "some disk space or make the folder writable, or pass --no-weights to keep none."
        ) from error
    return ref


def weights_path(store_path: str | Path, ref: WeightsRef) -> Path:
    return weights_dir(store_path) / ref.file_name()


def read_weights(store_path: str | Path, ref: WeightsRef, run_id: int | None = None) -> bytes:
    """The bytes of a run's weights, verified against the hash in its record (WeightsError when
    the file is missing or its bytes do not hash to it: nothing unverified is ever loaded)."""
    path = weights_path(store_path, ref)
    which = f"run {run_id}" if run_id is not None else "the run"
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise WeightsError(
            f"The weights of {which} are not at {path}. They are kept beside the store they "
            "were trained into; a store merged or exported without --with-weights has the "
            "record only. Copy the file there (merge/export --with-weights), or train again."
        ) from None
    except OSError as error:
        raise WeightsError(f"Could not read the weights of {which} at {path}: {error}.") from error
    actual = sha256_of(content)
    if actual != ref.sha256:
        raise WeightsError(
            f"The weights file of {which} at {path} has changed since it was written: its "
            f"SHA-256 is {actual}, the record says {ref.sha256}. It is refused (a changed "
            "file may be damaged or replaced). Delete it and copy the original back, or train "
            "the run again."
        )
    return content


@dataclass
class WeightsCheck:
    """What `check_weights` found: files whose hash matched, missing ones, and changed ones."""

    verified: int = 0
    missing: list[str] | None = None
    changed: list[str] | None = None

    def lines(self) -> list[str]:
        out = [f"weights: {self.verified} file(s) verified by SHA-256"]
        out += [f"weights: missing {m}" for m in self.missing or []]
        out += [f"weights: CHANGED {c}" for c in self.changed or []]
        return out

    @property
    def ok(self) -> bool:
        return not self.missing and not self.changed


def check_weights(store_path: str | Path, refs: list[tuple[int, WeightsRef]]) -> WeightsCheck:
    """Hash every file the runs name (`(run_id, ref)` pairs) against its name and record."""
    result = WeightsCheck(missing=[], changed=[])
    for run_id, ref in refs:
        path = weights_path(store_path, ref)
        if not path.exists():
            result.missing.append(f"run {run_id}: {path}")  # type: ignore[union-attr]
            continue
        if sha256_of(path.read_bytes()) != ref.sha256:
            result.changed.append(f"run {run_id}: {path}")  # type: ignore[union-attr]
        else:
            result.verified += 1
    return result


def copy_weights(
    source_store: str | Path, target_store: str | Path, refs: list[tuple[int, WeightsRef]]
) -> tuple[int, list[str]]:
    """Copy the weights files `refs` name from beside `source_store` (a store, or a JSON-lines
    export: both keep them in the `weights/` folder beside the file) to beside `target_store`,
    each verified by its hash on the way (a changed file raises WeightsError and nothing of it
    is written). Returns (files copied or already there, runs whose file the source lacks)."""
    copied, missing = 0, []
    for run_id, ref in refs:
        if not weights_path(source_store, ref).exists():
            missing.append(f"run {run_id}: {weights_path(source_store, ref)}")
            continue
        write_weights(target_store, ref.format, read_weights(source_store, ref, run_id))
        copied += 1
    return copied, missing
