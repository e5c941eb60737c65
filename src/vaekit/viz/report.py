"""One self-contained HTML page per run: configuration, metrics and every picture of the model.

:func:`write_report` writes ``RUN/report.html``: a single file with inline CSS and every
image embedded as a base64 ``data:`` URI, so it opens in any browser, offline, and can be
mailed or archived alone. Its sections:

* **Configuration**: ``config.json`` (the model) and ``train.yaml`` (the training settings).
* **Metrics**: ``metrics.json`` as a table.
* **Training curves**: ``metrics.jsonl`` through :func:`~vaekit.viz.plot_training_curves`.
* **Samples**: from the model's prior, or the samples the caller passes (a fitted ex-post
  sampler's, for a deterministic autoencoder); for vector data their marginals against the data's.
* **Reconstructions**: originals over reconstructions; for vector data a value-against-reconstruction scatter.
* **Latent traversals**: the first example's code swept along up to 10 dimensions
  (those with the largest KL when ``metrics.json`` has it) — images only.
* **Latent map**: the PCA map of the codes, coloured by label, and for a 2-D latent space
  the decoded manifold (see :mod:`vaekit.viz.latent_map`).
* **KL per dimension**: ``metrics.json``'s ``kl_per_dimension``, active units from its
  ``unit_activity`` (:func:`~vaekit.viz.plot_kl_per_dimension`).
* **Sample quality** and **Disentanglement**: ``RUN/sample_quality.json`` and
  ``RUN/disentanglement.json``, where present.

Only ``report.html`` is written (atomically); the pictures are drawn in a temporary folder
and nothing else in the run folder is touched. Every text taken from a file is HTML-escaped.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import yaml
from PIL import Image

from vaekit._io import atomic_write_text
from vaekit._version import __version__
from vaekit.errors import ConfigError, DataError, VaekitError
from vaekit.viz.curves import plot_kl_per_dimension, plot_training_curves, read_metrics
from vaekit.viz.grids import save_image_grid, save_image_rows, save_reconstructions
from vaekit.viz.latent_map import (
    latent_codes, latent_map, manifold_problem, manifold_range, map_axis_names, plot_latent_map, save_manifold,
)
from vaekit.viz.tables import plot_marginals, plot_reconstruction_scatter
from vaekit.viz.traversals import traversal_rows, traversal_values

__all__ = ["write_report", "REPORT_FILE", "SAMPLE_QUALITY_FILE", "DISENTANGLEMENT_FILE", "SECTION_TITLES"]

REPORT_FILE = "report.html"
SAMPLE_QUALITY_FILE = "sample_quality.json"
"""Where the report looks for sample-quality scores (the JSON ``vaekit sample-quality`` prints)."""
DISENTANGLEMENT_FILE = "disentanglement.json"
"""Where the report looks for disentanglement scores (the JSON ``vaekit disentanglement`` prints)."""

SECTION_TITLES = {
    "config": "Configuration",
    "metrics": "Metrics",
    "curves": "Training curves",
    "samples": "Samples",
    "reconstructions": "Reconstructions",
    "traversals": "Latent traversals",
    "latent-map": "Latent map",
    "kl": "KL per dimension",
    "sample-quality": "Sample quality",
    "disentanglement": "Disentanglement",
}
"""The sections of a report, by anchor, in page order (the last two only where their file exists)."""

_MAX_LIST = 8
_TRAVERSED_DIMS = 10
_GRID_DISPLAY_WIDTH = 480
"""Image grids narrower than this are shown enlarged by an integer factor (pixelated, so every pixel stays sharp)."""

_CSS = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 0;
       background: #f4f5f7; color: #1d2330; line-height: 1.45; }
header { background: #1d2330; color: #fff; padding: 1.2rem 2rem 1rem; }
header h1 { margin: 0 0 .3rem; font-size: 1.5rem; }
header p { margin: .15rem 0; color: #c9cfdb; font-size: .9rem; }
header code { color: #fff; }
nav { margin-top: .7rem; display: flex; flex-wrap: wrap; gap: .35rem .9rem; font-size: .9rem; }
nav a { color: #9cc3ff; text-decoration: none; }
nav a:hover { text-decoration: underline; }
main { max-width: 1320px; margin: 0 auto; padding: 1rem 2rem 2rem; }
section { background: #fff; border-radius: 8px; padding: 1rem 1.4rem 1.2rem; margin: 1rem 0;
          box-shadow: 0 1px 3px rgba(0, 0, 0, .08); }
h2 { margin: 0 0 .7rem; font-size: 1.2rem; border-bottom: 1px solid #e3e6ec; padding-bottom: .35rem; }
h3 { font-size: 1rem; margin: .4rem 0 .5rem; }
.columns { display: flex; flex-wrap: wrap; gap: 1.2rem 2rem; align-items: flex-start; }
.columns > div { flex: 1 1 320px; min-width: 0; }
table { border-collapse: collapse; font-size: .88rem; width: 100%; }
th, td { text-align: left; padding: .25rem .6rem; border-bottom: 1px solid #eceef2; vertical-align: top; }
th { background: #f0f2f5; font-weight: 600; }
td:first-child { font-family: ui-monospace, "DejaVu Sans Mono", monospace; white-space: nowrap; }
td.num { font-variant-numeric: tabular-nums; }
td { overflow-wrap: anywhere; }
figure { margin: 0; display: inline-block; max-width: 100%; }
.figures { display: flex; flex-wrap: wrap; gap: 1.2rem 1.6rem; align-items: flex-start; }
.figures.pair { flex-wrap: nowrap; }
.figures.pair > figure { flex: 0 1 auto; min-width: 0; }
@media (max-width: 900px) { .figures.pair { flex-wrap: wrap; } }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid #e3e6ec; }
img.pixels { image-rendering: pixelated; }
figcaption { font-size: .85rem; color: #555e70; margin-top: .35rem; max-width: 640px; }
p.note { color: #6b5300; background: #fff8e1; border-left: 3px solid #f0c000; padding: .4rem .7rem; margin: .5rem 0;
         font-size: .9rem; }
footer { max-width: 1320px; margin: 0 auto; padding: 0 2rem 2rem; font-size: .82rem; color: #6a7282; }
"""


