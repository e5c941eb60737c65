"""Pictures of the latent space: a 2-D map of the codes, and the decoded manifold of a 2-D latent space.

:func:`latent_map` projects codes z_i = E_q[z | x_i] (posterior means; the point code of a
deterministic autoencoder) to the plane, :func:`plot_latent_map` draws them coloured by
class, and :func:`manifold_grid` decodes a regular grid of a 2-D latent space into the
picture of the learned manifold (Kingma & Welling, fig. 4).

Projections:

* ``"pca"``: the first two principal components (scikit-learn's ``PCA``): linear, exact,
  milliseconds; distances along the axes are distances in z (up to the dropped components).
  A latent space of one or two dimensions is drawn as it is (PCA would only rotate it), so
  a 2-D map shares its axes with the decoded manifold.
* ``"tsne"``: t-SNE (scikit-learn's ``TSNE``, PCA initialisation): keeps neighbourhoods,
  not distances; seconds to a minute for thousands of codes.
* ``"umap"``: UMAP (the ``umap-learn`` package, optional): neighbourhoods like t-SNE, faster
  on large sets.

References:
    Visualizing Data using t-SNE (van der Maaten & Hinton, 2008), JMLR 9.
    UMAP: Uniform Manifold Approximation and Projection for Dimension Reduction (McInnes,
    Healy & Melville, 2018), arXiv:1802.03426.
    Auto-Encoding Variational Bayes (Kingma & Welling, 2014), arXiv:1312.6114 — fig. 4, the
    learned manifold of a 2-D latent space.
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from vaekit.errors import ConfigError, DataError
from vaekit.viz._figure import new_figure, save_figure
from vaekit.viz.grids import save_image_grid

__all__ = [
    "METHODS",
    "MAX_LEGEND_CLASSES",
    "check_method",
    "latent_codes",
    "latent_map",
    "map_axis_names",
    "plot_latent_map",
    "manifold_codes",
    "manifold_grid",
    "manifold_problem",
    "manifold_range",
    "save_manifold",
    "tsne_perplexity",
]

METHODS = ("pca", "tsne", "umap")
"""The projections :func:`latent_map` offers."""

MAX_LEGEND_CLASSES = 20
"""Integer labels with at most this many distinct values get one colour each and a legend; others a colour bar."""


_CHUNK = 1024


def check_method(method: str) -> str:
    """``method`` if :func:`latent_map` can use it here; else one ConfigError naming the fix.

    ``"umap"`` needs the optional ``umap-learn`` package; its absence is reported before
    any work is done.

    Example:
        >>> check_method("pca")
        'pca'
    """
    if method not in METHODS:
        raise ConfigError(f"unknown latent-map method {method!r}: choose one of {', '.join(METHODS)}")
    if method == "umap" and importlib.util.find_spec("umap") is None:
        raise ConfigError("the umap method needs the umap-learn package, which is not installed: pip install umap-learn "
                          "(or choose method pca or tsne)")
    return method


@torch.no_grad()
def latent_codes(model: Any, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """The codes ``model.transform(x, y)`` (posterior means), in chunks, in evaluation mode; ``(N, D)`` on the CPU.

    Codes with more than one axis per example (a grid of codes) are flattened.
    """
    was_training = model.training
    model.eval()
    device = model.device
    try:
        out = []
        for i in range(0, x.shape[0], _CHUNK):
            yi = None if y is None else y[i : i + _CHUNK].to(device)
            out.append(model.transform(x[i : i + _CHUNK].to(device), yi).reshape(min(_CHUNK, x.shape[0] - i), -1).cpu())
    finally:
        model.train(was_training)
    return torch.cat(out)


def _as_codes(codes: torch.Tensor | np.ndarray) -> np.ndarray:
    values = np.asarray(codes.detach().cpu() if isinstance(codes, torch.Tensor) else codes, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] < 1:
        raise DataError(f"codes must be a table of shape (N, latent_dim), got shape {values.shape}")
    if values.shape[0] < 3:
        raise DataError(f"a latent map needs at least 3 codes, got {values.shape[0]}; give more examples")
    if not np.isfinite(values).all():
        raise DataError("codes contain NaN or infinite values; the model or the data is broken")
    return values


def _as_labels(labels: torch.Tensor | np.ndarray | Sequence | None, n: int) -> np.ndarray | None:
    if labels is None:
        return None
    values = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels)
    if values.ndim != 1 or values.shape[0] != n:
        raise DataError(f"labels must hold one value per code ({n}), got shape {values.shape}")
    return values


def tsne_perplexity(n: int) -> float:
    """t-SNE's perplexity for ``n`` points: scikit-learn's 30, lowered to (n − 1)/3 for small sets.

    The perplexity is the effective number of neighbours and must stay below n; (n − 1)/3
    keeps each point's neighbourhood a third of the set (at least 1).
    """
    return float(min(30.0, max(1.0, (n - 1) / 3)))


def latent_map(
    codes: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray | Sequence | None = None,
    method: str = "pca",
    seed: int = 0,
) -> np.ndarray:
    """The ``(N, 2)`` coordinates of ``codes`` ``(N, D)`` on a plane, by PCA, t-SNE or UMAP.

    Every method is unsupervised: ``labels`` (one per code, or None) are only checked
    against the codes, so the map shows what the model separates, not what a supervised
    projection could force. With ``"pca"`` a latent space of at most two dimensions is
    returned as it is, (z₁, z₂) — or (z, 0) for one dimension — since its principal
    components would only rotate and centre it; :func:`map_axis_names` names the axes.

    Arguments:
        codes: latent codes, e.g. :func:`latent_codes` of a model.
        labels: one label per code (checked only; colour with :func:`plot_latent_map`).
        method: ``"pca"``, ``"tsne"`` (perplexity :func:`tsne_perplexity`) or ``"umap"``.
        seed: seeds t-SNE and UMAP (PCA is deterministic).

    Example:
        >>> latent_map(np.random.default_rng(0).normal(size=(50, 8))).shape
        (50, 2)
    """
    check_method(method)
    z = _as_codes(codes)
    _as_labels(labels, z.shape[0])
    n, d = z.shape
    if d == 1:
        return np.concatenate([z, np.zeros((n, 1))], axis=1)
    if method == "pca":
        from sklearn.decomposition import PCA

        return z.copy() if d == 2 else PCA(n_components=2, random_state=seed).fit_transform(z)
    if method == "tsne":
        from sklearn.manifold import TSNE

        return TSNE(n_components=2, perplexity=tsne_perplexity(n), init="pca", learning_rate="auto",
                    random_state=seed).fit_transform(z).astype(np.float64)
    import umap  # checked by check_method

    return np.asarray(umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), random_state=seed).fit_transform(z),
                      dtype=np.float64)


def map_axis_names(method: str, latent_dim: int) -> tuple[str, str]:
    """The axis labels of a :func:`latent_map` by ``method`` of codes with ``latent_dim`` dimensions.

    Example:
        >>> map_axis_names("pca", 16), map_axis_names("pca", 2)
        (('PC 1', 'PC 2'), ('z1', 'z2'))
    """
    if latent_dim == 1:
        return "z1", "(one latent dimension)"
    if method == "pca" and latent_dim == 2:
        return "z1", "z2"
    prefix = {"pca": "PC", "tsne": "t-SNE", "umap": "UMAP"}[method]
    return f"{prefix} 1", f"{prefix} 2"


def plot_latent_map(
    points: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray | Sequence | None,
    path: str | os.PathLike,
    title: str,
    *,
    class_names: Sequence[str] | None = None,
    axis_names: tuple[str, str] = ("dimension 1", "dimension 2"),
) -> Path:
    """Scatter ``points`` ``(N, 2)`` coloured by ``labels``; saves a PNG and returns ``Path(path)``.

    Integer labels with at most :data:`MAX_LEGEND_CLASSES` distinct values get one colour
    per class and a legend (``class_names[k]`` names label k when given), as do text labels
    (each its own name; more than :data:`MAX_LEGEND_CLASSES` of them raise DataError); other
    labels (many classes, real values) a viridis colour bar. Without labels every point has one
    colour and the title says so. ``axis_names`` label the axes (see :func:`map_axis_names`).

    Example:
        >>> points = latent_map(codes, method="pca")  # doctest: +SKIP
        >>> plot_latent_map(points, y, "runs/vae/latent_map.png", "vae on digits")  # doctest: +SKIP
        PosixPath('runs/vae/latent_map.png')
    """
    xy = np.asarray(points.detach().cpu() if isinstance(points, torch.Tensor) else points, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2 or xy.shape[0] == 0:
        raise DataError(f"points must have shape (N, 2), got {xy.shape}")
    values = _as_labels(labels, xy.shape[0])
    n = xy.shape[0]
    size = float(min(20.0, max(2.0, 4000.0 / n)))
    fig, axes = new_figure(figsize=(6.4, 5.0))
    ax = axes[0, 0]
    integer = values is not None and (np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.bool_))
    named = values is not None and values.dtype.kind in "US"  # class names as strings: classes, never a colour bar
    if named and len(np.unique(values)) > MAX_LEGEND_CLASSES:
        raise DataError(f"{len(np.unique(values))} distinct text labels are too many for a legend (at most {MAX_LEGEND_CLASSES}); "
                        "give integer class indices (a colour bar) or fewer classes")
    classes = np.unique(values) if integer or named else None
    if values is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=size, alpha=0.7, color="C0", linewidths=0)
        title = f"{title} (no labels: one colour)"
    elif classes is not None and len(classes) <= MAX_LEGEND_CLASSES:
        cmap = "tab10" if len(classes) <= 10 else "tab20"
        import matplotlib

        colours = matplotlib.colormaps[cmap]
        for i, k in enumerate(classes):
            mask = values == k
            name = str(class_names[int(k)]) if integer and class_names is not None and 0 <= int(k) < len(class_names) else str(k)
            ax.scatter(xy[mask, 0], xy[mask, 1], s=size, alpha=0.7, color=colours(i % colours.N), linewidths=0, label=name)
        ax.legend(title="label", loc="center left", bbox_to_anchor=(1.01, 0.5), markerscale=max(1.0, 30.0 / size) ** 0.5,
                  fontsize=8, frameon=False)
    else:
        shown = ax.scatter(xy[:, 0], xy[:, 1], c=values.astype(np.float64), s=size, alpha=0.7, cmap="viridis", linewidths=0)
        fig.colorbar(shown, ax=ax, label="label")
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    ax.set_title(title)
    ax.grid(alpha=0.2)
    return save_figure(fig, path)


# -- the decoded manifold of a 2-D latent space -------------------------------------------------
def manifold_codes(n: int = 15, range: float = 3.0) -> torch.Tensor:
    """The ``(n·n, 2)`` codes of an n × n grid over [−range, range]², in picture order.

    The grid is linear in z (not in the prior's quantiles Φ⁻¹(p) as Kingma & Welling's fig. 4):
    equal steps in z, like ``vaekit traverse --range``, so the picture reads as a map of the
    plane. Code ``i * n + j`` is row i (top to bottom) and column j (left to right):
    z₁ = −range + 2·range·j/(n − 1) grows to the right and z₂ = range − 2·range·i/(n − 1)
    grows upwards, as on a plot.

    Example:
        >>> manifold_codes(3, 1.0)[:3]
        tensor([[-1.,  1.],
                [ 0.,  1.],
                [ 1.,  1.]])
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ConfigError(f"the manifold grid needs n >= 2 points per side, got {n!r}")
    r = float(range)
    if not math.isfinite(r) or r <= 0:
        raise ConfigError(f"the manifold range must be a finite number > 0, got {range!r}")
    axis = torch.linspace(-r, r, n)
    z2, z1 = torch.meshgrid(axis.flip(0), axis, indexing="ij")
    return torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1)


