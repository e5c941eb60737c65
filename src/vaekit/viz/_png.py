"""Write a uint8 image array as a PNG file, atomically."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from vaekit._io import atomic_path

__all__ = ["write_png"]


def write_png(array: np.ndarray, path: str | os.PathLike) -> Path:
    """Save an (H, W) grey or (H, W, 3) RGB ``uint8`` array to ``path`` as PNG; returns ``Path(path)``.

    The parent directory is created; the file appears only once complete.

    Example:
        >>> write_png(np.zeros((8, 8), np.uint8), "black.png")  # doctest: +SKIP
        PosixPath('black.png')
    """
    path = Path(path)
    image = Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8))
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path
