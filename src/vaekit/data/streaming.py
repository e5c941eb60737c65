"""Examples read lazily from a file, for training on data larger than memory (``--stream``).

A :class:`FileDataset` holds a description of where the examples live — a path, a byte
offset, a dtype and a shape, or an image folder's file list — plus an optional subset of
positions, never the examples themselves. :meth:`FileDataset.rows` reads the examples a
batch needs:

* **Arrays** (``.npy``, and the members of an uncompressed ``.npz``) are memory-mapped
  (``np.memmap`` at the array's data offset; inside a zip archive that offset is the
  member's local header offset + 30 + name length + extra length + the ``.npy`` header).
  A batch is one vectorised read: the positions are sorted and deduplicated
  (``np.unique``), the map is fancy-indexed once, and the sort is undone.
* **Image folders** are decoded file by file with Pillow, as :func:`load_image_folder` does.

The examples come back scaled and laid out exactly as the in-memory loaders give them
(:func:`vaekit.data.arrays.array_to_examples`, :func:`vaekit.data.image_folder.load_image_folder`):
``rows(i)`` equals ``load_dataset(path).x[i]`` bit for bit. Non-``uint8`` integer arrays
are scanned once at open (minimum and maximum, a chunk at a time) to decide whether they
are 8-bit intensities, as the in-memory loader decides from the whole array.

**Resident memory.** Pages of a mapped file count in the process's resident set
(``RssFile``) once touched, so one epoch over a 20 GB file would end with 20 GB resident
although nothing holds on to it. A read is done in pieces that map at most ~32 MB each,
and once that much is mapped the map is told ``madvise(MADV_DONTNEED)``: the pages leave
this process's resident set and stay in the operating system's page cache (the file stays
hot for the next epoch). What a piece maps is counted in page-cache folios, not bytes: a
fault maps the whole cached folio around the address, and kernels that keep files in
large folios (Linux 6.x on ext4/xfs) map up to 2 MB for one 784-byte row — one batch of
256 random rows of a 200 MB file then maps ~180 MB.

A FileDataset pickles to its description (a few hundred bytes plus any subset of
positions), so DataLoader worker processes receive it cheaply and each maps the file on
its first read.
"""

from __future__ import annotations

import functools
import math
import mmap
import os
import struct
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaekit.data._splits import check_split
from vaekit.data.arrays import _check_format, _get, _pick_arrays, _pickle_or_corrupt, array_to_examples
from vaekit.data.dataset import Dataset, position_as_slice
from vaekit.data.fashion_mnist import has_fashion_mnist
from vaekit.data.image_folder import _check_size, _labels, _read, scan_image_folder
from vaekit.data.sources import DATASET_NAMES
from vaekit.data.sprites import is_sprites_source
from vaekit.data.validation import as_label_tensor, check_labels
from vaekit.errors import ConfigError, DataError

__all__ = ["FileDataset", "open_file_dataset", "estimated_memory_bytes", "fits_in_memory", "batch_loader"]

_STREAMS = "--stream takes a .npy file, an uncompressed .npz archive (np.savez) or an image folder"

#: Mapped bytes a process may have resident before its pages are released (madvise DONTNEED).
_RELEASE_BYTES = 32 << 20
#: Bytes scanned at a time for the minimum/maximum of an integer array.
_SCAN_BYTES = 32 << 20
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, ..., name length, extra length
_LOCAL_MAGIC = b"PK\x03\x04"


# --------------------------------------------------------------------------- sources


