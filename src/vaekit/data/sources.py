"""One entry point from a ``--data`` value (a dataset name or a path) to a :class:`Dataset`."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vaekit.data._splits import check_split
from vaekit.data.arrays import load_array
from vaekit.data.dataset import Dataset
from vaekit.data.digits import load_digits
from vaekit.data.fashion_mnist import has_fashion_mnist, load_fashion_mnist
from vaekit.data.image_folder import load_image_folder
from vaekit.data.sprites import is_sprites_source, load_sprites, parse_sprites_source
from vaekit.data.tables import load_csv
from vaekit.errors import ConfigError, DataError

__all__ = ["load_dataset", "has_test_split", "DATASET_NAMES", "FILE_SUFFIXES"]

#: Built-in dataset names (and aliases) -> canonical name.
DATASET_NAMES: dict[str, str] = {
    "fashion-mnist": "fashion-mnist",
    "fashion_mnist": "fashion-mnist",
    "fmnist": "fashion-mnist",
    "digits": "digits",
}

#: File suffixes load_dataset reads.
FILE_SUFFIXES = (".npy", ".npz", ".csv")

_ACCEPTS = "--data takes fashion-mnist, digits, sprites[:SIZE[:N]], or a path to .npy/.npz/.csv/an image folder"


def load_dataset(
    source: str | os.PathLike,
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    label_column: str | int | None = None,
    image_size: Sequence[int] | None = None,
) -> Dataset:
    """Load the data a ``--data`` value names.

    Arguments:
        source: ``"fashion-mnist"`` (or ``"fashion_mnist"``, ``"fmnist"``), ``"digits"``,
            ``"sprites[:SIZE[:N]]"`` (:func:`load_sprites`: SIZE × SIZE images, default 32,
            N training images or ``all``, default 20 000; 5 000 test images), or a path:
            ``.npy``/``.npz`` (:func:`load_array`), ``.csv`` (:func:`load_csv`), or a directory,
            read as Fashion-MNIST when it holds its IDX files and as an image folder
            (:func:`load_image_folder`) otherwise.
        split: ``"train"``, ``"test"`` or ``"all"``. Built-in datasets and two-split
            ``.npz`` archives have a test split; a single array, a CSV file or an image
            folder is one set, returned for ``"train"``/``"all"`` and refused for ``"test"``.
        data_dir: where Fashion-MNIST lives (see :func:`load_fashion_mnist`); refused for any other source.
        label_column: the CSV column holding class labels.
        image_size: ``(H, W)`` to resize an image folder's images to.

    Example:
        >>> load_dataset("digits", split="test").x.shape
        torch.Size([360, 1, 8, 8])
    """
    named = DATASET_NAMES.get(source.strip().lower()) if isinstance(source, str) else None
    if data_dir is not None and named != "fashion-mnist":  # no option is silently ignored
        raise ConfigError(f"data_dir (--data-dir) is the folder of the Fashion-MNIST IDX files, and {str(source)!r} does not read it; "
                          "drop it (a folder of IDX files can also be given as the data itself)")
    if named is not None:
        if named == "fashion-mnist":
            return load_fashion_mnist(split, data_dir)
        return load_digits(split)
    if is_sprites_source(source):
        return load_sprites(split, **parse_sprites_source(source))
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"no such file or directory: {path}; {_ACCEPTS}")
    if path.is_dir():
        if has_fashion_mnist(path):
            return load_fashion_mnist(split, path)
        check_split(split, ("train", "all"), f"image folder {path}")
        return load_image_folder(path, image_size=image_size)
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        return load_array(path, split)
    if suffix == ".csv":
        check_split(split, ("train", "all"), f"CSV file {path}")
        return load_csv(path, label_column=label_column)
    raise DataError(f"cannot load {path}: unknown file type {suffix or '(no suffix)'!r}; {_ACCEPTS}")


def has_test_split(source: str | os.PathLike) -> bool:
    """Whether ``load_dataset(source, "test")`` has a split of its own to give: the built-in
    datasets and the sprites, a folder of Fashion-MNIST IDX files, and an ``.npz`` archive with ``x_test``."""
    if isinstance(source, str) and source.strip().lower() in DATASET_NAMES:
        return True
    if is_sprites_source(source):
        return True
    path = Path(source).expanduser()
    if path.is_dir():
        return has_fashion_mnist(path)
    if path.suffix.lower() == ".npz" and path.is_file():
        try:
            loaded = np.load(path, allow_pickle=False)
            if isinstance(loaded, np.ndarray):  # a .npy file under an .npz name: one array, no test split
                return False
            with loaded as archive:
                return bool({"x_test", "X_test"} & set(archive.files))
        except (OSError, EOFError, ValueError, zipfile.BadZipFile):
            return False  # load_dataset will say what is wrong with the file
    return False