def manifold_problem(model: Any, range: float = 3.0) -> str | None:
    """Why :func:`manifold_grid` cannot draw ``model`` (a sentence), or None when it can.

    It needs a 2-D latent space of real values (the grid's corners inside the prior's
    support), an unconditional model, and images (a decoded vector has no picture).
    """
    if int(model.latent_dim) != 2:
        return f"the manifold grid decodes a 2-D latent space, and this model has latent_dim={model.latent_dim}"
    if model.conditional:
        return "the model is conditional: its manifold depends on the label"
    if len(tuple(model.input_shape)) == 1:
        return "the model decodes vectors (a table), which have no picture"
    if getattr(model, "decoder", None) is None:
        return "the model has no decoder"
    if model.prior_module is not None:
        corners = torch.tensor([[-range, -range], [range, range]], dtype=torch.float32, device=model.device)
        support = model.prior().support
        if not bool(support.check(corners).all()):
            return (f"the model's latent codes are not real-valued (prior support {support}), "
                    "so a grid over [-r, r]² is meaningless")
    return None


def manifold_range(model: Any, codes: torch.Tensor | np.ndarray | None = None) -> float:
    """The default half-width r of the manifold grid: 3 for a model with a prior, else the codes' extent.

    With a prior (standard normal for most presets) [−3, 3]² holds 99.5 % of its mass per
    axis. A deterministic autoencoder's codes have no set scale: r is then the 99th
    percentile of |z| over ``codes``, rounded up to a multiple of 0.5.
    """
    if model.prior_module is not None or codes is None:
        return 3.0
    values = np.abs(np.asarray(codes.detach().cpu() if isinstance(codes, torch.Tensor) else codes, dtype=np.float64))
    values = values[np.isfinite(values)]
    extent = float(np.quantile(values, 0.99)) if values.size else 3.0
    return max(0.5, math.ceil(extent * 2) / 2)


