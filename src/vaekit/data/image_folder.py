"""Loading a folder of image files (optionally one subfolder per class) with Pillow."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from vaekit.data.dataset import Dataset
from vaekit.errors import DataError

__all__ = ["load_image_folder", "list_images", "IMAGE_SUFFIXES"]

#: File suffixes (lower case) read as images.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")

# Pillow modes that hold one grey channel (with or without alpha).
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_HIGH_DEPTH = {"I": 65535.0, "I;16": 65535.0, "I;16L": 65535.0, "I;16B": 65535.0, "I;16N": 65535.0, "F": 1.0}


def load_image_folder(
    path: str | os.PathLike,
    image_size: Sequence[int] | None = None,
    mode: str | None = None,
) -> Dataset:
    """Load every image file under ``path`` (recursively, sorted by relative path, hidden files skipped).

    Arguments:
        path: the folder. When every image sits in a subfolder, the first-level subfolder
            names are the classes (sorted names -> labels 0..K-1, kept in ``classes``);
            otherwise the data is unlabelled (``y=None``).
        image_size: ``(H, W)`` to resize every image to (bilinear); required when the
            images differ in size.
        mode: ``"L"`` (grey, 1 channel) or ``"RGB"`` (3 channels); by default ``"L"`` when
            every image is greyscale, else ``"RGB"``. Alpha is dropped; palette images
            count as colour.

    Returns:
        A Dataset with ``x`` float32 ``(N, C, H, W)`` in ``[0, 1]`` (8-bit values / 255,
        16-bit values / 65535).

    Raises:
        DataError: the folder is missing or has no images, a file cannot be read, the
            sizes differ without ``image_size``, or ``mode``/``image_size`` is invalid.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist or is not a directory")
    if mode is not None and mode not in ("L", "RGB"):
        raise DataError(f"mode must be 'L' (grey) or 'RGB', got {mode!r}")
    size = _check_size(image_size)
    files, mode, _ = scan_image_folder(root, size, mode)
    x = torch.from_numpy(np.stack([_read(f, mode, size) for f in files]))
    y, classes = _labels(root, files)
    return Dataset(x, y, name=root.name, classes=classes)


def scan_image_folder(root: Path, size: tuple[int, int] | None, mode: str | None = None) -> tuple[list[Path], str, tuple[int, int]]:
    """The image files under ``root``, the colour mode to read them in ("L" when every one is greyscale, unless
    ``mode`` is given) and the (H, W) they will have, from their headers alone; a ``DataError`` when the folder
    has no images or, without ``size``, when their sizes differ."""
    files = list_images(root)
    if not files:
        raise DataError(f"image folder {root} has no image files ({', '.join(IMAGE_SUFFIXES)})")
    headers = [_header(f) for f in files]
    if mode is None:
        mode = "L" if all(m in _GRAY_MODES for m, _ in headers) else "RGB"
    if size is not None:
        return files, mode, size
    sizes = {s: f for f, (_, s) in zip(files, headers)}
    if len(sizes) > 1:
        (s1, f1), (s2, f2) = list(sizes.items())[:2]
        raise DataError(
            f"images in {root} differ in size: {f1.relative_to(root)} is {s1[0]}x{s1[1]} and "
            f"{f2.relative_to(root)} is {s2[0]}x{s2[1]} (width x height); pass image_size=(H, W) "
            "(--image-size) to resize them all"
        )
    width, height = headers[0][1]
    return files, mode, (height, width)


def list_images(root: Path) -> list[Path]:
    """Every file under ``root`` with a suffix in :data:`IMAGE_SUFFIXES`, sorted by relative path.

    Hidden files and folders (names starting with ``.``) are skipped.
    """
    found = (
        p for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
        and p.is_file()
    )
    return sorted(found, key=lambda p: p.relative_to(root).parts)


def _check_size(image_size: Sequence[int] | None) -> tuple[int, int] | None:
    if image_size is None:
        return None
    try:
        h, w = (int(v) for v in image_size)
    except (TypeError, ValueError) as e:
        raise DataError(f"image_size must be (height, width), got {image_size!r}") from e
    if h <= 0 or w <= 0:
        raise DataError(f"image_size must be positive, got {(h, w)}")
    return h, w


def _header(file: Path) -> tuple[str, tuple[int, int]]:
    """The Pillow mode and (width, height) of ``file``, read from its header only."""
    try:
        with Image.open(file) as image:
            return image.mode, image.size
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError) as e:
        raise DataError(f"cannot read image {file}: {e}") from e


def _read(file: Path, mode: str, size: tuple[int, int] | None) -> np.ndarray:
    """``file`` as a float32 ``(C, H, W)`` array in [0, 1]."""
    try:
        with Image.open(file) as image:
            image.load()
            array = _to_array(image, mode, size)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError) as e:
        raise DataError(f"cannot read image {file}: {e}") from e
    return array


def _to_array(image: Image.Image, mode: str, size: tuple[int, int] | None) -> np.ndarray:
    if image.mode in _HIGH_DEPTH:
        # 16-bit / 32-bit grey: resize at full depth, then scale to [0, 1].
        scale = _HIGH_DEPTH[image.mode]
        grey = image.convert("F") if image.mode != "F" else image
        if size is not None:
            grey = grey.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        array = np.clip(np.asarray(grey, dtype=np.float32) / np.float32(scale), 0.0, 1.0)[None]
        return np.repeat(array, 3, axis=0) if mode == "RGB" else array
    converted = image.convert(mode)
    if size is not None:
        converted = converted.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    array = np.asarray(converted, dtype=np.float32) / np.float32(255.0)
    return array[None] if mode == "L" else array.transpose(2, 0, 1)


def _labels(root: Path, files: list[Path]) -> tuple[torch.Tensor | None, list[str] | None]:
    parts = [f.relative_to(root).parts for f in files]
    if any(len(p) < 2 for p in parts):
        return None, None
    classes = sorted({p[0] for p in parts})
    index = {name: i for i, name in enumerate(classes)}
    return torch.tensor([index[p[0]] for p in parts], dtype=torch.int64), classes
