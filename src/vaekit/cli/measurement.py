"""``vaekit train-classifier`` and ``vaekit sample-quality``: the feature network and the scores measured in it.

``train-classifier`` trains a :class:`~vaekit.models.FeatureClassifier` on labelled data
with a fixed seed and saves it (``model.safetensors`` + ``config.json`` with the weights'
SHA-256, ``metrics.json``, ``metrics.jsonl``, ``train.yaml``); it prints its held-out
accuracy and the SHA-256. ``sample-quality`` draws samples from a run (its prior, or a
sampler fitted by ``vaekit fit-sampler``) and prints every score of
:func:`vaekit.eval.sample_quality` against the run's test images, as JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Callable

import yaml

from vaekit.cli._common import STATE_FILE, _has_test_split, _int_list, _load_data, _positive_int, _run_settings, _say, check_out_dir

__all__ = ["add_commands", "cmd_train_classifier", "cmd_sample_quality"]

CLASSIFIER_DEFAULTS: dict[str, Any] = {
    "epochs": 10,
    "batch_size": 128,
    "lr": 2e-3,
    "arch": "auto",
    "channels": [16, 32],
    "hidden_dims": [128],
    "val_fraction": 0.1,
    "seed": 0,
}
"""``train-classifier``'s defaults: 10 epochs of the 16-32 CNN reach 91 % on Fashion-MNIST in about 3.3 CPU minutes on one
thread (5 epochs: 90.3 %; the 32-64 CNN, 2× the weights, 90.9 % after 5 epochs in 3.6 minutes)."""

CLASSIFIER_DATA_DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": {"epochs": 30, "batch_size": 32, "lr": 1e-3},
}
"""Defaults that differ for a data set: the 1 437 training digits make 11 steps per epoch at batch 128, where a few
epochs leave the CNN near chance; 30 epochs at batch 32 (1 230 steps, 6 CPU seconds) reach 98 % on the test split."""


def _classifier_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The training settings: defaults < the data set's defaults < flags."""
    from vaekit.data import DATASET_NAMES

    settings = dict(CLASSIFIER_DEFAULTS)
    settings.update(CLASSIFIER_DATA_DEFAULTS.get(DATASET_NAMES.get(str(args.data).strip().lower(), ""), {}))
    settings.update({k: getattr(args, k) for k in CLASSIFIER_DEFAULTS if getattr(args, k) is not None})
    return settings


def _refuse_foreign_run(out: Path) -> None:
    """Refuse to write a classifier over a model run (or anything that is not a classifier) in ``out``."""
    from vaekit.errors import ConfigError

    config = out / "config.json"
    if not config.is_file():
        return
    try:
        kind = json.loads(config.read_text()).get("kind")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        kind = None
    if kind != "classifier":
        raise ConfigError(f"--out {out} already holds a run that is not a feature classifier ({config}); "
                          "choose another --out folder so it is not overwritten")