@torch.no_grad()
def manifold_grid(model: Any, n: int = 15, range: float = 3.0) -> torch.Tensor:
    """The decoder means ``E p(x | z)`` at :func:`manifold_codes` ``(n, range)``: ``(n·n, *input_shape)`` on the CPU.

    Arguments:
        model: an unconditional vaekit model with a 2-D latent space.
        n: grid points per side.
        range: the grid spans [−range, range]² (3 covers ±3 standard deviations of a
            standard normal prior).

    Example:
        >>> images = manifold_grid(model, n=15)  # doctest: +SKIP
        >>> save_image_grid(images, "manifold.png", nrow=15)  # doctest: +SKIP
    """
    codes = manifold_codes(n, range)
    problem = manifold_problem(model, float(range))
    if problem is not None:
        raise ConfigError(f"no manifold grid: {problem}")
    was_training = model.training
    model.eval()
    try:
        return model.decode(codes.to(model.device)).mean.cpu()
    finally:
        model.train(was_training)


def save_manifold(model: Any, path: str | os.PathLike, n: int = 15, range: float = 3.0) -> Path:
    """Save :func:`manifold_grid` as an n × n PNG grid (z₁ rightwards, z₂ upwards); returns ``Path(path)``."""
    return save_image_grid(manifold_grid(model, n, range), path, nrow=n, input_shape=tuple(model.input_shape))
