"""``vaekit models``, ``vaekit train`` and ``vaekit demo``: presets, training runs, the first run."""

from __future__ import annotations

import argparse
import difflib
import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from vaekit.cli._common import (
    SPEC_KEYS, STATE_FILE, TRAIN_DEFAULTS, _binarized, _count, _has_test_split, _int_list, _load_data, _positive_int,
    _read_yaml, _say,
)

__all__ = ["add_commands", "cmd_train", "train_settings", "split_preset_flags"]


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
    parser = argparse.ArgumentParser(add_help=False)
    add_commands(parser.add_subparsers(dest="command"))
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
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


def cmd_demo(args: argparse.Namespace) -> int:
    """A VAE on scikit-learn's 8×8 digits (embedded, no download): about 20 seconds on 2 CPU cores."""
    forwarded = ["vae", "--data", "digits", "--epochs", str(args.epochs), "--arch", "mlp", "--latent-dim", "8", "--hidden-dims", "256,128",
                 "--batch-size", "32", "--nll-samples", "500", "--out", args.out]
    if args.quiet:
        forwarded.append("--quiet")
    if args.fresh:
        forwarded.append("--fresh")
    t0 = time.perf_counter()
    parser = argparse.ArgumentParser(prog="vaekit", allow_abbrev=False)
    add_commands(parser.add_subparsers(dest="command"))
    argv, extras = split_preset_flags(parser, ["train", *forwarded])
    ns = parser.parse_args(argv)
    code = cmd_train(ns, extras)
    print(f"demo finished in {time.perf_counter() - t0:.0f} s; open {args.out}/samples.png and {args.out}/reconstructions.png")
    return code




def add_commands(sub: Any) -> dict[str, Callable[..., int]]:
    """Add ``models``, ``train`` and ``demo``; return their handlers (``train``'s takes the preset flags too)."""
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

    p = sub.add_parser("demo", help="train a VAE on the embedded 8×8 digits (under a minute) and write PNGs + metrics")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--epochs", type=_positive_int, default=150)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--fresh", action="store_true", help="start over even if --out holds a checkpoint")

    return {"models": cmd_models, "train": cmd_train, "demo": cmd_demo}


def split_preset_flags(parser: argparse.ArgumentParser, argv: Sequence[str]) -> tuple[list[str], list[str]]:
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
