"""``vaekit eval``, ``sample``, ``reconstruct``, ``traverse``, ``interpolate``: looking at a trained run."""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import Any, Callable

from vaekit.cli._common import STATE_FILE, _count, _eval_data, _int_list, _positive_int, _run_settings, add_run_arguments, check_output_file

__all__ = ["add_commands"]


def cmd_eval(args: argparse.Namespace) -> int:
    import torch

    import vaekit

    model = vaekit.load(args.run, device=args.device or "cpu")
    settings = _run_settings(args.run)
    binarized = (args.binarize or settings.get("binarize", "none")) != "none"  # the test set once, seed 0
    if not binarized and model.config.get("likelihood") == "bernoulli" and not (Path(args.run) / STATE_FILE).exists():
        warnings.warn(f"{args.run} has no {STATE_FILE} to say how its data were prepared, so the images are scored as grey "
                      "levels under its Bernoulli likelihood; add --binarize static if it was trained on binarised images", stacklevel=1)
    data, split = _eval_file(args, settings)
    streamed = data is not None
    if streamed:  # read batch by batch and binarised as read: the file may not fit in memory
        x = data
    else:
        data, x, split = _eval_data(args, settings)
    torch.manual_seed(args.seed)
    metrics = vaekit.evaluate(model, x, data.y if model.conditional else None, nll_samples=args.nll_samples,
                              progress=not args.quiet, binarize="static" if streamed and binarized else "none")
    print(json.dumps({"run": args.run, "data": settings["data"] if not args.data else args.data, "split": split,
                      "binarize": "static" if binarized else "none", **({"streamed": True} if streamed else {}), **metrics}, indent=2))
    return 0


def _eval_file(args: argparse.Namespace, run_settings: dict[str, Any]) -> tuple[Any, str]:
    """``(data, split)``: the evaluation split as a file-backed set when it is read batch by batch
    (``--stream``, a run trained with ``--stream``, or a file that would not fit in memory, as
    ``vaekit train`` decides), else ``(None, split)`` for the in-memory path."""
    from vaekit.cli._common import _has_test_split, _image_size, _streamable, _streamed
    from vaekit.data import open_file_dataset

    settings = dict(run_settings)
    settings.update({k: v for k, v in (("data", args.data), ("data_dir", args.data_dir)) if v})
    source = str(settings["data"])
    split = "test" if _has_test_split(source) else "train"
    if not (_streamed(source, args.stream) or (settings.get("stream") and _streamable(source))):
        return None, split
    data = open_file_dataset(source, split=split, image_size=_image_size(settings))
    return (data[: args.limit] if args.limit else data), split


def cmd_sample(args: argparse.Namespace) -> int:
    """Samples as a PNG grid; for vector (tabular) data as a CSV table (``-o x.csv``) or a
    PNG of their marginals against the run's data."""
    import torch

    from vaekit.errors import ConfigError
    from vaekit.samplers.base import load_run_model
    from vaekit.viz import plot_marginals, save_image_grid, write_csv

    model = load_run_model(args.run)  # vaekit.load, refusing a run without a decoder (a feature classifier)
    tabular = len(model.input_shape) == 1
    output = check_output_file(args.output, "-o", (".png", ".csv") if tabular else (".png",))
    data_flags = [flag for flag, value in (("--data", args.data), ("--data-dir", args.data_dir), ("--binarize", args.binarize),
                                           ("--limit", args.limit)) if value is not None]
    if data_flags and not (tabular and output.suffix.lower() == ".png"):  # only the marginals PNG of vector data reads data
        drawn = "a CSV table" if tabular else "an image grid"
        raise ConfigError(f"{data_flags[0]} picks the data the marginals PNG of vector data is drawn against, and this command "
                          f"writes {drawn} of samples from the model alone; drop {', '.join(data_flags)}")
    if args.label is not None and not model.num_classes:
        kind = "conditioned on vectors" if model.conditional else "not conditional"
        raise ConfigError(f"--label picks a class of a model trained on labels, and this model is {kind}; drop --label")
    if args.label is not None and not 0 <= args.label < model.num_classes:
        raise ConfigError(f"--label must lie in 0..{model.num_classes - 1} (the model's classes), got {args.label}")
    if model.conditional and not model.num_classes:
        raise ConfigError("this model is conditioned on vectors, which `vaekit sample` cannot choose; sample it from Python: model.sample(n, y=...)")
    torch.manual_seed(args.seed)
    y = None
    if model.conditional:
        y = torch.full((args.n,), args.label, dtype=torch.long) if args.label is not None else torch.arange(args.n) % (model.num_classes or 1)
    if args.sampler != "prior" or not model.conditional:  # a fitted sampler, or the prior of an unconditional model
        from vaekit.samplers import load as load_sampler

        samples = load_sampler(args.run, kind=args.sampler, model=model).sample(args.n, seed=args.seed)
    else:
        samples = model.sample(args.n, y=y)
    if not tabular:
        path = save_image_grid(samples, output)
    elif output.suffix.lower() == ".csv":
        path = write_csv(samples, output)
    else:
        _, x, _ = _eval_data(args, _run_settings(args.run))
        path = plot_marginals(x, samples, output)
    print(path)
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    """Originals over their reconstructions (PNG); for vector data, values against reconstructions."""
    import vaekit
    from vaekit.viz import plot_reconstruction_scatter, save_reconstructions

    output = check_output_file(args.output, "-o")
    model = vaekit.load(args.run)
    data, x, _ = _eval_data(args, _run_settings(args.run))
    x = x[: args.n]
    y = data.y[: args.n] if model.conditional else None
    if len(model.input_shape) == 1:
        print(plot_reconstruction_scatter(x, model.reconstruct(x, y), output))
    else:
        print(save_reconstructions(x, model.reconstruct(x, y), output, n=args.n))
    return 0


