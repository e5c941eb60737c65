"""A parser for the IDX format of MNIST-style datasets (raw or gzip-compressed).

An IDX file is a 4-byte magic number ``0x00 0x00 <type> <ndim>``, then ``ndim``
big-endian uint32 dimension sizes, then the values in C order, big-endian.
Reference: Y. LeCun, C. Cortes, C. J. C. Burges, "The MNIST database of handwritten
digits", http://yann.lecun.com/exdb/mnist/ (section "File formats").
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from vaekit.errors import DataError

__all__ = ["read_idx", "parse_idx", "IDX_TYPES"]

#: IDX type code -> big-endian numpy dtype.
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | os.PathLike, *, expected_magic: int | None = None) -> np.ndarray:
    """Read an IDX file (raw, or gzip-compressed whatever its name) into a numpy array.

    Arguments:
        path: the file; gzip compression is recognised from the content, not the name.
        expected_magic: if given, the magic number the file must carry (``2051`` for
            MNIST-style images, ``2049`` for labels).

    Returns:
        A writable array of the file's shape, in native byte order.

    Raises:
        DataError: the file is missing, unreadable, not valid gzip, has a bad magic
            number or type code, or its length does not match its header.

    Example:
        >>> images = read_idx("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")  # doctest: +SKIP
        >>> images.shape, images.dtype  # doctest: +SKIP
        ((10000, 28, 28), dtype('uint8'))
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read IDX file {path}: {e.strerror or e}") from e
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"IDX file {path} is not a valid gzip file (truncated or corrupt): {e}") from e
    return parse_idx(data, source=str(path), expected_magic=expected_magic)


def parse_idx(data: bytes, *, source: str = "<bytes>", expected_magic: int | None = None) -> np.ndarray:
    """Parse the (uncompressed) bytes of an IDX file; ``source`` names it in error messages."""
    if len(data) < 4:
        raise DataError(f"IDX file {source} is truncated: {len(data)} bytes, too short for a header")
    magic = int.from_bytes(data[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        raise DataError(f"IDX file {source} has magic number {magic}, expected {expected_magic}")
    zero, type_code, ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0 or type_code not in IDX_TYPES:
        raise DataError(
            f"IDX file {source} has an invalid magic number {magic} (0x{magic:08x}); "
            f"an IDX file starts with 0x0000 then a type code among "
            f"{', '.join(f'0x{t:02x}' for t in IDX_TYPES)}"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"IDX file {source} is truncated: {len(data)} bytes, its header needs {header}")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_TYPES[type_code]
    expected = header + math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "longer than its header says"
        raise DataError(
            f"IDX file {source} is {problem}: header says shape {shape} ({expected} bytes), "
            f"file has {len(data)} bytes"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)
