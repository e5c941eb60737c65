"""Loading a user's ``.npy`` / ``.npz`` arrays, never unpickling anything.

Layout and scaling rules (applied by :func:`array_to_examples`):

* **Scaling.** ``uint8`` arrays, and any integer array whose values all lie in
  ``0..255``, are taken as 8-bit intensities and divided by 255. Other integer arrays,
  booleans and floating-point arrays keep their values (converted to float32).
* **Layout.** Rank 2 ``(N, D)`` is kept. Rank 3 ``(N, H, W)`` becomes ``(N, 1, H, W)``.
  Rank 4 is taken as channels-last ``(N, H, W, C)`` and moved to ``(N, C, H, W)`` when
  its last axis has 1, 3 or 4 entries and its second axis does not (so ``(N, 28, 28, 1)``
  and ``(N, 32, 32, 3)`` are moved; ``(N, 3, 32, 32)`` and ``(N, 3, 8, 3)`` are kept as
  channels-first). Other ranks >= 2 are kept as they are; rank 0 and 1 are refused.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from vaekit.data._splits import check_split
from vaekit.data.dataset import Dataset
from vaekit.data.validation import as_label_tensor, check_labels
from vaekit.errors import DataError

__all__ = ["load_array", "array_to_examples", "X_KEYS", "Y_KEYS"]

#: Keys of an ``.npz`` searched, in order, for the examples.
X_KEYS = ("x", "X", "data", "images", "arr_0")
#: Keys of an ``.npz`` searched, in order, for the (optional) labels.
Y_KEYS = ("y", "Y", "labels", "targets")

_CHANNEL_SIZES = (1, 3, 4)
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK"


def load_array(path: str | os.PathLike, split: str = "train") -> Dataset:
    """Load examples (and labels) from a ``.npy`` or ``.npz`` file.

    Arguments:
        path: a ``.npy`` file (examples only) or an ``.npz`` archive. In an archive the
            examples are the first of :data:`X_KEYS` present and the labels the first of
            :data:`Y_KEYS` (optional). An archive with ``x_train``/``x_test`` (and
            optionally ``y_train``/``y_test``) holds two splits and ``split`` picks one.
        split: ``"train"`` or ``"test"`` for a two-split archive; a file holding one set
            is returned whole for ``"train"`` or ``"all"``, and ``"test"`` is refused
            rather than silently handing back the training data.

    See the module docstring for how arrays are scaled and laid out. Object (pickled)
    arrays are refused: files are loaded with ``allow_pickle=False``.

    Example:
        >>> np.savez("/tmp/toy.npz", x=np.zeros((4, 8, 8), np.uint8), y=np.arange(4))  # doctest: +SKIP
        >>> load_array("/tmp/toy.npz").input_shape  # doctest: +SKIP
        (1, 8, 8)
    """
    path = Path(path)
    _check_format(path)
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise _pickle_or_corrupt(path, e) from e
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"cannot read {path} as a numpy .npy/.npz file: {e}") from e
    if isinstance(loaded, np.ndarray):
        check_split(split, ("train", "all"), f"{path} (a single array)")
        return Dataset(array_to_examples(loaded, str(path)), None, name=path.stem)
    with loaded as archive:
        x, y = _pick_arrays(archive, path, split)
    x_t = array_to_examples(x, str(path))
    y_t = None
    if y is not None:
        y_t = as_label_tensor(y, f"labels in {path}")
        check_labels(y_t, x_t.shape[0], name=f"labels in {path}")
    suffix = f"/{split}" if split == "test" else ""
    return Dataset(x_t, y_t, name=f"{path.stem}{suffix}")


def array_to_examples(array: np.ndarray, source: str = "array") -> torch.Tensor:
    """``array`` as a float32 tensor ``(N, ...)``, scaled and laid out as the module docstring says."""
    if array.dtype.kind not in "biuf":
        raise DataError(f"{source}: examples must be numeric, got dtype {array.dtype}")
    if array.ndim < 2:
        raise DataError(
            f"{source}: examples have shape {array.shape}; need at least 2 dimensions (N, ...), one row per example"
        )
    if _is_8bit(array):
        values = array.astype(np.float32) / np.float32(255.0)
    else:
        values = array.astype(np.float32)
    tensor = torch.from_numpy(np.ascontiguousarray(values))
    if tensor.dim() == 3:
        tensor = tensor.unsqueeze(1)
    elif tensor.dim() == 4 and tensor.shape[3] in _CHANNEL_SIZES and tensor.shape[1] not in _CHANNEL_SIZES:
        tensor = tensor.permute(0, 3, 1, 2).contiguous()
    return tensor


def _check_format(path: Path) -> None:
    """Refuse anything that is not a .npy or zip (.npz) file before numpy guesses "pickle"."""
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except FileNotFoundError as e:
        raise DataError(f"no such file: {path}") from e
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from e
    if not (head.startswith(_NPY_MAGIC) or head.startswith(_ZIP_MAGIC)):
        raise DataError(f"{path} is not a numpy .npy or .npz file (its first bytes are {head!r})")


def _is_8bit(array: np.ndarray) -> bool:
    if array.dtype == np.uint8:
        return True
    if array.dtype.kind not in "iu" or array.size == 0:
        return False
    return int(array.min()) >= 0 and int(array.max()) <= 255


def _pick_arrays(archive: np.lib.npyio.NpzFile, path: Path, split: str) -> tuple[np.ndarray, np.ndarray | None]:
    keys = list(archive.files)
    split_keys = {k for k in keys if k in ("x_train", "x_test", "X_train", "X_test")}
    if split_keys:
        check_split(split, ("train", "test"), str(path))
        x_key = next((k for k in (f"x_{split}", f"X_{split}") if k in keys), None)
        if x_key is None:
            raise DataError(f"{path} has {sorted(split_keys)} but no x_{split}; its keys are {keys}")
        y_key = next((k for k in (f"y_{split}", f"Y_{split}") if k in keys), None)
    else:
        check_split(split, ("train", "all"), f"{path} (no x_train/x_test keys)")
        x_key = next((k for k in X_KEYS if k in keys), None)
        if x_key is None:
            raise DataError(
                f"{path} has no examples array: its keys are {keys}, expected one of {list(X_KEYS)} "
                "(or x_train/x_test)"
            )
        y_key = next((k for k in Y_KEYS if k in keys), None)
    return _get(archive, x_key, path), (None if y_key is None else _get(archive, y_key, path))


def _get(archive: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as e:
        raise _pickle_or_corrupt(path, e, key) from e
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"cannot read array {key!r} of {path}: {e}") from e


def _pickle_or_corrupt(path: Path, error: Exception, key: str | None = None) -> DataError:
    where = f"array {key!r} of {path}" if key else str(path)
    if "pickle" in str(error).lower():
        return DataError(
            f"{where} is an object (pickled) array; pickled arrays are refused because loading them "
            "can run arbitrary code; save a plain numeric array instead (e.g. np.asarray(x, dtype=np.float32))"
        )
    return DataError(f"cannot read {where} as a numpy array: {error}")
