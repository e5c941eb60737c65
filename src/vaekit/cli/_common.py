"""What every ``vaekit`` command module shares: settings files, argument types, data loading.

Every command module imports from here (and nothing else of ``vaekit.cli``), so the
command line has no import cycles: ``main`` → command modules → ``_common``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

import yaml

__all__ = [
    "TRAIN_DEFAULTS", "SPEC_KEYS", "STATE_FILE", "_say", "_int_at_least", "_positive_int", "_count", "_int_list",
    "_read_yaml", "_load_data", "_has_test_split", "_binarized", "_run_settings", "_eval_data", "add_run_arguments",
]

TRAIN_DEFAULTS: dict[str, Any] = {
    "data": "fashion-mnist",
    "data_dir": None,
    "label_column": None,
    "image_size": None,
    "epochs": 30,
    "batch_size": 128,
    "lr": 1e-3,
    "latent_dim": 16,
    "arch": "auto",
    "hidden_dims": [512, 512],
    "channels": [32, 64],
    "likelihood": "auto",
    "likelihood_scale": "learned",
    "binarize": "none",
    "val_fraction": 0.1,
    "patience": None,
    "grad_clip": None,
    "seed": 0,
    "device": None,
    "nll_samples": 100,
    "conditional": False,
    "exclude_classes": None,
    "quiet": False,
}
"""Training settings and their defaults; a YAML ``--config`` and command-line flags override them, in that order."""

SPEC_KEYS = ("latent_dim", "arch", "hidden_dims", "channels", "likelihood", "likelihood_scale")
STATE_FILE = "train.yaml"


# -- helpers --------------------------------------------------------------------------------
def _say(args: argparse.Namespace | dict, message: str) -> None:
    quiet = args.get("quiet") if isinstance(args, dict) else getattr(args, "quiet", False)
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def _int_at_least(low: int, what: str) -> Callable[[str], int]:
    """argparse type: an integer ≥ ``low``, refused with ``must be {what}``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1, "a positive integer")
_count = _int_at_least(0, "an integer ≥ 0")


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in str(text).replace(" ", "").strip("[]()").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers like 512,256, got {text!r}") from None


def _read_yaml(path: str) -> dict[str, Any]:
    from vaekit.errors import ConfigError

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        config = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"config file {path} must hold a mapping of option: value")
    return config


def _load_data(settings: dict[str, Any], split: str):
    from vaekit.data import load_dataset

    image_size = settings.get("image_size")
    return load_dataset(
        settings["data"], split=split, data_dir=settings.get("data_dir"), label_column=settings.get("label_column"),
        image_size=tuple(image_size) if image_size else None,
    )


def _has_test_split(source: str) -> bool:
    from vaekit.data import has_test_split

    return has_test_split(source)


def _binarized(x, settings: dict[str, Any], seed: int):
    from vaekit.data import static_binarize

    return static_binarize(x, seed=seed) if settings.get("binarize", "none") != "none" else x


def _run_settings(run: str) -> dict[str, Any]:
    from vaekit.errors import CheckpointError

    path = Path(run) / STATE_FILE
    settings = dict(TRAIN_DEFAULTS)
    if path.exists():
        try:
            settings.update(yaml.safe_load(path.read_text()) or {})
        except yaml.YAMLError:
            raise CheckpointError(f"{path} is damaged (not YAML)") from None
    return settings


def _eval_data(args: argparse.Namespace, run_settings: dict[str, Any]):
    settings = dict(run_settings)
    if getattr(args, "data", None):
        settings["data"] = args.data
    if getattr(args, "data_dir", None):
        settings["data_dir"] = args.data_dir
    split = "test" if _has_test_split(settings["data"]) else "train"
    data = _load_data(settings, split)
    limit = getattr(args, "limit", None)
    if limit:
        data = data[: int(limit)]
    binarize = getattr(args, "binarize", None) or settings.get("binarize", "none")
    x = _binarized(data.x, {"binarize": binarize}, seed=0)
    return data, x, split




def add_run_arguments(q: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments of a command that reads a run folder: RUN, data to use instead of the run's own, seed."""
    q.add_argument("run", help="run folder written by `vaekit train` (or model.save)")
    q.add_argument("--data", help="data to use instead of the run's own (its test split when it has one)")
    q.add_argument("--data-dir")
    q.add_argument("--binarize", choices=["none", "dynamic", "static"], help="default: as in training (static for the test set)")
    q.add_argument("--limit", type=_positive_int, help="use only the first N examples")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--quiet", action="store_true")
    return q
