"""``vaekit fit-sampler``: fit an ex-post density (GMM or flow) to the codes of a run's training data.

The codes are those of the examples the run was trained on: its data, without its
``--exclude-classes``, split with its ``val_fraction`` and seed exactly as ``vaekit train``
split it. The sampler is fitted on the training part; the validation part (codes the
sampler never saw) gives the held-out log-likelihood. The sampler is saved in the run
folder (``sampler_<kind>.safetensors`` + ``sampler_<kind>.json``) and results are printed
as JSON on stdout. ``vaekit sample RUN --sampler gmm|flow`` draws from it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable

from vaekit.cli._common import _binarized, _load_data, _positive_int, _run_settings

__all__ = ["add_commands"]


def _sampler(args: argparse.Namespace):
    """The sampler the flags describe, its hyper-parameters checked (nothing is loaded or written yet)."""
    from vaekit.errors import ConfigError
    from vaekit.samplers import FlowSampler, GaussianMixtureSampler

    only = {"gmm": ("components", "covariance"), "flow": ("flow", "epochs")}
    for kind, flags in only.items():
        for flag in flags:
            if kind != args.sampler and getattr(args, flag) is not None:
                raise ConfigError(f"--{flag} applies to --sampler {kind}, not --sampler {args.sampler}; drop it or use --sampler {kind}")
    if args.sampler == "gmm":
        sampler = GaussianMixtureSampler(10 if args.components is None else args.components,
                                         covariance=args.covariance or "full", seed=args.seed)
    else:
        sampler = FlowSampler(args.flow or "maf", epochs=100 if args.epochs is None else args.epochs, seed=args.seed,
                              verbose=not args.quiet)
    sampler.check_params()
    return sampler


def _training_codes_data(args: argparse.Namespace):
    """(examples the run was trained on, its validation examples, description), binarised as in training."""
    import torch

    from vaekit.data import train_val_split

    settings = _run_settings(args.run)
    for key in ("data", "data_dir"):
        if getattr(args, key, None) is not None:
            settings[key] = getattr(args, key)
    data = _load_data(settings, "train")
    excluded = settings.get("exclude_classes")
    if excluded and data.y is not None:  # the classes `vaekit train --exclude-classes` left out
        data = data[~torch.isin(data.y, torch.tensor(list(excluded)))]
    train, val = train_val_split(data, settings["val_fraction"], seed=settings["seed"])
    if args.limit:
        train, val = train[: args.limit], val[: args.limit]
    x_train = _binarized(train.x, settings, seed=1)
    x_val = _binarized(val.x, settings, seed=0)
    return x_train, x_val, f"{settings['data']}: the run's training split (fit) and validation split (held out)"


def cmd_fit_sampler(args: argparse.Namespace) -> int:
    from vaekit.samplers.base import check_model, load_run_model

    sampler = _sampler(args)
    model = load_run_model(args.run, device=args.device)
    check_model(model, f"vaekit fit-sampler {args.run}")
    x_train, x_val, where = _training_codes_data(args)
    if not args.quiet:
        print(f"fitting a {args.sampler} sampler to the codes of {x_train.shape[0]} examples ({where})", file=sys.stderr, flush=True)
    sampler.fit(model, x_train)
    held_out = sampler.score(x_val)
    files = sampler.save(args.run)
    result: dict[str, Any] = {
        "run": str(args.run),
        "kind": sampler.kind,
        "params": {k: v for k, v in sampler.get_params().items() if k != "verbose"},
        "data": where,
        "latent_dim": sampler.latent_dim_,
        "num_codes": sampler.num_codes_,
        "num_held_out": int(x_val.shape[0]),
        "log_likelihood_train": sampler.train_log_likelihood_,
        "log_likelihood_held_out": held_out,
        "files": files,
    }
    if sampler.kind == "gmm":
        result.update(components=sampler.components, converged=sampler.converged_, n_iter=sampler.n_iter_)
    else:
        result.update(best_epoch=sampler.best_epoch_, epochs_run=len(sampler.history_))
    if not args.quiet:
        print(f"average log q(z) of the codes: {result['log_likelihood_train']:.3f} nats (fit), {held_out:.3f} nats (held out); "
              f"saved {files['weights']}", file=sys.stderr, flush=True)
    print(json.dumps(result, indent=2))
    return 0


def add_commands(sub: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Add ``fit-sampler``; return its handler."""
    p = sub.add_parser("fit-sampler", help="fit a GMM or a normalising flow to the codes of a run's training data")
    p.add_argument("run", help="run folder written by `vaekit train` (or model.save)")
    p.add_argument("--sampler", choices=["gmm", "flow"], required=True, help="gmm: Gaussian mixture; flow: MAF or NSF (zuko)")
    p.add_argument("--components", type=_positive_int, help="mixture components K (gmm; default 10)")
    p.add_argument("--covariance", choices=["full", "diag"], help="covariance of each component (gmm; default full)")
    p.add_argument("--flow", choices=["maf", "nsf"], help="flow family (flow; default maf)")
    p.add_argument("--epochs", type=_positive_int, help="training epochs at most, with early stopping (flow; default 100)")
    p.add_argument("--data", help="the training data, when the run has no train.yaml: fashion-mnist, digits, or a path")
    p.add_argument("--data-dir", help="folder with the Fashion-MNIST IDX files")
    p.add_argument("--limit", type=_positive_int, help="fit on at most N training examples (and hold out at most N)")
    p.add_argument("--seed", type=int, default=0, help="seeds the mixture's initialisation / the flow's weights and batches")
    p.add_argument("--device", default="cpu", help="device that computes the codes: cpu or cuda")
    p.add_argument("--quiet", action="store_true", help="no progress or summary on stderr")
    return {"fit-sampler": cmd_fit_sampler}
