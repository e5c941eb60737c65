"""The ``vaekit`` command: the library's API as subcommands with the same names.

Every user error (unknown model or option, bad data, missing file) ends with one line
on stderr and a non-zero exit status, never a traceback (set VAEKIT_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, NoReturn, Sequence

import yaml

__all__ = ["main"]

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


def _extra_options(extras: Sequence[str], known: Sequence[str]) -> dict[str, Any]:
    """``--name value`` / ``--name=value`` pairs left over by argparse: the preset's own options."""
    from vaekit.errors import ConfigError

    options: dict[str, Any] = {}
    i = 0
    while i < len(extras):
        token = extras[i]
        if not token.startswith("--"):
            raise ConfigError(f"unexpected argument {token!r}; preset options are written --name value")
        name, eq, value = token[2:].partition("=")
        key = name.replace("-", "_")
        if not eq:
            if i + 1 < len(extras) and not extras[i + 1].startswith("--"):
                value, i = extras[i + 1], i + 1
            else:
                value = "true"
        hint = difflib.get_close_matches(key, known, n=1, cutoff=0.85)
        if hint and hint[0] != key:
            raise ConfigError(f"unknown flag --{name}; did you mean --{hint[0].replace('_', '-')}?")
        options[key] = yaml.safe_load(value)
        i += 1
    return options


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


def _write_report(model, history, eval_x, eval_y, out: Path, settings: dict[str, Any], split_name: str) -> dict[str, Any]:
    """Samples, reconstructions, curves, KL per dimension and metrics.json for a trained run."""
    import torch

    from vaekit import evaluate
    from vaekit._io import atomic_write_text
    from vaekit.viz import plot_kl_per_dimension, plot_training_curves, save_image_grid, save_reconstructions

    torch.manual_seed(settings["seed"])
    files = {}
    y_sample = None
    if model.conditional and model.num_classes:
        y_sample = torch.arange(64) % model.num_classes
    if model.prior_module is not None:
        files["samples"] = save_image_grid(model.sample(64, y=y_sample).cpu(), out / "samples.png", nrow=8)
    n = min(8, eval_x.shape[0])
    yb = None if eval_y is None or not model.conditional else eval_y[:n]
    files["reconstructions"] = save_reconstructions(eval_x[:n], model.reconstruct(eval_x[:n].to(model.device), yb).cpu(), out / "reconstructions.png", n=n)
    if history:
        files["curves"] = plot_training_curves(history, out / "curves.png")
    metrics = evaluate(model, eval_x, eval_y if model.conditional else None, nll_samples=settings["nll_samples"], progress=not settings["quiet"])
    if metrics.get("kl_per_dimension"):
        files["kl_per_dimension"] = plot_kl_per_dimension(metrics["kl_per_dimension"], out / "kl_per_dimension.png")
    metrics = {"split": split_name, **metrics}
    if history:
        metrics["epochs_trained"] = history[-1]["epoch"]
        metrics["train_samples_per_s"] = sum(r["samples_per_s"] for r in history) / len(history)
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    files["metrics"] = out / "metrics.json"
    return {"metrics": metrics, "files": {k: str(v) for k, v in files.items()}}


# -- commands -------------------------------------------------------------------------------
def cmd_models(args: argparse.Namespace) -> int:
    from vaekit.models import available_models, get_preset

    rows = []
    for name in available_models():
        preset = get_preset(name)
        rows.append({"model": name, "family": preset.family, "summary": preset.summary,
                     "options": {k: {"default": v, "doc": preset.docs.get(k, "")} for k, v in preset.defaults.items()}})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["model"]) for r in rows)
    for r in rows:
        print(f"{r['model']:<{width}}  [{r['family']}] {r['summary']}")
        for k, o in r["options"].items():
            print(f"{'':<{width}}    --{k.replace('_', '-')} (default {o['default']!r}): {o['doc']}")
    print("\nshared options: --latent-dim, --arch auto|mlp|conv, --hidden-dims, --channels, --likelihood auto|bernoulli|gaussian|logistic, "
          "--likelihood-scale, --conditional (labels one-hot, --num-classes from the data), --condition-dim (vector labels)")
    return 0


