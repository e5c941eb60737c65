"""Fashion-MNIST, read from its four IDX files (raw or ``.gz``); nothing is downloaded.

Reference: H. Xiao, K. Rasul, R. Vollgraf, "Fashion-MNIST: a Novel Image Dataset for
Benchmarking Machine Learning Algorithms", 2017, https://arxiv.org/abs/1708.07747.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from vaekit.data._splits import check_split
from vaekit.data.dataset import Dataset
from vaekit.data.idx import read_idx
from vaekit.errors import DataError

__all__ = [
    "load_fashion_mnist",
    "find_fashion_mnist",
    "has_fashion_mnist",
    "FASHION_MNIST_FILES",
    "DEFAULT_FASHION_MNIST_DIR",
]

#: Where Debian's ``dataset-fashion-mnist`` package installs the files.
DEFAULT_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

#: split -> (images file, labels file), without the optional ``.gz``.
FASHION_MNIST_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

IMAGE_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABEL_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
IMAGE_SIZE = (28, 28)
NUM_CLASSES = 10

FIX = "install it with `apt-get install dataset-fashion-mnist` or pass --data-dir / set VAEKIT_DATA"


def load_fashion_mnist(split: str = "train", data_dir: str | os.PathLike | None = None) -> Dataset:
    """Load Fashion-MNIST: ``x`` is ``(N, 1, 28, 28)`` float32 (bytes / 255), ``y`` int64 in 0..9.

    Arguments:
        split: ``"train"`` (60 000 images), ``"test"`` (10 000) or ``"all"`` (both, train first).
        data_dir: the directory holding the files (or a ``fashion-mnist`` folder inside it);
            by default ``$VAEKIT_DATA`` when it holds them, else
            ``/usr/share/datasets/fashion-mnist``. See :func:`find_fashion_mnist`.

    Raises:
        DataError: a file is missing or corrupt; the message names the directory, the
            file and how to install the data.

    Example:
        >>> test = load_fashion_mnist("test")  # doctest: +SKIP
        >>> test.x.shape, test.num_classes  # doctest: +SKIP
        (torch.Size([10000, 1, 28, 28]), 10)
    """
    check_split(split, ("train", "test", "all"), "Fashion-MNIST")
    directory = find_fashion_mnist(data_dir)
    if split == "all":
        parts = [load_fashion_mnist(s, directory) for s in ("train", "test")]
        return Dataset(torch.cat([p.x for p in parts]), torch.cat([p.y for p in parts]),
                       name="fashion-mnist/all")
    images_name, labels_name = FASHION_MNIST_FILES[split]
    images = _read(directory, images_name, IMAGE_MAGIC)
    labels = _read(directory, labels_name, LABEL_MAGIC)
    if images.ndim != 3 or images.shape[1:] != IMAGE_SIZE:
        raise _corrupt(directory, images_name, f"images have shape {images.shape}, expected (N, 28, 28)")
    if labels.ndim != 1 or len(labels) != len(images):
        raise _corrupt(directory, labels_name,
                       f"{labels.shape[0]} labels for {images.shape[0]} images in {images_name}")
    if labels.size and int(labels.max()) >= NUM_CLASSES:
        raise _corrupt(directory, labels_name, f"label {int(labels.max())} is out of range 0..9")
    x = torch.from_numpy(images).to(torch.float32).div_(255.0).unsqueeze_(1)
    y = torch.from_numpy(labels).to(torch.int64)
    return Dataset(x, y, name=f"fashion-mnist/{split}")


def find_fashion_mnist(data_dir: str | os.PathLike | None = None) -> Path:
    """The directory to read Fashion-MNIST from.

    ``data_dir`` if given (or its ``fashion-mnist`` subdirectory when only that holds the
    files); else ``$VAEKIT_DATA`` or ``$VAEKIT_DATA/fashion-mnist`` when either holds
    them; else :data:`DEFAULT_FASHION_MNIST_DIR`. Files are not checked here beyond
    their presence; a directory that holds none of them is still returned when it is
    the last candidate, so the loader's message names it.
    """
    if data_dir is not None:
        base = Path(data_dir)
        candidates = [base, base / "fashion-mnist"]
        return next((d for d in candidates if has_fashion_mnist(d)), base)
    env = os.environ.get("VAEKIT_DATA")
    if env:
        for d in (Path(env), Path(env) / "fashion-mnist"):
            if has_fashion_mnist(d):
                return d
    return DEFAULT_FASHION_MNIST_DIR


def has_fashion_mnist(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` holds at least one of the Fashion-MNIST IDX files (raw or ``.gz``)."""
    directory = Path(directory)
    names = [n for pair in FASHION_MNIST_FILES.values() for n in pair]
    return any((directory / n).is_file() or (directory / f"{n}.gz").is_file() for n in names)


def _read(directory: Path, name: str, magic: int) -> np.ndarray:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            try:
                return read_idx(candidate, expected_magic=magic)
            except DataError as e:
                raise _corrupt(directory, candidate.name, str(e)) from e
    searched = "" if os.environ.get("VAEKIT_DATA") is None else f" (VAEKIT_DATA={os.environ['VAEKIT_DATA']})"
    raise DataError(
        f"Fashion-MNIST not found: no {name} or {name}.gz in directory {directory}{searched}; {FIX}"
    )


def _corrupt(directory: Path, name: str, problem: str) -> DataError:
    return DataError(
        f"Fashion-MNIST file {name} in directory {directory} is corrupt: {problem}; "
        f"re{FIX}"
    )