class _ArraySource:
    """One C-order numeric array inside a file, described by its byte offset, dtype and shape.

    Pickles without the mapped data: the map, the labels and the release counter are
    rebuilt lazily in each process.
    """

    def __init__(
        self,
        path: str,
        offset: int,
        dtype: np.dtype,
        shape: tuple[int, ...],
        input_shape: tuple[int, ...],
        label_key: str | None,
    ) -> None:
        self.path, self.offset, self.dtype, self.shape = path, offset, np.dtype(dtype), shape
        self.input_shape, self.label_key = input_shape, label_key
        self.eight_bit = self.dtype == np.uint8
        self.row_bytes = self.dtype.itemsize * math.prod(shape[1:])
        self._map: np.memmap | None = None
        self._labels: torch.Tensor | None = None
        self._pending = 0

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_map=None, _labels=None, _pending=0)
        return state

    @property
    def n(self) -> int:
        return self.shape[0]

    def array(self) -> np.memmap:
        """The memory map of the array, opened on first use in this process."""
        if self._map is None:
            try:
                self._map = np.memmap(self.path, dtype=self.dtype, mode="r", offset=self.offset, shape=self.shape)
            except (OSError, ValueError) as e:
                raise DataError(f"cannot memory-map {self.path}: {e}; was the file changed or truncated?") from e
        return self._map

    def reset(self) -> None:
        """Forget the map (a forked DataLoader worker maps the file for itself)."""
        self._map, self._pending = None, 0

    def release(self) -> None:
        """Drop the mapped pages from this process's resident memory; the page cache keeps them."""
        self._pending = 0
        if self._map is None:
            return
        raw = getattr(self._map, "_mmap", None)
        if raw is not None and hasattr(mmap, "MADV_DONTNEED"):
            raw.madvise(mmap.MADV_DONTNEED)
        else:  # no madvise here: unmapping releases the pages as well
            self._map = None

    def raw(self, positions: np.ndarray) -> np.ndarray:
        """The rows at ``positions`` (any order, repeats allowed) as an in-memory array of the file's dtype.

        The distinct positions are read in increasing order, in pieces that map at most
        ``_RELEASE_BYTES`` each; the pages are released between pieces once that much is resident.
        """
        unique, inverse = np.unique(positions, return_inverse=True)
        data = self.array()
        folios = self._new_folios(unique)
        budget = max(1, _RELEASE_BYTES // _folio_bytes())
        cuts = np.flatnonzero(np.diff((np.cumsum(folios) - 1) // budget)) + 1
        bounds = [0, *cuts.tolist(), len(unique)]
        if len(bounds) == 2:
            block = self._gather(data, unique, int(folios.sum()))
        else:
            block = np.empty((len(unique),) + self.shape[1:], self.dtype)
            for start, stop in zip(bounds[:-1], bounds[1:]):
                block[start:stop] = self._gather(data, unique[start:stop], int(folios[start:stop].sum()))
        if len(unique) == len(positions) and np.array_equal(unique, positions):
            return block
        return block[inverse.reshape(-1)]

    def _new_folios(self, sorted_positions: np.ndarray) -> np.ndarray:
        """How many page-cache folios each row maps that the rows before it have not.

        A page fault on a file mapping maps the whole cached folio around the faulting
        address (up to a huge page, e.g. 2 MB, on kernels that keep files in large folios),
        so a row's cost in resident memory is the folios it touches, not its bytes.
        """
        unit = _folio_bytes()
        first = (self.offset + sorted_positions * self.row_bytes) // unit
        last = (self.offset + (sorted_positions + 1) * self.row_bytes - 1) // unit
        seen = np.concatenate(([-1], last[:-1]))
        return np.maximum(last - np.maximum(first, seen + 1) + 1, 0)

    def _gather(self, data: np.memmap, sorted_positions: np.ndarray, folios: int) -> np.ndarray:
        """Rows at increasing ``sorted_positions``, releasing the pages first if they would pass the budget."""
        mapped = folios * _folio_bytes()
        if self._pending and self._pending + mapped > _RELEASE_BYTES:
            self.release()
        self._pending += mapped
        first, last = int(sorted_positions[0]), int(sorted_positions[-1])
        if last - first + 1 == len(sorted_positions):  # one contiguous run: a slice is cheaper
            return np.array(data[first : last + 1])
        return data[sorted_positions]

    def read(self, positions: np.ndarray) -> torch.Tensor:
        """The examples at ``positions``, scaled and laid out as :func:`array_to_examples` does."""
        values = self.raw(positions).astype(np.float32)
        if self.eight_bit:
            values /= np.float32(255.0)
        return array_to_examples(values, self.path)

    def scan_eight_bit(self) -> None:
        """Decide, for an integer array, whether every value lies in 0..255 (one chunked pass),
        as the in-memory loader decides from the whole array."""
        if self.dtype == np.uint8 or self.dtype.kind not in "iu":
            return
        data = self.array()
        step = max(1, _SCAN_BYTES // max(1, self.row_bytes))
        low, high = None, None
        for start in range(0, self.n, step):
            chunk = data[start : start + step]
            low = int(chunk.min()) if low is None else min(low, int(chunk.min()))
            high = int(chunk.max()) if high is None else max(high, int(chunk.max()))
            self.release()
        self.eight_bit = low is not None and low >= 0 and high <= 255

    def labels(self) -> torch.Tensor | None:
        if self.label_key is None:
            return None
        if self._labels is None:
            path = Path(self.path)
            try:
                with np.load(path, allow_pickle=False) as archive:
                    y = _get(archive, self.label_key, path)
            except (OSError, EOFError, zipfile.BadZipFile) as e:
                raise DataError(f"cannot read {path} as a numpy .npz file: {e}") from e
            labels = as_label_tensor(y, f"labels in {path}")
            check_labels(labels, self.n, name=f"labels in {path}")
            self._labels = labels
        return self._labels

    @property
    def classes(self) -> list[str] | None:
        return None


class _ImageSource:
    """A folder of image files, decoded one by one on demand."""

    def __init__(self, root: str, files: tuple[str, ...], mode: str, size: tuple[int, int] | None,
                 input_shape: tuple[int, ...]) -> None:
        self.root, self.files, self.mode, self.size, self.input_shape = root, files, mode, size, input_shape
        self._labels: tuple[torch.Tensor | None, list[str] | None] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__, _labels=None)

    @property
    def n(self) -> int:
        return len(self.files)

    def read(self, positions: np.ndarray) -> torch.Tensor:
        root = Path(self.root)
        return torch.from_numpy(np.stack([_read(root / self.files[i], self.mode, self.size) for i in positions]))

    def reset(self) -> None:
        pass

    def release(self) -> None:
        pass

    def _folder_labels(self) -> tuple[torch.Tensor | None, list[str] | None]:
        if self._labels is None:
            root = Path(self.root)
            self._labels = _labels(root, [root / f for f in self.files])
        return self._labels

    def labels(self) -> torch.Tensor | None:
        return self._folder_labels()[0]

    @property
    def classes(self) -> list[str] | None:
        return self._folder_labels()[1]


_UNSET = object()


# --------------------------------------------------------------------------- the dataset


class FileDataset:
    """Examples read lazily from a file: a memory-mapped ``.npy``, an uncompressed ``.npz``
    member (memory-mapped at its offset inside the zip), or a folder of images decoded on
    demand. Labels (small) are held in memory.

    Made by :func:`open_file_dataset`. Indexing (``data[:1000]``, ``data[perm]``,
    ``data[mask]``) gives a subset *view*: nothing is read until :meth:`rows`,
    :meth:`chunks` or :meth:`load`. The examples are float32, scaled and laid out as the
    in-memory loaders give them.

    Attributes:
        name: a short human-readable name, as :attr:`Dataset.name`.
        y: ``None``, or the labels of this (sub)set: int64 ``(N,)`` class labels or float32
            ``(N, K)`` condition vectors, as :attr:`Dataset.y`.
        classes: the class names of an image folder with class subfolders, else ``None``.

    Example:
        >>> np.save("/tmp/big.npy", np.zeros((1000, 28, 28), np.uint8))  # doctest: +SKIP
        >>> data = open_file_dataset("/tmp/big.npy")  # doctest: +SKIP
        >>> len(data), data.input_shape, data.rows(torch.tensor([3, 1, 3])).shape  # doctest: +SKIP
        (1000, (1, 28, 28), torch.Size([3, 1, 28, 28]))
    """

    def __init__(self, source: _ArraySource | _ImageSource, index: range | np.ndarray | None = None,
                 name: str = "") -> None:
        self._source = source
        self._index = range(source.n) if index is None else index
        self.name = name
        self._y: Any = _UNSET

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_y"}  # labels are re-read where needed

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._y = _UNSET

    def __len__(self) -> int:
        return len(self._index)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one example after the layout rules, e.g. ``(1, 28, 28)``."""
        return tuple(self._source.input_shape)

    @property
    def y(self) -> torch.Tensor | None:
        if self._y is _UNSET:
            labels = self._source.labels()
            whole = isinstance(self._index, range) and self._index == range(self._source.n)
            if labels is not None and not whole:
                labels = labels[torch.from_numpy(_positions(self._index))]
            self._y = labels
        return self._y

    @property
    def classes(self) -> list[str] | None:
        return self._source.classes

    # Dataset's own rule (max label + 1, or len(classes) if larger); it reads only y and classes.
    num_classes = Dataset.num_classes

    @property
    def path(self) -> str:
        """The file or folder the examples are read from."""
        return self._source.path if isinstance(self._source, _ArraySource) else self._source.root

    def __getitem__(self, index: Any) -> "FileDataset":
        """The subset selected by ``index`` (a slice, an index tensor/list/array, or a boolean
        mask), as a view: nothing is read. An integer ``i`` gives the one-example subset
        ``self[i:i+1]``, as :meth:`Dataset.__getitem__` does."""
        index = position_as_slice(index, len(self))
        if isinstance(index, slice):
            return FileDataset(self._source, self._index[index], self.name)
        return FileDataset(self._source, self._base(self._selection(index)), self.name)

    def rows(self, index: Any) -> torch.Tensor:
        """The examples at ``index`` as a float32 tensor ``(B, *input_shape)``.

        Arguments:
            index: positions in this (sub)set — a 1-D integer tensor, array or list, in any
                order, repeats allowed (a slice or boolean mask works too).

        Arrays are read with one vectorised gather (sorted, deduplicated, then put back in
        the order asked for); image files are decoded one by one.
        """
        if isinstance(index, slice):
            positions = _positions(self._index[index])
        else:
            positions = self._base(self._selection(index))
        if len(positions) == 0:
            return torch.empty((0, *self.input_shape))
        return self._source.read(positions)

    def chunks(self, size: int) -> Iterator[torch.Tensor]:
        """The examples in order, ``size`` at a time (float32), releasing mapped pages as it goes."""
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ConfigError(f"chunk size must be a positive integer, got {size!r}")
        try:
            for start in range(0, len(self), int(size)):
                yield self._source.read(_positions(self._index[start : start + int(size)]))
        finally:
            self.release()

    def load(self) -> Dataset:
        """This (sub)set read into memory as a :class:`Dataset`."""
        x = torch.empty((len(self), *self.input_shape))
        step = max(1, _RELEASE_BYTES // max(1, 4 * math.prod(self.input_shape)))
        start = 0
        for chunk in self.chunks(step):
            x[start : start + len(chunk)] = chunk
            start += len(chunk)
        classes = None if self.classes is None else list(self.classes)
        return Dataset(x, self.y, name=self.name, classes=classes)

    def release(self) -> None:
        """Drop this process's mapped pages from its resident memory (``madvise(MADV_DONTNEED)``).

        The operating system's page cache keeps the file, so the next read is as fast;
        the pages simply stop counting in this process's RSS. :meth:`rows` and
        :meth:`chunks` call it whenever ~32 MB is mapped. A no-op for image folders.
        """
        self._source.release()

    def _selection(self, index: Any) -> np.ndarray:
        """``index`` (an integer or boolean tensor/array/list) as int64 positions in ``0..len-1``."""
        n = len(self)
        if isinstance(index, torch.Tensor):
            array = index.detach().cpu().numpy()
        else:
            array = np.asarray(index)
        if array.dtype == np.bool_:
            if array.shape != (n,):
                raise IndexError(f"a boolean mask of shape {array.shape} does not match a dataset of {n} examples")
            return np.flatnonzero(array)
        if array.size == 0:
            return np.empty(0, dtype=np.int64)
        if array.dtype.kind not in "iu" or array.ndim != 1:
            raise IndexError(
                f"index a dataset with a slice, an integer, a 1-D integer array/tensor/list or a boolean mask; "
                f"got an array of dtype {array.dtype} and shape {array.shape}"
            )
        positions = array.astype(np.int64)
        bad = (positions < -n) | (positions >= n)
        if bad.any():
            raise IndexError(f"index {int(positions[bad][0])} is out of range for a dataset of {n} examples")
        return np.where(positions < 0, positions + n, positions)

    def _base(self, selection: np.ndarray) -> np.ndarray:
        """Positions in this view -> positions in the file."""
        if isinstance(self._index, range):
            return self._index.start + selection * self._index.step
        return self._index[selection]

    def __repr__(self) -> str:
        return f"FileDataset(name={self.name!r}, n={len(self)}, input_shape={self.input_shape}, path={self.path!r})"


@functools.cache
def _folio_bytes() -> int:
    """The most one page fault on a file mapping may map: a huge page (the PMD size) where the
    kernel says so, else 2 MB (x86-64 and arm64 with 4 kB pages)."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size") as f:
            return max(mmap.PAGESIZE, int(f.read()))
    except (OSError, ValueError):
        return 2 << 20


def _positions(index: range | np.ndarray) -> np.ndarray:
    if isinstance(index, range):
        return np.arange(index.start, index.stop, index.step, dtype=np.int64)
    return np.ascontiguousarray(index, dtype=np.int64)


# --------------------------------------------------------------------------- opening


def open_file_dataset(
    source: str | os.PathLike,
    split: str = "train",
    image_size: Sequence[int] | None = None,
) -> FileDataset:
    """Open a ``.npy`` file, an uncompressed ``.npz`` archive or an image folder for reading on demand.

    Arguments:
        source: a ``.npy`` file; an ``.npz`` archive written by ``np.savez`` (members
            stored, not compressed), whose examples and labels are picked by the keys
            :func:`vaekit.data.load_array` uses (``x``/``X``/``data``/``images``/``arr_0``,
            ``y``/``Y``/``labels``/``targets``, or ``x_train``/``x_test`` ...); or a folder
            of images (class subfolders give labels), as :func:`load_image_folder` reads it.
        split: ``"train"``/``"test"`` for a two-split archive; ``"train"`` or ``"all"`` for
            a single array or an image folder, as :func:`load_dataset`.
        image_size: ``(H, W)`` to resize an image folder's images to (ignored for arrays).

    Opening reads only headers (and, for a non-``uint8`` integer array, its minimum and
    maximum in one chunked pass). Arrays must be numeric and in C order; object (pickled)
    arrays are refused.

    Raises:
        DataError: the source cannot be streamed (a built-in dataset name, a CSV file, a
            compressed ``.npz``, a Fortran-order array), or it is missing or unreadable.
    """
    path = _streamable(source)
    if path.is_dir():
        check_split(split, ("train", "all"), f"image folder {path}")
        return _open_image_folder(path, image_size)
    array, name = _describe_array(path, split)
    array.scan_eight_bit()
    array.labels()  # read and checked now, then held in memory
    return FileDataset(array, name=name)


def _streamable(source: Any) -> Path:
    """``source`` as the path of something :func:`open_file_dataset` reads, or a DataError."""
    if isinstance(source, str) and (source.strip().lower() in DATASET_NAMES or is_sprites_source(source)):
        raise DataError(
            f"{_STREAMS}, got the built-in data set {source!r}; built-in data sets fit in memory: "
            "train without --stream"
        )
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"no such file or directory: {path}; {_STREAMS}")
    if path.is_dir():
        if has_fashion_mnist(path):
            raise DataError(
                f"{path} holds the Fashion-MNIST IDX files; {_STREAMS}, and built-in data sets fit in memory: "
                "train without --stream"
            )
        return path
    if path.suffix.lower() not in (".npy", ".npz"):
        raise DataError(
            f"cannot stream {path}: {_STREAMS}; built-in data sets and CSV tables are loaded in memory: "
            "train without --stream (or save the table with np.save)"
        )
    return path


def _describe_array(path: Path, split: str, mappable: bool = True) -> tuple[_ArraySource, str]:
    """The examples array of ``path`` (and its labels key) from the headers alone.

    With ``mappable=False`` a compressed or Fortran-order member is described anyway
    (its offset is then meaningless): only its dtype and shape are wanted.
    """
    _check_format(path)
    try:
        with open(path, "rb") as f:
            is_zip = f.read(2) == b"PK"
        if not is_zip:
            check_split(split, ("train", "all"), f"{path} (a single array)")
            with open(path, "rb") as f:
                dtype, shape, fortran = _read_npy_header(f, str(path))
                offset = f.tell()
            if fortran and mappable:
                raise DataError(_fortran_message(str(path)))
            return _array_source(path, offset, dtype, shape, None, None, mappable), path.stem
        with zipfile.ZipFile(path) as archive:
            members = archive.namelist()
            keys = [m.removesuffix(".npy") for m in members]
            x_key, y_key = _pick_arrays(_Keys(keys), path, split)
            where = f"array {x_key!r} of {path}"
            info = archive.getinfo(x_key + ".npy" if x_key + ".npy" in members else x_key)
            with archive.open(info) as member:
                dtype, shape, fortran = _read_npy_header(member, where)
                header_bytes = member.tell()
    except (OSError, EOFError, zipfile.BadZipFile, RuntimeError) as e:
        raise DataError(f"cannot read {path} as a numpy .npy/.npz file: {e}") from e
    offset = 0
    if mappable:
        if info.compress_type != zipfile.ZIP_STORED:
            raise DataError(
                f"{where} is compressed (np.savez_compressed); memory-mapping needs np.savez (stored) or a .npy "
                "file; or train without --stream to load it in memory"
            )
        if fortran:
            raise DataError(_fortran_message(where))
        member_start = _member_data_offset(path, info)
        offset = member_start + header_bytes
        if offset + dtype.itemsize * math.prod(shape) > member_start + info.file_size:
            raise DataError(f"{where} is truncated: its header promises more bytes than the archive member holds")
    suffix = "/test" if split == "test" else ""
    return _array_source(path, offset, dtype, shape, y_key, x_key, mappable), f"{path.stem}{suffix}"


class _Keys:
    """The member names of an archive, standing in for an ``NpzFile`` so that
    :func:`vaekit.data.arrays._pick_arrays` applies its key rules and hands back the keys it picked."""

    def __init__(self, files: list[str]) -> None:
        self.files = files

    def __getitem__(self, key: str) -> str:
        return key


def _read_npy_header(f: Any, where: str) -> tuple[np.dtype, tuple[int, ...], bool]:
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise DataError(
                f"{where} is a .npy file of format version {version[0]}.{version[1]} (a structured dtype); "
                "examples must be a plain numeric array"
            )
    except ValueError as e:
        raise DataError(f"cannot read {where} as a numpy array: {e}") from e
    return dtype, tuple(int(s) for s in shape), bool(fortran)


def _fortran_message(where: str) -> str:
    return (
        f"{where} is stored in Fortran (column-major) order; memory-mapping reads rows, so save "
        "np.ascontiguousarray(x) with np.save or np.savez; or train without --stream to load it in memory"
    )


def _member_data_offset(path: Path, info: zipfile.ZipInfo) -> int:
    """Where the stored bytes of a zip member begin: after its local file header, name and extra field."""
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        head = f.read(_LOCAL_HEADER.size)
    if len(head) < _LOCAL_HEADER.size:
        raise DataError(f"{path} is truncated: the zip header of {info.filename!r} is cut off")
    magic, name_length, extra_length = _LOCAL_HEADER.unpack(head)
    if magic != _LOCAL_MAGIC:
        raise DataError(f"{path} is not a valid zip archive: no local header for {info.filename!r}")
    return info.header_offset + _LOCAL_HEADER.size + name_length + extra_length


def _array_source(path: Path, offset: int, dtype: np.dtype, shape: tuple[int, ...], label_key: str | None,
                  key: str | None, mappable: bool) -> _ArraySource:
    """The source of the examples array ``key`` of ``path`` (``None``: a .npy file), checked as the
    in-memory loader checks; with ``mappable``, also that the file holds every byte of it."""
    where = str(path) if key is None else f"array {key!r} of {path}"
    if dtype.hasobject:
        raise _pickle_or_corrupt(path, ValueError("Object arrays cannot be loaded when allow_pickle=False"), key)
    if len(shape) < 2:
        raise DataError(
            f"{where}: examples have shape {shape}; need at least 2 dimensions (N, ...), one row per example"
        )
    # array_to_examples checks the dtype with the in-memory loader's message and gives the layout.
    input_shape = tuple(array_to_examples(np.empty((0, *shape[1:]), dtype), where).shape[1:])
    if math.prod(shape) == 0:
        raise DataError(f"{where} holds no data (shape {shape}); give at least one non-empty example")
    end = offset + dtype.itemsize * math.prod(shape)
    if mappable and end > os.path.getsize(path):
        raise DataError(f"{where} is truncated: it needs {end} bytes but {path} has {os.path.getsize(path)}")
    return _ArraySource(str(path), offset, dtype, shape, input_shape, label_key)


def _open_image_folder(root: Path, image_size: Sequence[int] | None) -> FileDataset:
    size = _check_size(image_size)
    files, mode, size_hw = scan_image_folder(root, size)
    channels = 1 if mode == "L" else 3
    relative = tuple(f.relative_to(root).as_posix() for f in files)
    source = _ImageSource(str(root), relative, mode, size, (channels, *size_hw))
    return FileDataset(source, name=root.name)


# --------------------------------------------------------------------------- memory


def estimated_memory_bytes(source: str | os.PathLike | FileDataset, split: str = "train",
                           image_size: Sequence[int] | None = None) -> int:
    """The float32 bytes the in-memory path would need for ``source``: ``N * prod(input_shape) * 4``.

    Arguments:
        source: an opened :class:`FileDataset`, or what :func:`open_file_dataset` takes.
            An array's size comes from its header alone, even for a compressed ``.npz``
            (which cannot be streamed but can be estimated); an image folder's from its
            image headers.
        split, image_size: as for :func:`open_file_dataset`.
    """
    if isinstance(source, FileDataset):
        return len(source) * math.prod(source.input_shape) * 4
    path = _streamable(source)
    if path.is_dir():
        return estimated_memory_bytes(open_file_dataset(path, split, image_size))
    array, _ = _describe_array(path, split, mappable=False)
    return array.n * math.prod(array.input_shape) * 4


def available_memory_bytes() -> int:
    """Memory the system can give without swapping: ``MemAvailable`` of ``/proc/meminfo``
    (else the free physical pages, ``os.sysconf``)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def fits_in_memory(source: str | os.PathLike | FileDataset, fraction: float = 0.5, split: str = "train",
                   image_size: Sequence[int] | None = None) -> bool:
    """Whether loading ``source`` in memory would take at most ``fraction`` of the available memory.

    ``estimated_memory_bytes(source) <= fraction * available_memory_bytes()``. Sources that
    cannot be streamed at all (built-in data set names, CSV tables, missing paths) count as
    fitting: the in-memory loader is their only path, and it reports any problem itself.
    """
    if not 0 < fraction:
        raise ConfigError(f"fraction must be positive (a share of the available memory, e.g. 0.5), got {fraction}")
    try:
        needed = estimated_memory_bytes(source, split, image_size)
    except DataError:
        if isinstance(source, FileDataset):
            raise
        try:
            _streamable(source)
        except DataError:
            return True
        raise
    return needed <= fraction * available_memory_bytes()


# --------------------------------------------------------------------------- loading batches


class _RowReader(torch.utils.data.Dataset):
    """A map-style dataset whose items are whole batches: ``reader[index_tensor] = dataset.rows(index_tensor)``."""

    def __init__(self, dataset: FileDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor:
        return self.dataset.rows(index)


def _map_again(worker_id: int) -> None:
    """In a DataLoader worker: forget any map inherited from the parent; the first read maps the file anew."""
    info = torch.utils.data.get_worker_info()
    info.dataset.dataset._source.reset()


def default_workers(dataset: FileDataset) -> int:
    """0 for memory-mapped arrays (a gather from the page cache costs less than shipping the
    batch from a worker process); ``min(4, cpus - 1)`` for image folders (decoding is CPU work)."""
    if isinstance(dataset._source, _ArraySource):
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(4, cpus - 1))


def batch_loader(
    dataset: FileDataset,
    batches: Iterable[torch.Tensor],
    *,
    num_workers: int | None = None,
    pin_memory: bool = False,
    prefetch_factor: int = 4,
) -> Iterable[torch.Tensor]:
    """A DataLoader yielding ``dataset.rows(index)`` for each ``index`` of ``batches``.

    Arguments:
        dataset: the file dataset to read.
        batches: the batches of one epoch, each a 1-D tensor of positions in ``dataset``
            (e.g. ``torch.randperm(len(dataset)).split(128)``).
        num_workers: worker processes reading ahead; ``None`` picks :func:`default_workers`.
        pin_memory: put each batch in page-locked memory (for a faster copy to a GPU).
        prefetch_factor: batches each worker reads ahead (ignored without workers).

    Make one loader per epoch (workers are not kept between epochs). Each worker maps the
    file for itself on its first read. The loader leaves torch's global random state alone
    (it draws its worker seed from a generator of its own): reading batches does not shift
    the noise a training step draws, as reading from memory does not.
    """
    if num_workers is None:
        num_workers = default_workers(dataset)
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ConfigError(f"num_workers must be a non-negative integer (0 reads in this process), got {num_workers!r}")
    return torch.utils.data.DataLoader(
        _RowReader(dataset),
        batch_size=None,
        sampler=batches,
        num_workers=num_workers,
        pin_memory=pin_memory,
        prefetch_factor=prefetch_factor if num_workers > 0 else None,
        persistent_workers=False,
        worker_init_fn=_map_again if num_workers > 0 else None,
        generator=torch.Generator(),  # not the global RNG: iterating would consume a draw from it
    )