def _train_flags() -> dict[str, argparse.Action]:
    """`vaekit train`'s flags by setting name: their types and choices check a --config file too."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {action.dest: action for action in sub.choices["train"]._actions}


def _setting_from_yaml(key: str, value: Any, flag: argparse.Action, path: str) -> Any:
    """``value`` of ``key`` from a YAML config, converted and checked as its command-line flag would be."""
    from vaekit.errors import ConfigError

    if value is None:
        return None
    if flag.nargs == 0:  # an on/off flag (--conditional, --quiet)
        if not isinstance(value, bool):
            raise ConfigError(f"config file {path}: {key} must be true or false, got {value!r}")
        return value
    if isinstance(value, (dict, bool)) or (isinstance(value, list) and flag.type is not _int_list):
        raise ConfigError(f"config file {path}: {key} must be a single value, got {value!r}")
    text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    try:
        converted = flag.type(text) if flag.type else text
    except argparse.ArgumentTypeError as e:
        raise ConfigError(f"config file {path}: {key} {e}") from None
    except (ValueError, TypeError):
        expected = {int: "an integer", float: "a number"}.get(flag.type, "a valid value")
        raise ConfigError(f"config file {path}: {key} must be {expected}, got {value!r}") from None
    if flag.choices and converted not in flag.choices:
        raise ConfigError(f"config file {path}: {key} must be one of {', '.join(flag.choices)}, got {value!r}")
    return converted


def train_settings(args: argparse.Namespace, extras: Sequence[str]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Resolve defaults < --config YAML < flags; return (model name, settings, preset options)."""
    from vaekit.errors import ConfigError

    settings = dict(TRAIN_DEFAULTS)
    options: dict[str, Any] = {}
    name = args.model
    if args.config:
        config = _read_yaml(args.config)
        name = name or config.pop("model", None)
        config.pop("model", None)
        if config.get("out") and not args.out:
            args.out = str(config["out"])
        config.pop("out", None)
        config_options = config.pop("options", None) or {}
        if not isinstance(config_options, dict):
            raise ConfigError(f"config file {args.config}: options must be a mapping of preset option: value, got {config_options!r}")
        options.update(config_options)
        train_flags = _train_flags()
        for key, value in config.items():
            if key in TRAIN_DEFAULTS:
                settings[key] = _setting_from_yaml(key, value, train_flags[key], args.config)
            else:
                options[key] = value
    flags = {k: v for k, v in vars(args).items() if k in TRAIN_DEFAULTS and v is not None}
    settings.update(flags)
    options.update(_extra_options(extras, list(TRAIN_DEFAULTS) + ["out", "config", "resume", "fresh"]))
    if not name:
        raise ConfigError("no model given: `vaekit train MODEL ...` (see `vaekit models`) or `model:` in the --config file")
    if settings["binarize"] not in ("none", "dynamic", "static"):
        raise ConfigError(f"--binarize takes none, dynamic or static, got {settings['binarize']!r}")
    return name, settings, options


def _without_classes(data: Any, classes: Sequence[int], source: str) -> Any:
    """``data`` without the examples labelled ``classes`` (a model of the normal classes, for anomaly detection)."""
    import torch

    from vaekit.errors import ConfigError

    if data.y is None:
        raise ConfigError(f"--exclude-classes needs labels, and {source} has none (give --label-column for CSV files)")
    present = set(int(c) for c in data.y.unique())
    if not set(classes) <= present or set(classes) >= present:
        raise ConfigError(f"--exclude-classes {list(classes)}: the labels are {sorted(present)}; "
                          "name classes that occur, and leave at least one")
    return data[~torch.isin(data.y, torch.tensor(list(classes)))]


def _likelihood_for(x: Any) -> str:
    """The default observation model: Bernoulli for data in [0, 1] (images), Gaussian for anything else (tables)."""
    low, high = float(x.min()), float(x.max())
    return "bernoulli" if 0.0 <= low and high <= 1.0 else "gaussian"


