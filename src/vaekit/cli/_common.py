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
    "TRAIN_DEFAULTS", "DATA_DEFAULTS", "data_defaults", "SPEC_KEYS", "check_output_file", "check_out_dir", "STATE_FILE", "_say", "_int_at_least", "_positive_int", "_count", "_int_list",
    "_read_yaml", "_load_data", "_image_size", "_has_test_split", "_binarized", "_run_settings", "_eval_data", "add_run_arguments",
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
    "warmup_epochs": 0,
    "grad_norm": None,
    "precision": "fp32",
    "compile": False,
    "schedule": "constant",
    "lr_warmup_epochs": 0,
    "lr_patience": 10,
    "fast": False,
    "ema": None,
    "stream": False,
    "init_from": None,
    "seed": 0,
    "device": None,
    "nll_samples": 100,
    "conditional": False,
    "exclude_classes": None,
    "quiet": False,
    "tensorboard": None,
    "mlflow": None,
}
"""Training settings and their defaults; a YAML ``--config`` and command-line flags override them, in that order."""

DATA_DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": {"epochs": 150, "batch_size": 32, "latent_dim": 8, "arch": "mlp", "hidden_dims": [256, 128]},
    "sprites": {"epochs": 40, "batch_size": 64, "latent_dim": 10, "arch": "mlp", "hidden_dims": [512, 256]},
}
"""Defaults that differ for a data set, between :data:`TRAIN_DEFAULTS` and the YAML/flags.

The 1 797 scikit-learn digits are 8×8: with the generic defaults (conv body, batch 128,
D = 16) a VAE gets 13 steps per epoch and its posterior collapses to the prior within
10 epochs (KL 0.36 nats, every sample one grey blob); an MLP 256-128 with D = 8 at batch
32 (50 steps per epoch) trains well in 10 epochs and well past them (the demo's settings).
The sprites get the body, code size and budget of ``benchmarks/disentanglement_sprites.py``
(D = 10 as in the disentanglement literature).
"""


def data_defaults(source: Any) -> dict[str, Any]:
    """The :data:`DATA_DEFAULTS` of a ``--data`` value (``sprites:32:5000`` is the sprites)."""
    from vaekit.data import DATASET_NAMES

    name = str(source).strip().lower()
    name = DATASET_NAMES.get(name, name.split(":", 1)[0])
    return DATA_DEFAULTS.get(name, {})

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

    return load_dataset(
        settings["data"], split=split, data_dir=settings.get("data_dir"), label_column=settings.get("label_column"),
        image_size=_image_size(settings),
    )


def _image_size(settings: dict[str, Any]) -> tuple[int, ...] | None:
    """``--image-size`` as a tuple (None when not given); a ConfigError when the data is not an image folder."""
    from vaekit.errors import ConfigError

    image_size = settings.get("image_size")
    if image_size and not _is_image_folder(settings["data"]):
        raise ConfigError(f"--image-size resizes the images of a folder, and {settings['data']} is not an image folder; drop --image-size")
    return tuple(image_size) if image_size else None


def _is_image_folder(source: str) -> bool:
    from vaekit.data import DATASET_NAMES
    from vaekit.data.fashion_mnist import has_fashion_mnist

    if str(source).strip().lower() in DATASET_NAMES:
        return False
    path = Path(source).expanduser()
    return path.is_dir() and not has_fashion_mnist(path)


def _streamable(source: str) -> bool:
    """Whether ``source`` can be read from its file batch by batch: a ``.npy``, an ``.npz`` or an image folder."""
    return _is_image_folder(source) or Path(str(source)).suffix.lower() in (".npy", ".npz")


def _streamed(source: str, asked: bool) -> bool:
    """Read ``source`` batch by batch: when ``asked`` (``--stream``; refused for data that cannot be), or when
    it would take more than half the free memory as float32."""
    from vaekit.data import fits_in_memory
    from vaekit.errors import ConfigError

    if asked and not _streamable(source):
        raise ConfigError(f"--stream reads a memory-mapped .npy, an uncompressed .npz or an image folder, and {source} is none of "
                          "them; the built-in data sets fit in memory: drop --stream")
    return _streamable(source) and (asked or (Path(str(source)).exists() and not fits_in_memory(source)))


def check_output_file(path: str | Path, flag: str, suffixes: tuple[str, ...] = (".png",)) -> Path:
    """``path`` if a file of one of ``suffixes`` can be written there; else one clear ConfigError.

    Checked before anything is computed, so a typo costs nothing.
    """
    from vaekit.errors import ConfigError

    path = Path(path)
    if path.suffix.lower() not in suffixes:
        kinds = " or ".join(s.lstrip(".").upper() for s in suffixes)
        raise ConfigError(f"{flag} {path}: this command writes {kinds}; give a path ending in {' or '.join(suffixes)}")
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder; give a file path ending in {suffixes[0]}")
    _check_creatable(path.parent, flag, path)
    return path


def check_out_dir(path: str | Path, flag: str = "--out") -> Path:
    """``path`` if it is (or can become) a folder vaekit may write to; else one clear ConfigError."""
    from vaekit.errors import ConfigError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path} is a file; a run is a folder: give a new or existing folder path")
    _check_creatable(path, flag, path)
    return path


def _check_creatable(folder: Path, flag: str, target: Path) -> None:
    """Refuse a ``folder`` that cannot be created or written: a file on the way, or no permission."""
    import os

    from vaekit.errors import ConfigError

    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{flag} {target}: {existing} is a file, so no folder can be made under it; choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {target}: no permission to write in {existing}; choose a folder you can write to")


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
            saved = yaml.safe_load(path.read_text()) or {}
            damage = None if isinstance(saved, dict) else "not a mapping of setting: value"
        except yaml.YAMLError:
            damage = "not YAML"
        if damage:
            raise CheckpointError(f"{path} is damaged ({damage}) — restore it, or delete it and give the run's data with --data")
        settings.update(saved)
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
