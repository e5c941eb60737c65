"""Plots of numbers: training curves, KL per latent dimension, bars, lines, ROC, score histograms.

Every writer builds a pyplot-free matplotlib figure, saves it as PNG atomically (parent
directory created, a pre-existing file untouched on error), releases it, and returns
``Path(path)``.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from matplotlib.ticker import MaxNLocator

from vaekit.errors import ConfigError, DataError
from vaekit.viz._figure import new_figure, save_figure

__all__ = [
    "read_metrics",
    "plot_training_curves",
    "plot_kl_per_dimension",
    "plot_bars",
    "plot_lines",
    "plot_roc",
    "plot_score_histograms",
]

_SPLITS = ("train", "val")
_MAX_MARKED_POINTS = 50


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` file (one JSON object per line), in file order.

    Blank lines are skipped. A last line that does not parse and lacks its final newline — what
    a run killed mid-write leaves — is ignored; a bad line anywhere else raises
    :class:`~vaekit.errors.DataError`, as does a missing file.

    Example:
        >>> records = read_metrics("runs/mnist/metrics.jsonl")  # doctest: +SKIP
        >>> records[-1]["val/loss"]  # doctest: +SKIP
        97.3
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise DataError(f"metrics file not found: {path}") from exc
    lines = data.split(b"\n")
    records: list[dict[str, Any]] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        unterminated = number == len(lines)  # no newline after it
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            if unterminated:
                break  # truncated by a killed run
            raise DataError(f"{path}, line {number}: not valid JSON ({exc})") from exc
        if not isinstance(record, dict):
            raise DataError(f"{path}, line {number}: expected a JSON object, got {type(record).__name__}")
        records.append(record)
    return records


def plot_training_curves(history: Sequence[Mapping[str, Any]] | str | os.PathLike, path: str | os.PathLike) -> Path:
    """Plot per-epoch ``train/X`` and ``val/X`` metrics, one panel per term X.

    ``history`` is a list of records or the path of a ``metrics.jsonl`` (see
    :func:`read_metrics`). Only records with a numeric ``epoch`` are used (step-level records
    are ignored); when an epoch appears more than once (a resumed run), its last record wins.
    Every numeric ``train/X`` / ``val/X`` value gets a panel for X — ``loss`` first, then the
    other terms in order of first appearance — with epoch on the x axis and a train/val legend.
    Non-finite values leave gaps. Raises :class:`~vaekit.errors.DataError` when there is
    nothing to plot.

    Example:
        >>> plot_training_curves("runs/mnist/metrics.jsonl", "runs/mnist/curves.png")  # doctest: +SKIP
        PosixPath('runs/mnist/curves.png')
    """
    records = read_metrics(history) if isinstance(history, (str, os.PathLike)) else history
    series = _curve_series(_epoch_records(records))
    if not series:
        raise DataError("no per-epoch train/ or val/ metrics to plot (records need an 'epoch' key)")
    ncols = min(3, len(series))
    nrows = math.ceil(len(series) / ncols)
    fig, axes = new_figure(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows))
    flat_axes = axes.ravel()
    for ax, (term, splits) in zip(flat_axes, series.items()):
        for colour, split in zip(("C0", "C1"), _SPLITS):
            if split not in splits:
                continue
            epochs, values = splits[split]
            marker = "o" if len(epochs) <= _MAX_MARKED_POINTS else None
            ax.plot(epochs, values, color=colour, marker=marker, markersize=3, label=split)
        ax.set_title(term)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(term)
        ax.grid(alpha=0.3)
        ax.legend()
    for ax in flat_axes[len(series):]:
        ax.set_visible(False)
    return save_figure(fig, path)


def plot_kl_per_dimension(
    kl: torch.Tensor | np.ndarray | Sequence[float],
    path: str | os.PathLike,
    threshold: float = 0.01,
    *,
    sort: bool = False,
    activity: torch.Tensor | np.ndarray | Sequence[float] | None = None,
    activity_threshold: float = 0.01,
) -> Path:
    """Bar chart of the KL (nats) of each latent dimension.

    ``kl`` is ``(D,)`` or ``(N, D)`` (averaged over the N examples). Bars are in dimension
    order by default, so bar i is latent dimension i; ``sort=True`` orders them by decreasing
    KL, with the dimension indices as tick labels.

    Which dimensions are highlighted, and what the title counts, has one name per definition:

    * with ``activity`` (each unit's A_u = Cov_x(E_q[z_u]), as in ``vaekit.evaluate``), the
      **active units** of Burda et al. (2016, §5.2), A_u > ``activity_threshold``: the count
      ``metrics.json`` reports as ``active_units``; blue bars are active units;
    * without it, the dimensions whose KL exceeds ``threshold`` nats (a dashed line), counted
      as "dimensions with KL > threshold", never called active units.

    Example:
        >>> plot_kl_per_dimension(kl_per_dim, "runs/kl.png", activity=unit_activity)  # doctest: +SKIP
        PosixPath('runs/kl.png')
    """
    values = _as_float_array(kl, "kl")
    if values.ndim == 2:
        values = values.mean(axis=0)
    if values.ndim != 1 or values.size == 0:
        raise DataError(f"kl must be (D,) or (N, D) with D >= 1, got shape {np.shape(kl)}")
    _require_finite(values, "kl")
    threshold = float(threshold)
    if not math.isfinite(threshold) or threshold < 0:
        raise ConfigError(f"threshold must be a finite number >= 0 (nats), got {threshold!r}")
    units = None
    if activity is not None:
        units = _as_float_array(activity, "activity")
        if units.shape != values.shape:
            raise DataError(f"activity must have one value per latent dimension ({values.size}), got shape {units.shape}")
    dims = np.arange(values.size)
    if sort:
        dims = np.argsort(-values, kind="stable")
    shown = values[dims]
    highlighted = shown > threshold if units is None else units[dims] > activity_threshold
    count = int(highlighted.sum())
    fig, axes = new_figure(figsize=(max(6.4, min(16.0, 0.25 * values.size)), 4.0))
    ax = axes[0, 0]
    positions = np.arange(values.size)
    ax.bar(positions, shown, color=np.where(highlighted, "C0", "0.6"), width=0.8)
    if units is None:
        ax.axhline(threshold, color="C3", linestyle="--", linewidth=1, label=f"threshold {threshold:g} nats")
        ax.legend()
    if sort and values.size <= 64:
        ax.set_xticks(positions, [str(d) for d in dims], fontsize=7)
    elif sort:
        ax.set_xticks([])
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("latent dimension (sorted by KL)" if sort else "latent dimension")
    ax.set_ylabel("KL (nats)")
    if units is None:
        ax.set_title(f"KL per latent dimension\n{count} of {values.size} dimensions with KL > {threshold:g} nats")
    else:
        ax.set_title(f"KL per latent dimension\n{count} of {values.size} active units (blue: Cov_x E_q[z] > {activity_threshold:g})")
    return save_figure(fig, path)


def plot_bars(values: Mapping[str, float], path: str | os.PathLike, ylabel: str, title: str) -> Path:
    """Bar chart of named values, each bar labelled with its value.

    Example:
        >>> plot_bars({"AE": 0.012, "PCA": 0.031}, "mse.png", ylabel="MSE", title="Test error")  # doctest: +SKIP
        PosixPath('mse.png')
    """
    if not values:
        raise DataError("plot_bars needs at least one value")
    names = [str(k) for k in values]
    heights = _as_float_array(list(values.values()), "values")
    _require_finite(heights, "values")
    fig, axes = new_figure(figsize=(max(4.0, min(16.0, 0.8 * len(names) + 2)), 4.0))
    ax = axes[0, 0]
    bars = ax.bar(names, heights, color=[f"C{i % 10}" for i in range(len(names))])
    ax.bar_label(bars, fmt="%.3g", fontsize=8)
    if len(names) > 6 or max(len(n) for n in names) > 10:
        ax.tick_params(axis="x", labelrotation=45)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return save_figure(fig, path)


def plot_lines(
    x: Sequence[float] | np.ndarray | torch.Tensor,
    series: Mapping[str, Sequence[float] | np.ndarray | torch.Tensor],
    path: str | os.PathLike,
    xlabel: str,
    ylabel: str,
    title: str,
    logy: bool = False,
) -> Path:
    """One line per named series over the shared ``x``, with a legend; log y axis if ``logy``.

    Every series must have ``len(x)`` values; non-finite values leave gaps.

    Example:
        >>> plot_lines([2, 4, 8], {"AE": [0.05, 0.03, 0.02], "PCA": [0.06, 0.05, 0.04]},
        ...            "err.png", xlabel="latent dimension", ylabel="MSE", title="AE vs PCA",
        ...            logy=True)  # doctest: +SKIP
        PosixPath('err.png')
    """
    xs = _as_float_array(x, "x")
    if xs.ndim != 1 or xs.size == 0:
        raise DataError(f"x must be a non-empty 1-D sequence, got shape {xs.shape}")
    if not series:
        raise DataError("plot_lines needs at least one series")
    fig, axes = new_figure()
    ax = axes[0, 0]
    marker = "o" if xs.size <= _MAX_MARKED_POINTS else None
    for name, ys in series.items():
        values = _as_float_array(ys, f"series {name!r}")
        if values.shape != xs.shape:
            raise DataError(f"series {name!r} has shape {values.shape}, but x has {xs.size} values")
        ax.plot(xs, np.where(np.isfinite(values), values, np.nan), marker=marker, markersize=4, label=str(name))
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both" if logy else "major")
    ax.legend()
    return save_figure(fig, path)


def plot_roc(
    labels: Sequence[int] | np.ndarray | torch.Tensor,
    scores: Sequence[float] | np.ndarray | torch.Tensor,
    path: str | os.PathLike,
) -> Path:
    """ROC curve of anomaly ``scores`` against binary ``labels`` (1 = anomalous), AUROC in the legend.

    Higher scores must mean "more anomalous". Both classes must be present.

    Example:
        >>> plot_roc(is_anomaly, reconstruction_error, "runs/roc.png")  # doctest: +SKIP
        PosixPath('runs/roc.png')
    """
    from sklearn.metrics import roc_auc_score, roc_curve  # heavy import, only when needed

    y = _as_float_array(labels, "labels").ravel()
    s = _as_float_array(scores, "scores").ravel()
    if y.shape != s.shape:
        raise DataError(f"labels and scores must have the same length, got {y.size} and {s.size}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise DataError("labels must be 0 (normal) or 1 (anomalous)")
    if np.unique(y).size < 2:
        raise DataError("ROC needs both normal (0) and anomalous (1) examples")
    _require_finite(s, "scores")
    y = y.astype(np.int64)
    fpr, tpr, _ = roc_curve(y, s)
    auroc = roc_auc_score(y, s)
    fig, axes = new_figure(figsize=(5.0, 5.0))
    ax = axes[0, 0]
    ax.plot(fpr, tpr, color="C0", label=f"AUROC = {auroc:.3f}")
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"ROC ({int(y.sum())} anomalous, {int((1 - y).sum())} normal)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return save_figure(fig, path)


def plot_score_histograms(
    scores_normal: Sequence[float] | np.ndarray | torch.Tensor,
    scores_anomalous: Sequence[float] | np.ndarray | torch.Tensor,
    path: str | os.PathLike,
    threshold: float | None = None,
    *,
    bins: int = 50,
) -> Path:
    """Overlaid histograms of anomaly scores for normal and anomalous examples.

    Both use the same ``bins`` bin edges over the combined range and are normalised to
    densities, so a small anomalous set stays visible beside a large normal one. A given
    ``threshold`` is drawn as a dashed vertical line.

    Example:
        >>> plot_score_histograms(err[y == 0], err[y == 1], "runs/scores.png", threshold=t)  # doctest: +SKIP
        PosixPath('runs/scores.png')
    """
    normal = _as_float_array(scores_normal, "scores_normal").ravel()
    anomalous = _as_float_array(scores_anomalous, "scores_anomalous").ravel()
    if normal.size == 0 or anomalous.size == 0:
        raise DataError("plot_score_histograms needs at least one normal and one anomalous score")
    _require_finite(normal, "scores_normal")
    _require_finite(anomalous, "scores_anomalous")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ConfigError(f"bins must be a positive integer, got {bins!r}")
    edges = np.histogram_bin_edges(np.concatenate([normal, anomalous]), bins=bins)
    fig, axes = new_figure(figsize=(6.4, 4.0))
    ax = axes[0, 0]
    ax.hist(normal, bins=edges, density=True, alpha=0.5, color="C0", label=f"normal (n={normal.size})")
    ax.hist(anomalous, bins=edges, density=True, alpha=0.5, color="C3", label=f"anomalous (n={anomalous.size})")
    if threshold is not None:
        ax.axvline(float(threshold), color="k", linestyle="--", linewidth=1, label=f"threshold = {float(threshold):.4g}")
    ax.set_xlabel("anomaly score")
    ax.set_ylabel("density")
    ax.set_title("Anomaly scores")
    ax.legend()
    return save_figure(fig, path)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _epoch_records(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Records with a numeric ``epoch``, sorted by epoch, the last record of each epoch kept."""
    by_epoch: dict[float, Mapping[str, Any]] = {}
    for record in records:
        if isinstance(record, Mapping) and _is_number(record.get("epoch")):
            by_epoch[record["epoch"]] = record
    return [by_epoch[e] for e in sorted(by_epoch)]


def _curve_series(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, tuple[list[float], list[float]]]]:
    """``{term: {split: (epochs, values)}}`` for numeric ``split/term`` keys, ``loss`` first."""
    series: dict[str, dict[str, tuple[list[float], list[float]]]] = {}
    for record in records:
        for key, value in record.items():
            split, sep, term = str(key).partition("/")
            if not sep or split not in _SPLITS or not term or not _is_number(value):
                continue
            epochs, values = series.setdefault(term, {}).setdefault(split, ([], []))
            epochs.append(float(record["epoch"]))
            values.append(float(value) if math.isfinite(value) else math.nan)
    if "loss" in series:
        series = {"loss": series.pop("loss"), **series}
    return series


def _as_float_array(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().to(torch.float64).numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} must be numeric: {exc}") from exc


def _require_finite(values: np.ndarray, name: str) -> None:
    if not np.isfinite(values).all():
        raise DataError(f"{name} contains NaN or infinite values")