def cmd_train(args: argparse.Namespace, extras: Sequence[str]) -> int:
    import torch

    import vaekit
    from vaekit._io import atomic_write_text
    from vaekit.data import Dataset, train_val_split
    from vaekit.errors import ConfigError
    from vaekit.train.checkpoint import CHECKPOINT_FILE, check_resumable

    name, settings, options = train_settings(args, extras)
    out = Path(args.out or f"runs/{name}")
    state_file = out / STATE_FILE
    if state_file.exists() and not args.fresh:
        saved = yaml.safe_load(state_file.read_text()) or {}
        if saved.get("model") != name:
            raise ConfigError(f"{out} holds a run of {saved.get('model')!r}; use another --out, or --fresh to start over there")
    train_full = _load_data(settings, "train")
    if settings["exclude_classes"]:
        train_full = _without_classes(train_full, settings["exclude_classes"], settings["data"])
        _say(settings, f"training without classes {settings['exclude_classes']} ({len(train_full)} examples left)")
    if name == "conditional_vae" or options.get("num_classes") or options.get("condition_dim"):
        settings["conditional"] = True  # these train on (x, y): the labels of the data
    if settings["conditional"] and train_full.y is None:
        raise ConfigError(f"--conditional needs labels, and {settings['data']} has none (give --label-column for CSV files)")
    train_set, val_set = train_val_split(train_full, settings["val_fraction"], seed=settings["seed"])
    test_set = _load_data(settings, "test") if _has_test_split(settings["data"]) else val_set
    chosen = settings["likelihood"] == "auto"
    if chosen:
        settings["likelihood"] = _likelihood_for(train_full.x)
    spec = {k: settings[k] for k in SPEC_KEYS}
    if settings["conditional"] and not options.get("num_classes") and not options.get("condition_dim"):
        spec["num_classes"] = int(train_full.y.max()) + 1
    torch.manual_seed(settings["seed"])  # --seed fixes the initial weights too
    model = vaekit.create(name, input_shape=train_full.input_shape, **spec, **options)
    checkpoint = out / CHECKPOINT_FILE
    if checkpoint.exists() and not args.fresh:  # refuse before train.yaml is rewritten
        check_resumable(checkpoint, model)
    settings.update({k: model.config[k] for k in SPEC_KEYS})  # what the preset built (linear_ae fixes some)
    if chosen:
        _say(settings, f"likelihood: {model.config['likelihood']} (data in [{float(train_full.x.min()):g}, "
                       f"{float(train_full.x.max()):g}]; choose another with --likelihood)")
    resolved = {"model": name, **settings, "options": model.config["options"], "out": str(out)}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(state_file, yaml.safe_dump(resolved, sort_keys=False))
    _say(settings, f"training {name} on {settings['data']} ({len(train_set)} train / {len(val_set)} val, input {train_full.input_shape}) -> {out}")

    def labelled(d: Dataset):
        return (d.x, d.y) if settings["conditional"] else d.x

    result = vaekit.fit(
        model, labelled(train_set), labelled(val_set), epochs=settings["epochs"], batch_size=settings["batch_size"],
        lr=settings["lr"], out_dir=out, quiet=settings["quiet"], seed=settings["seed"], device=settings["device"],
        grad_clip=settings["grad_clip"], patience=settings["patience"],
        binarize_data=None if settings["binarize"] == "none" else settings["binarize"], resume=not args.fresh,
    )
    eval_x = _binarized(test_set.x, settings, seed=0)
    report = _write_report(model, result.history, eval_x, test_set.y, out, settings, "test" if test_set is not val_set else "val")
    m = report["metrics"]
    summary = f"done: {out}  (best epoch {result.best_epoch}, {m['split']} "
    summary += f"ELBO {m['elbo']:.2f} nats" if "elbo" in m else f"reconstruction squared error {m['mse']:.4g}"
    if "log_likelihood" in m:
        summary += f", log p(x) ≈ {m['log_likelihood']:.2f} nats (K={m['log_likelihood_samples']})"
    print(summary + ")")
    for kind, path in report["files"].items():
        print(f"  {kind:<16} {path}")
    return 0


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


def cmd_eval(args: argparse.Namespace) -> int:
    import vaekit

    model = vaekit.load(args.run, device=args.device or "cpu")
    settings = _run_settings(args.run)
    data, x, split = _eval_data(args, settings)
    import torch

    torch.manual_seed(args.seed)
    metrics = vaekit.evaluate(model, x, data.y if model.conditional else None, nll_samples=args.nll_samples, progress=not args.quiet)
    print(json.dumps({"run": args.run, "data": settings["data"] if not args.data else args.data, "split": split, **metrics}, indent=2))
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    import torch

    import vaekit
    from vaekit.viz import save_image_grid

    model = vaekit.load(args.run)
    torch.manual_seed(args.seed)
    y = None
    if model.conditional:
        y = torch.full((args.n,), args.label, dtype=torch.long) if args.label is not None else torch.arange(args.n) % (model.num_classes or 1)
    path = save_image_grid(model.sample(args.n, y=y), args.output)
    print(path)
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    import vaekit
    from vaekit.viz import save_reconstructions

    model = vaekit.load(args.run)
    data, x, _ = _eval_data(args, _run_settings(args.run))
    x = x[: args.n]
    y = data.y[: args.n] if model.conditional else None
    print(save_reconstructions(x, model.reconstruct(x, y), args.output, n=args.n))
    return 0