def cmd_traverse(args: argparse.Namespace) -> int:
    """One row per latent dimension: the code of an example with that coordinate swept over [−r, r]."""
    import vaekit
    from vaekit.errors import ConfigError
    from vaekit.viz import save_image_rows, traversal_rows, traversal_values

    check_output_file(args.output, "-o")
    model = vaekit.load(args.run)
    data, x, _ = _eval_data(args, _run_settings(args.run))
    if not 0 <= args.index < x.shape[0]:
        raise ConfigError(f"--index {args.index} is outside the data (0..{x.shape[0] - 1})")
    y = data.y[args.index : args.index + 1] if model.conditional else None
    code = model.transform(x[args.index : args.index + 1], y)[0]
    dims = args.dims or list(range(min(model.latent_dim, 10)))
    if any(not 0 <= d < model.latent_dim for d in dims):
        raise ConfigError(f"--dims must lie in 0..{model.latent_dim - 1}")
    rows = traversal_rows(model, code, dims, traversal_values(args.range, args.steps), y)
    print(save_image_rows(rows, args.output, labels=[f"z{d}" for d in dims]))
    return 0


def cmd_interpolate(args: argparse.Namespace) -> int:
    """Decoded points on the straight line between the codes of two examples."""
    import torch

    import vaekit
    from vaekit.errors import ConfigError
    from vaekit.viz import save_image_rows

    check_output_file(args.output, "-o")
    model = vaekit.load(args.run)
    data, x, _ = _eval_data(args, _run_settings(args.run))
    pairs = list(zip(args.pairs[0::2], args.pairs[1::2]))
    if not pairs or len(args.pairs) % 2 or any(not 0 <= i < x.shape[0] for i in args.pairs):
        raise ConfigError(f"--pairs takes an even number of example indices in 0..{x.shape[0] - 1}, e.g. 0,1,2,3")
    if model.conditional:
        raise ConfigError("interpolate draws unconditional models; a conditional model needs one label per row")
    t = torch.linspace(0, 1, args.steps).unsqueeze(-1)
    rows = []
    with torch.no_grad():
        for a, b in pairs:
            za, zb = model.transform(x[[a, b]])
            rows.append(model.decode((1 - t) * za + t * zb).mean)
    print(save_image_rows(rows, args.output, labels=[f"{a}→{b}" for a, b in pairs]))
    return 0




def add_commands(sub: Any) -> dict[str, Callable[..., int]]:
    """Add ``eval``, ``sample``, ``reconstruct``, ``traverse`` and ``interpolate``; return their handlers."""

    def run_parser(name: str, help: str) -> argparse.ArgumentParser:
        return add_run_arguments(sub.add_parser(name, help=help))

    p = run_parser("eval", "evaluate a run: JSON metrics on stdout")
    p.add_argument("--nll-samples", type=_count, default=1000, help="importance samples K for log p(x) (0: skip)")
    p.add_argument("--stream", action="store_true",
                   help="read a .npy/.npz file or image folder batch by batch (automatic when it would not fit in memory, "
                        "or when the run was trained with --stream)")
    p.add_argument("--device", default=None)
    p = run_parser("sample", "draw samples from the prior into a PNG grid")
    p.add_argument("-n", type=_positive_int, default=64)
    p.add_argument("-o", "--output", default="samples.png", help="a PNG grid (vector data: .csv for the table, .png for its marginals)")
    p.add_argument("--label", type=int, help="class to generate (conditional models)")
    p.add_argument("--sampler", choices=["prior", "gmm", "flow"], default="prior",
                   help="codes from the prior, or from the density `vaekit fit-sampler` fitted (default prior)")
    p = run_parser("reconstruct", "PNG of originals over their reconstructions")
    p.add_argument("-n", type=_positive_int, default=8)
    p.add_argument("-o", "--output", default="reconstructions.png")

    p = run_parser("traverse", "latent traversals: one row per dimension, its value swept over [-r, r]")
    p.add_argument("--index", type=int, default=0, help="example whose code is the starting point")
    p.add_argument("--dims", type=_int_list, help="latent dimensions to sweep (default: the first 10)")
    p.add_argument("--range", type=float, default=3.0, help="sweep z_d over [-r, r]")
    p.add_argument("--steps", type=_positive_int, default=9)
    p.add_argument("-o", "--output", default="traverse.png")
    p = run_parser("interpolate", "decode straight lines between the codes of pairs of examples")
    p.add_argument("--pairs", type=_int_list, default=[0, 1], help="example indices a,b[,c,d...] (default 0,1)")
    p.add_argument("--steps", type=_positive_int, default=10)
    p.add_argument("-o", "--output", default="interpolate.png")

    return {"eval": cmd_eval, "sample": cmd_sample, "reconstruct": cmd_reconstruct,
            "traverse": cmd_traverse, "interpolate": cmd_interpolate}
