"""MNIST-C's 15 corruptions (Mu & Gilmer 2019, arXiv:1906.02337), generated from a test set.

The static MNIST-C data set cannot be downloaded here, so we generate it from the clean test set
with the parameters of the authors' public code (github.com/google-research/mnist-c,
`corruptions.py`): for each corruption the severity their `corrupt` function uses by default,
which is the one that built the published data set. Everything is re-implemented in numpy and
scipy.ndimage (their code needs scikit-image, ImageMagick through Wand, OpenCV and PIL); the same
corruptions apply to Fashion-MNIST (28x28 uint8 too). Each image gets its own random draws from
one numpy Generator seeded by (seed, corruption), so a seed gives the same images on every run,
but not the images of the published MNIST-C (their code drew from numpy's global random state).

How each one follows theirs is written beside its code, in data/corruption_generators.py.

`corrupted_test_set` caches the result as an .npy file (loaded with allow_pickle=False) whose
name holds the input's SHA-256, the corruption, the seed, the generator version and the file's
own SHA-256, which is checked every time it is loaded.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from mnistbench.data.corruption_generators import GENERATORS, SIZE
from mnistbench.errors import ConfigError, DataError

# The 15 of MNIST-C in the paper's order, which is also the authors' CORRUPTIONS list.
CORRUPTION_NAMES: tuple[str, ...] = tuple(GENERATORS)

# Bump when any corruption's output for a given (input, seed) changes: it is part of the cache
# file name, so old caches are never read as new ones.
GENERATOR_VERSION = 1


def check_corruption_name(name: str) -> str:
    """Return `name` if it is one of CORRUPTION_NAMES; otherwise raise ConfigError naming the
    closest ones."""
    if name in GENERATORS:
        return name
    close = difflib.get_close_matches(str(name).lower(), CORRUPTION_NAMES, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ConfigError(
        f"Unknown corruption {name!r}.{hint} The MNIST-C corruptions are: "
        f"{', '.join(CORRUPTION_NAMES)}. Pass one of these names (they are case-sensitive)."
    )


def _as_uint8_array(images: torch.Tensor | np.ndarray) -> np.ndarray:
    array = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else images
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8:
        raise ValueError(f"corruptions take uint8 images, not {getattr(array, 'dtype', array)}")
    if array.ndim != 3 or array.shape[1:] != (SIZE, SIZE):
        raise ValueError(f"corruptions take (N, 28, 28) images, not {tuple(array.shape)}")
    return np.ascontiguousarray(array)


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"A corruption seed must be a non-negative integer, not {seed!r}.")
    return int(seed)


def corrupt(images: torch.Tensor, name: str, seed: int) -> torch.Tensor:
    """MNIST-C corruption `name` of uint8 (N, 28, 28) images, as uint8 (N, 28, 28).

    The same images, name and seed give the same result; different corruptions draw from
    independent streams of the same seed. Each image gets its own draws, but which draws depends
    on its position in the batch, so corrupt a whole test set in one call.
    """
    check_corruption_name(name)
    seed = _check_seed(seed)
    array = _as_uint8_array(images)
    if array.shape[0] == 0:
        return torch.from_numpy(array.copy())
    rng = np.random.default_rng([seed, CORRUPTION_NAMES.index(name)])
    out = GENERATORS[name](array.astype(np.float64) / 255, rng)
    # Their pipeline: clip to [0, 1], times 255, np.round, uint8.
    return torch.from_numpy(np.round(np.clip(out, 0.0, 1.0) * 255).astype(np.uint8))


def images_sha256(images: torch.Tensor | np.ndarray) -> str:
    """SHA-256 of uint8 (N, 28, 28) images' shape and bytes (the cache key of their source)."""
    array = _as_uint8_array(images)
    digest = hashlib.sha256(f"uint8{array.shape}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def _cache_prefix(input_sha256: str, name: str, seed: int) -> str:
    return f"mnist-c_{name}_seed{seed}_gen{GENERATOR_VERSION}_in{input_sha256}_"


def _load_verified(path: Path, shape: tuple[int, ...]) -> torch.Tensor:
    expected = path.stem.rsplit("_", 1)[-1]
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise DataError(f"Cannot read the cached corrupted test set {path}: {exc}.") from exc
    actual = hashlib.sha256(content).hexdigest()
    if actual != expected:
        raise DataError(
            f"The cached corrupted test set {path} does not match the SHA-256 in its name "
            f"(its content hashes to {actual}): it was changed or damaged after it was written, "
            "so it is not used. Delete the file; the next evaluation generates it again."
        )
    try:
        array = np.load(io.BytesIO(content), allow_pickle=False)
    except ValueError as exc:  # a pickled or malformed array, even with a matching name
        raise DataError(
            f"The cached corrupted test set {path} is not a plain .npy array ({exc}). "
            "Delete the file; the next evaluation generates it again."
        ) from exc
    if array.dtype != np.uint8 or array.shape != shape:
        raise DataError(
            f"The cached corrupted test set {path} holds {array.dtype} {array.shape}, not uint8 "
            f"{shape}. Delete the file; the next evaluation generates it again."
        )
    return torch.from_numpy(array)


def corrupted_test_set(images: torch.Tensor, name: str, seed: int, cache_dir: Path) -> torch.Tensor:
    """`corrupt(images, name, seed)`, generated once and then read from `cache_dir`.

    The file is named mnist-c_<name>_seed<seed>_gen<version>_in<SHA-256 of the input>_<SHA-256
    of the file>.npy; on every load the file's bytes are hashed and compared with its name, and a
    file that does not match is refused with DataError (never silently regenerated).
    """
    check_corruption_name(name)
    seed = _check_seed(seed)
    array = _as_uint8_array(images)
    cache_dir = Path(cache_dir)
    prefix = _cache_prefix(images_sha256(array), name, seed)
    found = sorted(cache_dir.glob(f"{prefix}*.npy")) if cache_dir.is_dir() else []
    if found:
        return _load_verified(found[0], array.shape)

    result = corrupt(torch.from_numpy(array), name, seed)
    buffer = io.BytesIO()
    np.save(buffer, result.numpy(), allow_pickle=False)
    content = buffer.getvalue()
    path = cache_dir / f"{prefix}{hashlib.sha256(content).hexdigest()}.npy"
    tmp = None
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        # Written to a temporary name and renamed, so a reader never sees half a file.
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".tmp-", suffix=".part")
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise DataError(
            f"Cannot write the corrupted test set to {cache_dir}: {exc}. Make the folder "
            "writable or choose another cache folder."
        ) from exc
    return result
