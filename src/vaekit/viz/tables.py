"""Pictures for vector (tabular) data, where an image grid would show meaningless strips.

A model of a table is judged by its marginals and by how well it reconstructs each value:
:func:`plot_marginals` overlays the histogram of each feature in the data and in the
samples, :func:`plot_reconstruction_scatter` plots every value against its reconstruction,
and :func:`write_csv` saves samples as a table another tool can read.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from vaekit._io import atomic_write_text
from vaekit.errors import DataError
from vaekit.viz._figure import new_figure, save_figure

__all__ = ["plot_marginals", "plot_reconstruction_scatter", "write_csv", "MAX_MARGINALS"]

MAX_MARGINALS = 16
"""At most this many features get a panel in :func:`plot_marginals` (the first ones)."""


def _table(x: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    values = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] == 0 or values.shape[1] == 0:
        raise DataError(f"{name} must be a table of shape (rows, features), got shape {values.shape}")
    return values


def plot_marginals(
    data: torch.Tensor | np.ndarray,
    samples: torch.Tensor | np.ndarray,
    path: str | os.PathLike,
    names: Sequence[str] | None = None,
    bins: int = 30,
) -> Path:
    """One panel per feature (the first :data:`MAX_MARGINALS`): the data's histogram and the samples', as densities.

    ``names`` (one per feature) title the panels; by default "feature j".

    Example:
        >>> plot_marginals(x_test, model.sample(1000), "marginals.png")  # doctest: +SKIP
        PosixPath('marginals.png')
    """
    real, fake = _table(data, "data"), _table(samples, "samples")
    if real.shape[1] != fake.shape[1]:
        raise DataError(f"data has {real.shape[1]} features but samples have {fake.shape[1]}")
    shown = min(real.shape[1], MAX_MARGINALS)
    names = list(names) if names is not None else [f"feature {j}" for j in range(real.shape[1])]
    if len(names) != real.shape[1]:
        raise DataError(f"{len(names)} feature names for {real.shape[1]} features; give one name per feature")
    cols = min(4, shown)
    rows = math.ceil(shown / cols)
    fig, axes = new_figure(rows, cols, figsize=(3.2 * cols, 2.4 * rows))
    for j in range(rows * cols):
        ax = axes.flat[j]
        if j >= shown:
            ax.set_visible(False)
            continue
        finite = np.concatenate([real[:, j], fake[:, j]])
        finite = finite[np.isfinite(finite)]
        low, high = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
        edges = np.linspace(low, high if high > low else low + 1.0, bins + 1)
        ax.hist(real[:, j], bins=edges, density=True, alpha=0.5, color="C0", label="data")
        ax.hist(fake[:, j], bins=edges, density=True, histtype="step", linewidth=1.5, color="C3", label="samples")
        ax.set_title(names[j], fontsize=9)
        ax.tick_params(labelsize=7)
        if j == 0:
            ax.legend(fontsize=7)
    suffix = f" (first {shown} of {real.shape[1]})" if shown < real.shape[1] else ""
    fig.suptitle(f"marginals: data vs samples{suffix}")
    return save_figure(fig, path)


def plot_reconstruction_scatter(data: torch.Tensor | np.ndarray, reconstructions: torch.Tensor | np.ndarray, path: str | os.PathLike) -> Path:
    """Every value against its reconstruction (one colour per feature, the diagonal for reference).

    Example:
        >>> plot_reconstruction_scatter(x_test, model.reconstruct(x_test), "reconstructions.png")  # doctest: +SKIP
        PosixPath('reconstructions.png')
    """
    real, rec = _table(data, "data"), _table(reconstructions, "reconstructions")
    if real.shape != rec.shape:
        raise DataError(f"data has shape {real.shape} but reconstructions have {rec.shape}")
    fig, axes = new_figure(figsize=(5.0, 5.0))
    ax = axes[0, 0]
    for j in range(real.shape[1]):
        ax.scatter(real[:, j], rec[:, j], s=6, alpha=0.6, color=f"C{j % 10}")
    finite = np.concatenate([real.ravel(), rec.ravel()])
    finite = finite[np.isfinite(finite)]
    if finite.size:
        ax.plot([finite.min(), finite.max()], [finite.min(), finite.max()], color="0.3", linestyle="--", linewidth=1)
    ax.set_xlabel("value")
    ax.set_ylabel("reconstruction")
    ax.set_title(f"reconstructions of {real.shape[0]} rows × {real.shape[1]} features")
    return save_figure(fig, path)


def write_csv(x: torch.Tensor | np.ndarray, path: str | os.PathLike, names: Sequence[str] | None = None) -> Path:
    """Write a (rows, features) table as CSV with a header row, atomically."""
    values = _table(x, "x")
    names = list(names) if names is not None else [f"x{j}" for j in range(values.shape[1])]
    if len(names) != values.shape[1]:
        raise DataError(f"{len(names)} column names for {values.shape[1]} features")
    lines = [",".join(names)] + [",".join(f"{v:.6g}" for v in row) for row in values]
    path = Path(path)
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