def cmd_train_classifier(args: argparse.Namespace) -> int:
    import torch

    from vaekit._io import atomic_write_text
    from vaekit.data import train_val_split
    from vaekit.errors import ConfigError, DataError
    from vaekit.train.classifier import classifier_accuracy, train_classifier

    out = check_out_dir(args.out)
    _refuse_foreign_run(out)
    train_settings = _classifier_settings(args)
    if not 0 <= train_settings["val_fraction"] < 1:
        raise ConfigError(f"--val-fraction must lie in [0, 1) (0: no validation set), got {train_settings['val_fraction']}")
    if not 0 < train_settings["lr"] < float("inf"):
        raise ConfigError(f"--lr must be a finite number > 0, got {train_settings['lr']}")
    settings = {"data": args.data, "data_dir": args.data_dir, "label_column": args.label_column, "image_size": args.image_size}
    data = _load_data(settings, "train")
    if data.y is None or data.num_classes is None:
        raise DataError(f"`vaekit train-classifier` needs class labels, and {args.data} has none "
                        "(use a labelled dataset: fashion-mnist, digits, an .npz with y_train, an image folder of class folders, "
                        "or a CSV with --label-column)")
    seed = train_settings["seed"]
    train, val = (data, None) if train_settings["val_fraction"] == 0 else train_val_split(data, train_settings["val_fraction"], seed=seed)
    held_out, split = (_load_data(settings, "test"), "test") if _has_test_split(args.data) else (val, "val")
    if held_out is None:
        raise ConfigError(f"{args.data} has no test split, so the accuracy needs a validation set: give --val-fraction > 0")
    if held_out.y is None or held_out.num_classes is None:
        raise DataError(f"the {split} split of {args.data} has no class labels, so the accuracy cannot be measured; "
                        "give labelled test data (y_test beside x_test)")
    resolved = {"command": "train-classifier", **settings, "out": str(out), **train_settings, "device": args.device}
    _say(args, f"training a feature classifier on {args.data} ({len(train)} train"
               f"{'' if val is None else f' / {len(val)} val'}, input {data.input_shape}, {data.num_classes} classes) -> {out}")
    t0, c0 = time.perf_counter(), time.process_time()
    classifier, history = train_classifier(
        (train.x, train.y), None if val is None else (val.x, val.y), epochs=train_settings["epochs"],
        batch_size=train_settings["batch_size"], lr=train_settings["lr"], seed=seed, out_dir=out, quiet=args.quiet,
        arch=train_settings["arch"], channels=train_settings["channels"], hidden_dims=train_settings["hidden_dims"],
        num_classes=max(data.num_classes, held_out.num_classes), device=args.device,
    )
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    from vaekit.models import classifier_sha256

    digest = classifier_sha256(classifier)
    accuracy = classifier_accuracy(classifier, held_out.x, held_out.y)
    result: dict[str, Any] = {
        "out": str(out),
        "data": args.data,
        "split": split,
        "accuracy": accuracy,
        "sha256": digest,
        "input_shape": list(classifier.input_shape),
        "num_classes": classifier.num_classes,
        "num_features": classifier.num_features,
        "num_parameters": sum(p.numel() for p in classifier.parameters()),
        "epochs": train_settings["epochs"],
        "best_epoch": (max(history, key=lambda r: r["val/accuracy"])["epoch"] if val is not None else train_settings["epochs"]),
        "num_train": len(train),
        "num_val": 0 if val is None else len(val),
        "num_eval": len(held_out),
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    atomic_write_text(out / STATE_FILE, yaml.safe_dump(resolved, sort_keys=False))
    atomic_write_text(out / "metrics.json", json.dumps(result, indent=2) + "\n")
    result["files"] = {name: str(out / name) for name in ("model.safetensors", "config.json", "metrics.json", "metrics.jsonl", STATE_FILE)}
    _say(args, f"done: {out}  ({split} accuracy {accuracy:.4f}, weights SHA-256 {digest})")
    print(json.dumps(result, indent=2))
    return 0


def _sampler(args: argparse.Namespace, model: Any) -> Callable[[], Any]:
    """What draws ``args.n`` images from ``model``: its prior through the decoder mean, or a fitted gmm/flow sampler.

    Everything is checked (a prior to sample from, a fitted sampler file) before anything is drawn.
    """
    import torch

    from vaekit.errors import ConfigError

    name = model.config.get("model", "this model")
    if args.sampler != "prior":
        try:
            from vaekit import samplers
        except ImportError:
            raise ConfigError(f"no {args.sampler} sampler can be loaded for {args.run}: fit one with "
                              f"`vaekit fit-sampler {args.run} --sampler {args.sampler}`") from None
        fitted = samplers.load(args.run, args.sampler, model=model)
        return lambda: fitted.sample(args.n, seed=args.seed)
    if model.prior_module is None:
        raise ConfigError(f"{args.run} ({name}) has no prior to sample from; fit a sampler to its codes with "
                          f"`vaekit fit-sampler {args.run} --sampler gmm` and pass --sampler gmm (or flow)")
    if model.conditional and not model.num_classes:
        raise ConfigError(f"{args.run} ({name}) is conditioned on vectors, which sample-quality cannot choose; "
                          "score samples you draw yourself with vaekit.eval.sample_quality(images, reference, classifier)")

    def draw() -> Any:
        torch.manual_seed(args.seed)
        labels = torch.arange(args.n) % model.num_classes if model.conditional else None  # every class equally often
        chunks = []
        for start in range(0, args.n, args.batch_size):
            count = min(args.batch_size, args.n - start)
            y = None if labels is None else labels[start : start + count].to(model.device)
            chunks.append(model.sample(count, y=y).cpu())
        return torch.cat(chunks)

    return draw


def cmd_sample_quality(args: argparse.Namespace) -> int:
    import torch

    import vaekit
    from vaekit.errors import ConfigError
    from vaekit.eval.sample_quality import sample_quality

    if args.n < args.k + 2:
        raise ConfigError(f"-n must exceed k + 1 = {args.k + 1} (the neighbourhoods of precision and recall), got {args.n}")
    classifier = vaekit.load_classifier(args.classifier, device=args.device)
    try:
        kind = json.loads((Path(args.run) / "config.json").read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        kind = None  # vaekit.load says what is wrong with the run
    if kind == "classifier":
        raise ConfigError(f"{args.run} is a feature classifier, not a model run; give the run to score as RUN and the classifier as --classifier")
    model = vaekit.load(args.run, device=args.device)
    if tuple(model.input_shape) != tuple(classifier.input_shape):
        raise ConfigError(f"the classifier {args.classifier} takes inputs of shape {tuple(classifier.input_shape)} but {args.run} "
                          f"makes {tuple(model.input_shape)}; train a classifier on the run's data "
                          "(`vaekit train-classifier --data DATA --out DIR`) and pass it as --classifier")
    settings = _run_settings(args.run)
    for key in ("data", "data_dir"):
        if getattr(args, key, None):
            settings[key] = getattr(args, key)
    split = "test" if _has_test_split(settings["data"]) else "train"
    reference = _load_data(settings, split)
    where = f"{split} images of {settings['data']}"
    excluded = settings.get("exclude_classes")
    if excluded and reference.y is not None and not args.data:  # the run learnt the data without these classes
        reference = reference[~torch.isin(reference.y, torch.tensor(list(excluded)))]
        where += f" without classes {list(excluded)}"
    reference = reference[: args.n]
    draw = _sampler(args, model)
    _say(args, f"sampling {args.n} images from {args.run} ({args.sampler}); reference: the first {len(reference)} {where}")
    t0 = time.perf_counter()
    images = draw()
    scores = sample_quality(images, reference.x, classifier, batch_size=args.batch_size, k=args.k, seed=args.seed)
    result = {**scores, "run": str(args.run), "classifier": str(args.classifier), "sampler": args.sampler,
              "data": settings["data"], "split": split, "reference": where, "n_reference": len(reference),
              "seconds": time.perf_counter() - t0}
    _say(args, f"FD {scores['fd']:.4g}  KID {scores['kid']:.4g} ± {scores['kid_std']:.2g}  precision {scores['precision']:.3f}  "
               f"recall {scores['recall']:.3f}  density {scores['density']:.3f}  coverage {scores['coverage']:.3f}  "
               f"(classifier {scores['classifier_sha256'][:12]}…)")
    from vaekit._io import atomic_write_text
    from vaekit.viz.report import SAMPLE_QUALITY_FILE

    text = json.dumps(result, indent=2)
    atomic_write_text(Path(args.run) / SAMPLE_QUALITY_FILE, text + "\n")  # `vaekit report RUN` shows it
    print(text)
    return 0


def add_commands(sub: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Add ``train-classifier`` and ``sample-quality``; return their handlers."""
    d = CLASSIFIER_DEFAULTS
    p = sub.add_parser("train-classifier", help="train the feature classifier of sample-quality scores and the DFC-VAE")
    p.add_argument("--data", default="fashion-mnist", help="labelled data: fashion-mnist, digits, or a path (.npz, CSV, image folder)")
    p.add_argument("--data-dir", help="folder with the Fashion-MNIST IDX files (or set VAEKIT_DATA)")
    p.add_argument("--label-column", help="label column of a CSV table (name or index)")
    p.add_argument("--image-size", type=_int_list, help="resize images of a folder to H,W")
    p.add_argument("--out", default="runs/classifier", help="folder for the classifier (default runs/classifier)")
    p.add_argument("--epochs", type=_positive_int, help=f"default {d['epochs']} (digits: 30)")
    p.add_argument("--batch-size", type=_positive_int, help=f"default {d['batch_size']} (digits: 32)")
    p.add_argument("--lr", type=float, help=f"Adam's learning rate (default {d['lr']:g}; digits: 0.001)")
    p.add_argument("--arch", choices=["auto", "conv", "mlp"], help="auto (default): a CNN for images of at least 8×8, else an MLP")
    p.add_argument("--channels", type=_int_list, help="convolution blocks' channels (default 16,32)")
    p.add_argument("--hidden-dims", type=_int_list, help="fully connected sizes; the last is the feature size (default 128)")
    p.add_argument("--val-fraction", type=float, help=f"share held out to pick the best epoch (default {d['val_fraction']}; 0: none)")
    p.add_argument("--seed", type=int, help="fixes the initial weights and the shuffling, hence the SHA-256 (default 0)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary on stderr")

    p = sub.add_parser("sample-quality", help="FD, KID, precision/recall, density/coverage of a run's samples (JSON; also RUN/sample_quality.json)")
    p.add_argument("run", help="run folder written by `vaekit train` (or model.save)")
    p.add_argument("--classifier", required=True, help="folder written by `vaekit train-classifier` on the same kind of data")
    p.add_argument("-n", type=_positive_int, default=10_000, help="samples to draw (and at most as many reference images); default 10000")
    p.add_argument("--sampler", choices=["prior", "gmm", "flow"], default="prior",
                   help="prior: the model's prior (default); gmm/flow: a sampler fitted by `vaekit fit-sampler`")
    p.add_argument("-k", type=_positive_int, default=5, help="neighbourhood size of precision, recall, density, coverage")
    p.add_argument("--data", help="reference data instead of the run's own (its test split when it has one)")
    p.add_argument("--data-dir", help="folder with the Fashion-MNIST IDX files")
    p.add_argument("--batch-size", type=_positive_int, default=500)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--seed", type=int, default=0, help="seeds the samples and KID's subsets")
    p.add_argument("--quiet", action="store_true", help="no progress or summary on stderr")
    return {"train-classifier": cmd_train_classifier, "sample-quality": cmd_sample_quality}
