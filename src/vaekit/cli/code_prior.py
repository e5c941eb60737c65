"""``vaekit fit-prior``: fit a VQ-VAE run's autoregressive code prior, so that ``vaekit sample`` works."""

from __future__ import annotations

import argparse
import json
from typing import Any, Callable

from vaekit.cli._common import _binarized, _has_test_split, _load_data, _positive_int, _run_settings, _say, add_run_arguments

__all__ = ["add_commands"]


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value}")
    return value


def cmd_fit_prior(args: argparse.Namespace) -> int:
    """Codes of the run's training split -> a gated PixelCNN; NLL in bits per code on train and test; RUN/prior.*."""
    import torch

    import vaekit
    from vaekit.data import train_val_split
    from vaekit.errors import ConfigError
    from vaekit.models.vq_vae import VectorQuantizedModel
    from vaekit.samplers import fit_prior

    model = vaekit.load(args.run)
    if not isinstance(model, VectorQuantizedModel):
        raise ConfigError(f"fit-prior fits the code prior of a vq_vae run, and {args.run} holds {model.config.get('model')!r} "
                          "(continuous codes take `vaekit fit-sampler`)")
    settings = _run_settings(args.run)
    for key in ("data", "data_dir"):
        if getattr(args, key, None):
            settings[key] = getattr(args, key)
    full = _load_data(settings, "train")
    train, val = train_val_split(full, settings["val_fraction"], seed=settings["seed"])  # the split training used
    has_test = _has_test_split(settings["data"])
    test = _load_data(settings, "test") if has_test else val
    if args.limit:
        train, test = train[: args.limit], test[: args.limit]
    binarize = {"binarize": args.binarize or settings.get("binarize", "none")}
    x_train = _binarized(train.x, binarize, seed=args.seed + 1)
    x_test = _binarized(test.x, binarize, seed=0)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    _say(args, f"fitting the code prior of {args.run}: {len(train)} training grids of {model.grid_shape[0]}×{model.grid_shape[1]} "
               f"codes (K = {model.codebook_size}), {args.epochs} epochs")
    fit = fit_prior(model, x_train, x_test, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, channels=args.channels,
                    layers=args.layers, seed=args.seed, quiet=args.quiet, out_dir=args.run)
    print(json.dumps({
        "run": args.run, "data": settings["data"], "test_split": "test" if has_test else "val",
        "train_examples": len(train), "test_examples": len(test), "codebook_size": model.codebook_size, "grid": list(model.grid_shape),
        "train_nll_bits_per_code": fit.train_nll_bits, "test_nll_bits_per_code": fit.test_nll_bits,
        "uniform_bits_per_code": model.code_prior_info["uniform_bits_per_code"],
        "files": {k: str(v) for k, v in fit.files.items()},
    }, indent=2))
    return 0


def add_commands(sub: Any) -> dict[str, Callable[..., int]]:
    """Add ``fit-prior``; return its handler."""
    p = add_run_arguments(sub.add_parser(
        "fit-prior", help="fit a VQ-VAE run's code prior (gated PixelCNN) so `vaekit sample RUN` works; JSON with NLL in bits per code"))
    p.add_argument("--epochs", type=_positive_int, default=10)
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument("--lr", type=_positive_float, default=1e-3)
    p.add_argument("--channels", type=_positive_int, default=32, help="feature channels of the PixelCNN (64: ~4× the compute)")
    p.add_argument("--layers", type=_positive_int, default=None, help="gated layers (default: 6, more when the code grid needs them)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    return {"fit-prior": cmd_fit_prior}
