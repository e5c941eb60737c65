"""Matplotlib figures without pyplot, saved atomically as PNG.

Figures are built with :class:`matplotlib.figure.Figure` on a :class:`FigureCanvasAgg`
directly, so vaekit never selects a global backend nor registers figures with pyplot
(nothing to leak, nothing shared between threads).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vaekit._io import atomic_path

__all__ = ["new_figure", "save_figure"]


def new_figure(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (6.4, 4.8)) -> tuple[Figure, np.ndarray]:
    """A constrained-layout figure with an ``(nrows, ncols)`` array of axes, on an Agg canvas.

    Example:
        >>> fig, axes = new_figure(1, 2)
        >>> axes.shape
        (1, 2)
    """
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Write ``fig`` to ``path`` as PNG atomically, then clear it; returns ``Path(path)``.

    The parent directory is created. On an error a pre-existing ``path`` is left intact.

    Example:
        >>> fig, axes = new_figure()
        >>> save_figure(fig, "plot.png")  # doctest: +SKIP
        PosixPath('plot.png')
    """
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        fig.clear()
    return path