def cmd_traverse(args: argparse.Namespace) -> int:
    """One row per latent dimension: the code of an example with that coordinate swept over [−r, r]."""
    import torch

    import vaekit
    from vaekit.errors import ConfigError
    from vaekit.viz import save_image_rows

    model = vaekit.load(args.run)
    data, x, _ = _eval_data(args, _run_settings(args.run))
    if not 0 <= args.index < x.shape[0]:
        raise ConfigError(f"--index {args.index} is outside the data (0..{x.shape[0] - 1})")
    y = data.y[args.index : args.index + 1] if model.conditional else None
    code = model.transform(x[args.index : args.index + 1], y)[0]
    dims = args.dims or list(range(min(model.latent_dim, 10)))
    if any(not 0 <= d < model.latent_dim for d in dims):
        raise ConfigError(f"--dims must lie in 0..{model.latent_dim - 1}")
    values = torch.linspace(-args.range, args.range, args.steps)
    rows = []
    with torch.no_grad():
        for d in dims:
            z = code.repeat(args.steps, 1)
            z[:, d] = values
            rows.append(model.decode(z, None if y is None else y.expand(args.steps)).mean)
    print(save_image_rows(rows, args.output, labels=[f"z{d}" for d in dims]))
    return 0


def cmd_interpolate(args: argparse.Namespace) -> int:
    """Decoded points on the straight line between the codes of two examples."""
    import torch

    import vaekit
    from vaekit.errors import ConfigError
    from vaekit.viz import save_image_rows

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


def cmd_demo(args: argparse.Namespace) -> int:
    """A VAE on scikit-learn's 8×8 digits (embedded, no download): about 20 seconds on 2 CPU cores."""
    forwarded = ["vae", "--data", "digits", "--epochs", str(args.epochs), "--arch", "mlp", "--latent-dim", "8", "--hidden-dims", "256,128",
                 "--batch-size", "32", "--nll-samples", "500", "--out", args.out]
    if args.quiet:
        forwarded.append("--quiet")
    if args.fresh:
        forwarded.append("--fresh")
    t0 = time.perf_counter()
    parser = build_parser()
    argv, extras = _split_preset_flags(parser, ["train", *forwarded])
    ns = parser.parse_args(argv)
    code = cmd_train(ns, extras)
    print(f"demo finished in {time.perf_counter() - t0:.0f} s; open {args.out}/samples.png and {args.out}/reconstructions.png")
    return code


