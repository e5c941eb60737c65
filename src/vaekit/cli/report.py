"""``vaekit latent-map`` and ``vaekit report``: seeing the latent space, and one HTML page per run.

``latent-map RUN`` writes ``RUN/latent_map.png`` (the codes of the run's test data projected
to the plane by PCA, t-SNE or UMAP, coloured by label) and, for a 2-D latent space,
``RUN/manifold.png`` (the decoded grid). ``report RUN`` writes ``RUN/report.html``: config,
metrics, curves, samples, reconstructions, traversals, latent map, KL per dimension and,
where saved, sample-quality and disentanglement scores, in one self-contained file.
Every argument and the run folder are checked before anything is computed or written.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

from vaekit.cli._common import _eval_data, _int_at_least, _positive_int, _run_settings, _say, add_run_arguments, check_output_file

__all__ = ["add_commands", "cmd_latent_map", "cmd_report"]

METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}

MAP_POINTS = 2000
"""Examples a latent map shows by default (t-SNE's time grows faster than linearly with them)."""

MANIFOLD_GRID = 15
"""Points per side of the decoded manifold of a 2-D latent space, by default."""


def _positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


_int_at_least_two = _int_at_least(2, "an integer >= 2")
_int_at_least_three = _int_at_least(3, "an integer >= 3")


def require_run(run: str) -> Path:
    """``run`` if it is a complete run folder (config.json and model.safetensors); else one clear ConfigError."""
    from vaekit.errors import ConfigError
    from vaekit.models.persistence import CONFIG_FILE, WEIGHTS_FILE

    path = Path(run)
    if not path.exists():
        raise ConfigError(f"run folder {run} does not exist; give a folder written by `vaekit train` (or model.save)")
    if not path.is_dir():
        raise ConfigError(f"{run} is a file, not a run folder; give a folder written by `vaekit train` (or model.save)")
    missing = [name for name in (CONFIG_FILE, WEIGHTS_FILE) if not (path / name).is_file()]
    if missing:
        raise ConfigError(f"{run} is not a complete run folder: {' and '.join(missing)} "
                          f"{'is' if len(missing) == 1 else 'are'} missing; give a folder written by `vaekit train` "
                          "(or model.save), or finish the run by re-running `vaekit train` with the same --out")
    return path


def _load(args: argparse.Namespace) -> tuple[Any, Any, Any, str]:
    """The run's model and its evaluation data (checked against the model's input shape)."""
    from vaekit.errors import ConfigError
    from vaekit.samplers.base import load_run_model

    model = load_run_model(args.run)
    settings = _run_settings(args.run)
    data, x, split = _eval_data(args, settings)
    source = args.data or settings["data"]
    if tuple(x.shape[1:]) != tuple(model.input_shape):
        raise ConfigError(f"the data {source} has examples of shape {tuple(x.shape[1:])} but the model in {args.run} takes "
                          f"{tuple(model.input_shape)}; give the data it was trained on with --data")
    if model.conditional and data.y is None:
        raise ConfigError(f"the model in {args.run} is conditional and {source} has no labels to condition it on; "
                          "give labelled data with --data")
    return model, data, x, f"{source} ({split})"


def _class_labels(data: Any) -> Any:
    """The data's integer class labels, or None (no labels, or conditioning vectors)."""
    return data.y if data.num_classes is not None else None


def cmd_latent_map(args: argparse.Namespace) -> int:
    import torch

    from vaekit.viz import save_image_grid
    from vaekit.viz.latent_map import (
        check_method, latent_codes, latent_map, manifold_grid, manifold_problem, manifold_range, map_axis_names, plot_latent_map,
    )

    check_method(args.method)
    run = require_run(args.run)
    output = check_output_file(args.output or run / "latent_map.png", "-o")
    manifold_output = check_output_file(args.manifold or run / "manifold.png", "--manifold")
    model, data, x, source = _load(args)
    manifold_flags = [flag for flag, value in (("--manifold", args.manifold), ("--grid", args.grid), ("--range", args.range))
                      if value is not None]
    if manifold_flags and int(model.latent_dim) != 2:
        from vaekit.errors import ConfigError

        raise ConfigError(f"{manifold_flags[0]} sets the decoded manifold of a 2-D latent space, and the model in {args.run} has "
                          f"latent_dim {model.latent_dim}; drop {', '.join(manifold_flags)}")
    grid_size = MANIFOLD_GRID if args.grid is None else args.grid
    n = min(args.n, x.shape[0])
    labels = _class_labels(data)
    if labels is None:
        _say(args, f"vaekit latent-map: note: {source} has no class labels, so the map is drawn in one colour; "
                   "give labelled data with --data to colour it by class")
    codes = latent_codes(model, x[:n], data.y[:n] if model.conditional else None)
    torch.manual_seed(args.seed)
    _say(args, f"latent-map: {METHOD_NAMES[args.method]} of {n} codes (latent_dim {model.latent_dim}) of {source}")
    points = latent_map(codes, None if labels is None else labels[:n], method=args.method, seed=args.seed)
    grid = None
    if int(model.latent_dim) == 2:
        problem = manifold_problem(model)
        if problem is None:
            r = args.range if args.range is not None else manifold_range(model, codes)
            grid = manifold_grid(model, n=grid_size, range=r)
        else:
            _say(args, f"vaekit latent-map: note: no manifold picture: {problem}")
    name = model.config.get("model", "model")
    projected = codes.shape[1] > 2 or args.method != "pca"  # PCA draws a latent space of at most 2 dimensions as it is
    title = f"{name}: {n} codes of {source}" + (f", {METHOD_NAMES[args.method]}" if projected else "")
    print(plot_latent_map(points, None if labels is None else labels[:n], output, title, class_names=data.classes,
                          axis_names=map_axis_names(args.method, codes.shape[1])))
    if grid is not None:  # computed before anything was written
        print(save_image_grid(grid, manifold_output, nrow=grid_size, input_shape=tuple(model.input_shape)))
    return 0


def _samples(args: argparse.Namespace, model: Any) -> tuple[Any, str | None]:
    """Samples to show in the report and their caption: a fitted sampler's when asked for, or when the
    model has no prior and one is fitted; (None, None) to let the report draw from the prior."""
    from vaekit.errors import ConfigError

    kind = args.sampler
    if kind is None and model.prior_module is None:
        from vaekit.samplers import fitted_kinds

        kinds = fitted_kinds(args.run)
        kind = "gmm" if "gmm" in kinds else (kinds[0] if kinds else None)
    if kind is None or kind == "prior":
        return None, None
    if model.conditional:
        raise ConfigError("--sampler takes unconditional models (samplers fit the codes of unconditional models); drop --sampler")
    from vaekit.samplers import load as load_sampler

    sampler = load_sampler(args.run, kind=kind, model=model)
    n = 1000 if len(model.input_shape) == 1 else 64
    return sampler.sample(n, seed=args.seed), (f"{n} samples from the ex-post {kind} sampler fitted to the codes "
                                               f"(sampler_{kind}.json), decoded (decoder means).")


def cmd_report(args: argparse.Namespace) -> int:
    from vaekit.viz.report import REPORT_FILE, write_report

    run = require_run(args.run)
    output = check_output_file(args.output or run / REPORT_FILE, "-o", (".html",))
    model, data, x, source = _load(args)
    samples, caption = _samples(args, model)
    _say(args, f"report: {args.run} with {source}")
    print(write_report(run, output, model=model, data=x, y=data.y, class_names=data.classes, data_name=source,
                       samples=samples, samples_caption=caption, seed=args.seed, max_points=args.n))
    return 0


def add_commands(sub: Any) -> dict[str, Callable[..., int]]:
    """Add ``latent-map`` and ``report``; return their handlers."""
    p = add_run_arguments(sub.add_parser(
        "latent-map", help="2-D map of a run's codes coloured by label (and the decoded manifold of a 2-D latent space)"))
    p.add_argument("--method", choices=["pca", "tsne", "umap"], default="pca",
                   help="pca (default, linear, instant), tsne (scikit-learn) or umap (needs umap-learn)")
    p.add_argument("-n", type=_positive_int, default=MAP_POINTS, help=f"map the first N examples (default {MAP_POINTS})")
    p.add_argument("-o", "--output", help="PNG of the map (default RUN/latent_map.png)")
    p.add_argument("--manifold", help="PNG of the decoded manifold of a 2-D latent space (default RUN/manifold.png)")
    p.add_argument("--grid", type=_int_at_least_two, help=f"manifold grid points per side (default {MANIFOLD_GRID})")
    p.add_argument("--range", type=_positive_float,
                   help="manifold grid over [-r, r]^2 (default 3 with a prior, else the codes' extent)")

    p = add_run_arguments(sub.add_parser("report", help="one self-contained HTML page of a run: RUN/report.html"))
    p.add_argument("-o", "--output", help="the HTML file (default RUN/report.html)")
    p.add_argument("-n", type=_int_at_least_three, default=MAP_POINTS, help=f"examples in the latent map (default {MAP_POINTS})")
    p.add_argument("--sampler", choices=["prior", "gmm", "flow"],
                   help="samples from the prior or a sampler fitted by `vaekit fit-sampler` (default: the prior, or the "
                        "fitted sampler of a model without one)")
    return {"latent-map": cmd_latent_map, "report": cmd_report}