# -- small HTML pieces ----------------------------------------------------------------------------
def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _note(text: str) -> str:
    return f'<p class="note">{_esc(text)}</p>'


def _format(value: Any) -> str:
    """A value as table text: numbers to 5 significant digits, long lists summarised."""
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.5g}" if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        shown = ", ".join(_format(v) for v in value[:_MAX_LIST])
        return f"[{shown}, … ({len(value)} values)]" if len(value) > _MAX_LIST else f"[{shown}]"
    return str(value)


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            rows.extend(_flatten(value, f"{name}."))
        else:
            rows.append((name, value))
    return rows


def _table(mapping: Mapping[str, Any], header: tuple[str, str] = ("name", "value")) -> str:
    body = []
    for key, value in _flatten(mapping):
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        cell = '<td class="num">' if numeric else "<td>"
        body.append(f"<tr><td>{_esc(key)}</td>{cell}{_esc(_format(value))}</td></tr>")
    return (f"<table><thead><tr><th>{_esc(header[0])}</th><th>{_esc(header[1])}</th></tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def _figure(path: Path, caption: str, alt: str, pixels: bool = False) -> str:
    """``path`` (a PNG) as an ``<img>`` with a base64 data URI; image grids are shown enlarged, pixelated."""
    data = path.read_bytes()
    with Image.open(path) as image:
        width, height = image.size
    if pixels and width < _GRID_DISPLAY_WIDTH:
        factor = min(4, math.ceil(_GRID_DISPLAY_WIDTH / width))
        width, height = width * factor, height * factor
    encoded = base64.b64encode(data).decode("ascii")
    css = ' class="pixels"' if pixels else ""
    return (f'<figure><img src="data:image/png;base64,{encoded}" alt="{_esc(alt)}" width="{width}" height="{height}"{css}>'
            f"<figcaption>{_esc(caption)}</figcaption></figure>")


def _read_json(path: Path) -> tuple[Any, str | None]:
    """(contents, None), or (None, why not) for a missing or unreadable file."""
    if not path.is_file():
        return None, f"{path.name} is missing"
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return None, f"{path.name} cannot be read ({type(e).__name__}: {e})"


def _read_yaml(path: Path) -> tuple[Any, str | None]:
    if not path.is_file():
        return None, f"{path.name} is missing"
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")), None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        return None, f"{path.name} cannot be read ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"


# -- the report -----------------------------------------------------------------------------------
class _Builder:
    """Collects the sections of one report; pictures are drawn into ``tmp`` and embedded."""

    def __init__(self, run: Path, tmp: Path, model: Any, x: torch.Tensor | None, y: torch.Tensor | None,
                 class_names: Sequence[str] | None, data_name: str | None, seed: int, max_points: int) -> None:
        self.run, self.tmp, self.model, self.x, self.y, self.data_name = run, tmp, model, x, y, data_name
        self.class_names, self.seed, self.max_points = class_names, seed, max_points
        self.tabular = len(tuple(model.input_shape)) == 1
        self.sections: list[tuple[str, str]] = []
        self.absent: list[str] = []
        self.metrics, self.metrics_problem = _read_json(run / "metrics.json")
        if self.metrics is not None and not isinstance(self.metrics, dict):
            self.metrics, self.metrics_problem = None, "metrics.json does not hold a JSON object"

    def png(self, name: str) -> Path:
        return self.tmp / f"{name}.png"

    def add(self, anchor: str, body: str) -> None:
        self.sections.append((anchor, body))

    def _condition(self, index: slice) -> torch.Tensor | None:
        return None if self.y is None or not self.model.conditional else self.y[index]

    # the sections, in page order
    def config(self) -> None:
        parts = []
        for name, reader in (("config.json", _read_json), ("train.yaml", _read_yaml)):
            contents, problem = reader(self.run / name)
            title = {"config.json": "Model (config.json)", "train.yaml": "Training (train.yaml)"}[name]
            if problem is not None:
                parts.append(f"<div><h3>{_esc(title)}</h3>{_note(problem)}</div>")
            elif not isinstance(contents, dict):
                parts.append(f"<div><h3>{_esc(title)}</h3>{_note(f'{name} does not hold a mapping of setting: value')}</div>")
            else:
                parts.append(f"<div><h3>{_esc(title)}</h3>{_table(contents, ('setting', 'value'))}</div>")
        self.add("config", f'<div class="columns">{"".join(parts)}</div>')

    def metrics_table(self) -> None:
        if self.metrics is None:
            self.add("metrics", _note(f"no metrics: {self.metrics_problem} (`vaekit train` writes it at the end of training)"))
            return
        self.add("metrics", _table(self.metrics, ("metric", "value")))

    def curves(self) -> None:
        path = self.run / "metrics.jsonl"
        if not path.is_file():
            self.add("curves", _note("no training curves: metrics.jsonl is missing (`vaekit train` writes one line per epoch)"))
            return
        try:
            picture = plot_training_curves(read_metrics(path), self.png("curves"))
        except DataError as e:
            self.add("curves", _note(f"no training curves: {e}"))
            return
        self.add("curves", _figure(picture, "Per-epoch training (train) and validation (val) terms from metrics.jsonl.",
                                   "training curves"))

    def samples(self, samples: torch.Tensor | None, caption: str | None) -> None:
        model = self.model
        if samples is None:
            if not _has_prior(model):
                self.add("samples", _note("this model has no prior to sample from (a deterministic autoencoder): fit an "
                                          "ex-post sampler (`vaekit fit-sampler RUN --sampler gmm`) and rebuild the report"))
                return
            n = min(1000, max(64, 0 if self.x is None else self.x.shape[0])) if self.tabular else 64
            y = None
            if model.conditional:
                if model.num_classes:
                    y = torch.arange(n) % model.num_classes
                elif self.y is not None:
                    y = self.y[torch.arange(n) % self.y.shape[0]]
                else:
                    self.add("samples", _note("this model is conditioned on vectors and no data was given to take them from"))
                    return
            torch.manual_seed(self.seed)
            with torch.no_grad():
                samples = model.sample(n, y=None if y is None else y.to(model.device)).cpu()
            what = "the prior p(z), decoded (decoder means)"
            if y is not None:
                what += ", one class per column" if model.num_classes else ", conditioned on the data's first vectors"
            caption = caption or f"{n} samples from {what}."
        else:
            caption = caption or f"{samples.shape[0]} samples given to the report."
        if self.tabular:
            if self.x is None:
                self.add("samples", _note("vector data: the samples' marginals are drawn against the data, "
                                          "and no data was given"))
                return
            picture = plot_marginals(self.x, samples, self.png("samples"))
            self.add("samples", _figure(picture, caption + " Histograms: the data's features against the samples'.",
                                        "marginals of data and samples"))
            return
        picture = save_image_grid(samples[:64], self.png("samples"), nrow=8, input_shape=tuple(model.input_shape))
        self.add("samples", _figure(picture, caption, "samples", pixels=True))

    def reconstructions(self) -> None:
        if self.x is None:
            self.add("reconstructions", _note("no data was given, so nothing was reconstructed"))
            return
        n = min(500 if self.tabular else 8, self.x.shape[0])
        x = self.x[:n]
        y = self._condition(slice(0, n))
        was_training = self.model.training
        self.model.eval()
        try:
            xr = self.model.reconstruct(x.to(self.model.device), None if y is None else y.to(self.model.device)).cpu()
        finally:
            self.model.train(was_training)
        if self.tabular:
            picture = plot_reconstruction_scatter(x, xr, self.png("reconstructions"))
            caption = f"Every value of the first {n} rows against its reconstruction D(E(x)) (dashed: perfect reconstruction)."
            self.add("reconstructions", _figure(picture, caption, "reconstruction scatter"))
            return
        picture = save_reconstructions(x, xr, self.png("reconstructions"), n=n)
        self.add("reconstructions", _figure(picture, f"The first {n} examples (top) and their reconstructions D(E(x)) "
                                                     "(bottom, decoder means at the posterior mean).", "reconstructions",
                                            pixels=True))

    def traversals(self, sweep: float, steps: int) -> None:
        model = self.model
        if self.tabular:
            self.add("traversals", _note("not drawn for vector data: a decoded table row has no picture to sweep"))
            return
        if self.x is None:
            self.add("traversals", _note("no data was given, so there is no example code to start from"))
            return
        y = self._condition(slice(0, 1))
        was_training = model.training
        model.eval()
        try:
            code = model.transform(self.x[:1].to(model.device), None if y is None else y.to(model.device))[0]
            if code.dim() != 1 or code.shape[0] != model.latent_dim:
                self.add("traversals", _note(f"the model's codes have shape {tuple(code.shape)}, not one vector of "
                                             f"{model.latent_dim} values, so they cannot be swept one dimension at a time"))
                return
            values = traversal_values(sweep, steps)
            if _has_prior(model):
                probe = code.repeat(2, 1)
                probe[:, 0] = torch.tensor([-sweep, sweep], dtype=probe.dtype)
                support = model.prior().support
                if not bool(support.check(probe).all()):
                    self.add("traversals", _note(f"not drawn: the latent codes are not real-valued (prior support {support}), "
                                                 f"so sweeping a coordinate over [{-sweep:g}, {sweep:g}] leaves the code space"))
                    return
            dims, order = self._traversed_dims(int(model.latent_dim))
            rows = traversal_rows(model, code, dims, values, None if y is None else y.to(model.device))
        finally:
            model.train(was_training)
        picture = save_image_rows(rows, self.png("traversals"), labels=[f"z{d}" for d in dims])
        caption = (f"The code of the first example with one coordinate z_d swept over [{-sweep:g}, {sweep:g}] "
                   f"in {steps} steps, one row per dimension ({order}); the other coordinates are kept.")
        self.add("traversals", _figure(picture, caption, "latent traversals", pixels=True))

    def _traversed_dims(self, latent_dim: int) -> tuple[list[int], str]:
        kl = self.metrics.get("kl_per_dimension") if self.metrics else None
        if latent_dim <= _TRAVERSED_DIMS:
            return list(range(latent_dim)), "all dimensions"
        if isinstance(kl, list) and len(kl) == latent_dim:
            dims = sorted(np.argsort(-np.asarray(kl, dtype=np.float64), kind="stable")[:_TRAVERSED_DIMS].tolist())
            return dims, f"the {_TRAVERSED_DIMS} of {latent_dim} with the largest KL in metrics.json"
        return list(range(_TRAVERSED_DIMS)), f"the first {_TRAVERSED_DIMS} of {latent_dim}"

    def latent_map(self, manifold_size: int) -> None:
        model = self.model
        if self.x is None:
            self.add("latent-map", _note("no data was given, so there are no codes to map"))
            return
        n = min(self.max_points, self.x.shape[0])
        y = self._condition(slice(0, n))
        codes = latent_codes(model, self.x[:n], y)
        labels = None
        parts = []
        if self.y is not None and self.y.dim() == 1 and not self.y.is_floating_point():
            labels = self.y[:n]
        else:
            why = "the data has no labels" if self.y is None else "the data's conditions are vectors, not class labels"
            parts.append(_note(f"{why}, so the map is drawn in one colour; give labelled data to colour it by class"))
        if codes.shape[0] < 3:
            parts.append(_note(f"only {codes.shape[0]} codes: a latent map needs at least 3 examples"))
            self.add("latent-map", "".join(parts))
            return
        points = latent_map(codes, labels, method="pca", seed=self.seed)
        name = model.config.get("model", "model")
        source = f" of {self.data_name}" if self.data_name else ""
        projected = codes.shape[1] > 2
        title = f"{name}: {n} codes{source}" + (", PCA" if projected else "")
        picture = plot_latent_map(points, labels, self.png("latent_map"), title, class_names=self.class_names,
                                  axis_names=map_axis_names("pca", codes.shape[1]))
        where = ("projected on their first two principal components" if projected else
                 "as they are (a latent space of at most two dimensions needs no projection)")
        figures = [_figure(picture, f"The posterior means E_q[z|x] of the first {n} examples {where}"
                                    + (", coloured by label." if labels is not None else "."), "latent map")]
        problem = manifold_problem(model)
        if problem is None:
            r = manifold_range(model, codes)
            grid = save_manifold(model, self.png("manifold"), n=manifold_size, range=r)
            figures.append(_figure(grid, f"The decoded manifold: decoder means at a {manifold_size} × {manifold_size} grid "
                                         f"over [{-r:g}, {r:g}]² (z₁ rightwards, z₂ upwards).", "decoded manifold",
                                   pixels=True))
        parts.append(f'<div class="figures pair">{"".join(figures)}</div>')
        self.add("latent-map", "".join(parts))

    def kl(self) -> None:
        if self.metrics is None:
            self.add("kl", _note(f"no KL per dimension: {self.metrics_problem}"))
            return
        kl = self.metrics.get("kl_per_dimension")
        if not kl:
            self.add("kl", _note("metrics.json has no kl_per_dimension: this model's posterior has no per-dimension KL "
                                 "(a deterministic code, or a flow or discrete posterior)"))
            return
        activity = self.metrics.get("unit_activity")
        if not isinstance(activity, list) or len(activity) != len(kl):
            activity = None
        picture = plot_kl_per_dimension(kl, self.png("kl"), activity=activity)
        caption = "KL(q(z_d|x) ‖ p(z_d)) per latent dimension, averaged over the evaluation data (nats)."
        if activity is not None:
            caption += " Blue: active units, Cov_x E_q[z_d] > 0.01 (Burda et al., 2016)."
        self.add("kl", _figure(picture, caption, "KL per dimension"))

    def scores(self, anchor: str, filename: str) -> None:
        contents, problem = _read_json(self.run / filename)
        if problem == f"{filename} is missing":
            self.absent.append(f"{SECTION_TITLES[anchor].lower()} ({filename})")
            return
        if problem is not None or not isinstance(contents, dict):
            self.add(anchor, _note(problem or f"{filename} does not hold a JSON object"))
            return
        self.add(anchor, _table(contents, ("score", "value")) + f"<p>From {_esc(filename)}.</p>")


def _has_prior(model: Any) -> bool:
    try:
        model.prior()
    except VaekitError:
        return False
    return True


def write_report(
    run: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    model: Any,
    data: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
    class_names: Sequence[str] | None = None,
    data_name: str | None = None,
    samples: torch.Tensor | None = None,
    samples_caption: str | None = None,
    seed: int = 0,
    max_points: int = 2000,
    traverse_range: float = 3.0,
    traverse_steps: int = 9,
    manifold_size: int = 15,
) -> Path:
    """Write one self-contained HTML report of the run in ``run``; returns its path (``RUN/report.html`` by default).

    Arguments:
        run: the run folder (``vaekit train``'s ``--out``): its ``config.json``,
            ``train.yaml``, ``metrics.json``, ``metrics.jsonl`` and, where present,
            ``sample_quality.json`` and ``disentanglement.json`` are read.
        out: the HTML file to write (default ``run/report.html``); written atomically.
        model: the run's model, loaded (``vaekit.load(run)``).
        data: evaluation examples ``(N, *input_shape)`` for reconstructions, traversals and
            the latent map (the first ``max_points``); None leaves those sections empty.
        y: labels or conditions of ``data``: passed to a conditional model; integer class
            labels ``(N,)`` also colour the latent map.
        class_names: names of the classes (``class_names[k]`` for label k) in the legend.
        data_name: how the data is named in the page's header.
        samples: samples to show instead of the prior's (e.g. an ex-post sampler's for a
            deterministic autoencoder), with ``samples_caption`` describing them.
        seed: seeds the prior samples and the projections.
        max_points: at most this many codes in the latent map.
        traverse_range, traverse_steps: traversals sweep [−r, r] in this many steps.
        manifold_size: grid points per side of the decoded manifold (2-D latent spaces).

    Example:
        >>> model = vaekit.load("runs/vae")  # doctest: +SKIP
        >>> test = vaekit.data.load_dataset("digits", split="test")  # doctest: +SKIP
        >>> write_report("runs/vae", model=model, data=test.x, y=test.y)  # doctest: +SKIP
        PosixPath('runs/vae/report.html')
    """
    run = Path(run)
    if not run.is_dir():
        raise ConfigError(f"{run} is not a folder; give the run folder written by `vaekit train` (or model.save)")
    out = run / REPORT_FILE if out is None else Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"the report is an HTML file: give a path ending in .html, got {out}")
    if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 3:
        raise ConfigError(f"max_points must be an integer >= 3 (codes in the latent map), got {max_points!r}")
    if data is not None:
        data = torch.as_tensor(data)
        if tuple(data.shape[1:]) != tuple(model.input_shape):
            raise DataError(f"data has examples of shape {tuple(data.shape[1:])} but the model takes "
                            f"{tuple(model.input_shape)}; give the data the run was trained on")
    if y is not None:
        y = torch.as_tensor(y)
        if data is None or y.shape[0] != data.shape[0]:
            raise DataError("y must hold one label (or condition) per example of data")
    if model.conditional and data is not None and y is None:
        raise ConfigError("the model is conditional: give y, the labels (or conditions) of data")
    with tempfile.TemporaryDirectory(prefix="vaekit-report-") as tmp:
        build = _Builder(run, Path(tmp), model, data, y, class_names, data_name, seed, max_points)
        steps: list[Callable[[], None]] = [
            build.config, build.metrics_table, build.curves, lambda: build.samples(samples, samples_caption),
            build.reconstructions, lambda: build.traversals(traverse_range, traverse_steps),
            lambda: build.latent_map(manifold_size), build.kl,
            lambda: build.scores("sample-quality", SAMPLE_QUALITY_FILE),
            lambda: build.scores("disentanglement", DISENTANGLEMENT_FILE),
        ]
        for step in steps:
            step()
        page = _page(run, model, build, data_name, 0 if data is None else int(data.shape[0]))
    atomic_write_text(out, page)
    return out