# -- parser and entry point -----------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """Subcommand parsers: no abbreviated flags (``--epoch`` is a typo, not ``--epochs``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """One line, like every other vaekit error (argparse would print the whole usage first)."""
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vaekit", description="Autoencoders and variational autoencoders: train, evaluate, sample, use.")
    parser.add_argument("--version", action="version", version=f"vaekit {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    S = argparse.SUPPRESS

    p = sub.add_parser("models", help="list the models (presets) and their options")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("train", help="train a model; preset options go as --name value (see `vaekit models`)")
    p.add_argument("model", nargs="?", help="preset name, e.g. vae (or `model:` in --config)")
    p.add_argument("--config", help="YAML file of settings (flags override it)")
    p.add_argument("--out", help="run folder (default runs/MODEL); re-running into it resumes")
    p.add_argument("--data", default=S, help="fashion-mnist, digits, or a path to .npy/.npz/.csv/an image folder")
    p.add_argument("--data-dir", default=S, help="folder with the Fashion-MNIST IDX files (or set VAEKIT_DATA)")
    p.add_argument("--label-column", default=S, help="label column of a CSV table (name or index)")
    p.add_argument("--image-size", type=_int_list, default=S, help="resize images of a folder to H,W")
    p.add_argument("--epochs", type=_positive_int, default=S)
    p.add_argument("--batch-size", type=_positive_int, default=S)
    p.add_argument("--lr", type=float, default=S)
    p.add_argument("--latent-dim", type=int, default=S)
    p.add_argument("--arch", choices=["auto", "mlp", "conv"], default=S, help="auto: conv for images, mlp for vectors")
    p.add_argument("--hidden-dims", type=_int_list, default=S, help="e.g. 512,512")
    p.add_argument("--channels", type=_int_list, default=S, help="e.g. 32,64")
    p.add_argument("--likelihood", choices=["auto", "bernoulli", "gaussian", "logistic"], default=S,
                   help="observation model; auto (default): bernoulli for data in [0, 1], gaussian otherwise")
    p.add_argument("--likelihood-scale", default=S, help='σ of the Gaussian likelihood, or "learned"')
    p.add_argument("--binarize", choices=["none", "dynamic", "static"], default=S, help="Bernoulli-binarise the data (dynamic: every epoch)")
    p.add_argument("--val-fraction", type=float, default=S)
    p.add_argument("--patience", type=_positive_int, default=S, help="early stopping after this many epochs without improvement")
    p.add_argument("--grad-clip", type=float, default=S)
    p.add_argument("--seed", type=int, default=S)
    p.add_argument("--device", default=S, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--nll-samples", type=_count, default=S, help="importance samples for the final log p(x) (0: skip)")
    p.add_argument("--exclude-classes", type=_int_list, default=S,
                   help="leave these labels out of training, e.g. 8 (train on normal data; `vaekit anomaly` then treats them as anomalies)")
    p.add_argument("--conditional", action="store_true", default=S, help="condition on the labels (num_classes from the data)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out (the default when it has a checkpoint)")
    p.add_argument("--fresh", action="store_true", help="start over even if --out holds a checkpoint")
    p.add_argument("--quiet", action="store_true", default=S, help="no progress bar")

    def run_parser(name: str, help: str) -> argparse.ArgumentParser:
        q = sub.add_parser(name, help=help)
        q.add_argument("run", help="run folder written by `vaekit train` (or model.save)")
        q.add_argument("--data", help="data to use instead of the run's own (its test split when it has one)")
        q.add_argument("--data-dir")
        q.add_argument("--binarize", choices=["none", "dynamic", "static"], help="default: as in training (static for the test set)")
        q.add_argument("--limit", type=_positive_int, help="use only the first N examples")
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--quiet", action="store_true")
        return q

    p = run_parser("eval", "evaluate a run: JSON metrics on stdout")
    p.add_argument("--nll-samples", type=_count, default=1000, help="importance samples K for log p(x) (0: skip)")
    p.add_argument("--device", default=None)
    p = run_parser("sample", "draw samples from the prior into a PNG grid")
    p.add_argument("-n", type=_positive_int, default=64)
    p.add_argument("-o", "--output", default="samples.png")
    p.add_argument("--label", type=int, help="class to generate (conditional models)")
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

    p = sub.add_parser("demo", help="train a VAE on the embedded 8×8 digits (under a minute) and write PNGs + metrics")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--epochs", type=_positive_int, default=150)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--fresh", action="store_true", help="start over even if --out holds a checkpoint")

    from vaekit.cli_apps import add_commands

    COMMANDS.update(add_commands(sub))
    return parser


def _version() -> str:
    from vaekit._version import __version__

    return __version__


COMMANDS: dict[str, Callable[..., int]] = {
    "models": cmd_models, "eval": cmd_eval, "sample": cmd_sample, "reconstruct": cmd_reconstruct,
    "traverse": cmd_traverse, "interpolate": cmd_interpolate, "demo": cmd_demo,
}


def _split_preset_flags(parser: argparse.ArgumentParser, argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separate `train`'s own flags from the preset options (`--beta 4`), which argparse does not know.

    Done before argparse so that an option's value is never mistaken for the MODEL positional.
    """
    if "train" not in argv:
        return list(argv), []
    train = next(a for a in parser._subparsers._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
    known = train._option_string_actions
    kept, extras = list(argv[: argv.index("train") + 1]), []
    rest = list(argv[argv.index("train") + 1 :])
    i = 0
    while i < len(rest):
        token = rest[i]
        name = token.split("=", 1)[0]
        if token.startswith("--") and name not in known:
            extras.append(token)
            if "=" not in token and i + 1 < len(rest) and not rest[i + 1].startswith("--"):
                extras.append(rest[i + 1])
                i += 1
        else:
            kept.append(token)
        i += 1
    return kept, extras


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    argv, extras = _split_preset_flags(parser, argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from vaekit.errors import VaekitError

    def one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"vaekit {args.command}: warning: {message}", file=sys.stderr)

    shown, warnings.showwarning = warnings.showwarning, one_line_warning  # the message, not the library line
    try:
        if args.command == "train":
            return cmd_train(args, extras)
        return COMMANDS[args.command](args)
    except VaekitError as e:
        print(f"vaekit {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vaekit {args.command}: interrupted; files already written are intact (re-run `vaekit train` with the same --out to resume)", file=sys.stderr)
        return 130
    except (OSError, MemoryError) as e:
        if os.environ.get("VAEKIT_DEBUG"):
            raise
        print(f"vaekit {args.command}: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 — the last line of defence: one line, not a traceback
        if os.environ.get("VAEKIT_DEBUG"):
            raise
        print(f"vaekit {args.command}: internal error: {type(e).__name__}: {e} (set VAEKIT_DEBUG=1 for the traceback, and please report it)", file=sys.stderr)
        return 1
    finally:
        warnings.showwarning = shown


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
