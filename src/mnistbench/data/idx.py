"""Read IDX files (the MNIST container format), gzip-compressed or raw, into tensors.

Format: two zero bytes, a type code, the number of dimensions, then one big-endian uint32 per
dimension, then the payload in row-major order (http://yann.lecun.com/exdb/mnist/).
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

from mnistbench.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"

# IDX type code -> element dtype (big-endian on disk, as the format prescribes).
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def is_gzip(data: bytes) -> bool:
    """True when `data` starts with the gzip magic bytes, whatever the file is called."""
    return data[:2] == GZIP_MAGIC


def decompress(data: bytes, source: Path | str) -> bytes:
    """Return the IDX content of a file's bytes: gunzipped if gzip, else unchanged.

    A truncated or damaged gzip stream raises DataError naming `source`.
    """
    if not is_gzip(data):
        return data
    try:
        return gzip.decompress(data)
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise DataError(
            f"{source} is truncated or corrupt: it starts like a gzip file but cannot be "
            f"decompressed ({type(exc).__name__}: {exc}). Delete it and download it again, "
            "e.g. with `mnistbench data download`, or copy an intact version in its place."
        ) from exc


def read_content(path: Path) -> bytes:
    """Read a file and return its decompressed IDX content (the bytes the checksums cover)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(
            f"Cannot read data file {path}: {exc.strerror or exc}. Check that it exists and is "
            "readable by this user, or point --data-dir / MNISTBENCH_DATA at another copy."
        ) from exc
    return decompress(data, path)


def read_idx_bytes(content: bytes, source: Path | str = "<bytes>") -> torch.Tensor:
    """Parse decompressed IDX `content` into a tensor of the stored dtype and shape.

    The header's dimensions must account for the payload exactly; otherwise DataError names
    `source` and says whether it is truncated or has trailing bytes.
    """
    if len(content) < 4 or content[0] != 0 or content[1] != 0:
        raise DataError(
            f"{source} is not an IDX file: it should start with two zero bytes, a type code and "
            f"a dimension count, but starts with {content[:4].hex() or 'nothing'}. It is probably "
            "corrupt or a different file saved under this name; delete it and download it again "
            "(`mnistbench data download`)."
        )
    type_code, ndim = content[2], content[3]
    dtype = IDX_DTYPES.get(type_code)
    header_len = 4 + 4 * ndim
    if dtype is None or ndim == 0 or len(content) < header_len:
        raise DataError(
            f"{source} has an invalid IDX header (type code 0x{type_code:02x}, {ndim} "
            f"dimensions, {len(content)} bytes in all). It is corrupt or not an IDX file; delete "
            "it and download it again (`mnistbench data download`)."
        )
    shape = tuple(int(d) for d in np.frombuffer(content, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(content) - header_len
    if actual != expected:
        problem = "truncated" if actual < expected else "followed by unexpected trailing bytes"
        raise DataError(
            f"{source} is {problem}: its header declares shape {shape} ({expected} payload "
            f"bytes) but the file holds {actual}. Delete it and download it again "
            "(`mnistbench data download`), or copy an intact version in its place."
        )
    array = np.frombuffer(content, dtype=dtype, offset=header_len).reshape(shape)
    # One copy: converts to native byte order and gives torch a writable buffer (frombuffer on
    # immutable bytes is read-only, which torch.from_numpy warns about).
    return torch.from_numpy(array.astype(dtype.newbyteorder("="), copy=True))


def read_idx(path: Path) -> torch.Tensor:
    """Read an IDX file, gzip or raw (detected by its first bytes, not its name)."""
    path = Path(path)
    return read_idx_bytes(read_content(path), path)