def _page(run: Path, model: Any, build: _Builder, data_name: str | None, n: int) -> str:
    name = str(model.config.get("model", type(model).__name__))
    parameters = sum(p.numel() for p in model.parameters())
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    facts = [f"model <code>{_esc(name)}</code>", f"latent_dim {_esc(model.latent_dim)}",
             f"input shape {_esc(tuple(model.input_shape))}", f"{parameters:,} parameters"]
    if data_name:
        facts.append(f"data {_esc(data_name)} ({n:,} examples)")
    nav = "".join(f'<a href="#{_esc(anchor)}">{_esc(SECTION_TITLES[anchor])}</a>' for anchor, _ in build.sections)
    body = "".join(f'<section id="{_esc(anchor)}"><h2>{_esc(SECTION_TITLES[anchor])}</h2>{content}</section>'
                   for anchor, content in build.sections)
    absent = ""
    if build.absent:
        absent = (f"<p>Not computed for this run: {_esc('; '.join(build.absent))}. Save the JSON that "
                  "<code>vaekit sample-quality</code> or <code>vaekit disentanglement</code> prints under that name "
                  "in the run folder and rebuild the report to add it.</p>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<link rel=\"icon\" href=\"data:,\">\n"
        f"<title>vaekit report: {_esc(name)} — {_esc(run.name)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<header><h1>vaekit report: {_esc(name)}</h1><p>{' · '.join(facts)}</p>"
        f"<p>run folder <code>{_esc(run.resolve())}</code> · written {_esc(when)} by vaekit {_esc(__version__)}</p>"
        f"<nav>{nav}</nav></header>\n<main>\n{body}\n</main>\n<footer>{absent}<p>A self-contained page: every picture is "
        "embedded, nothing is loaded from the network.</p></footer>\n</body>\n</html>\n"
    )
