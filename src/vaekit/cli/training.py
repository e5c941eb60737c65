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
    SPEC_KEYS, STATE_FILE, TRAIN_DEFAULTS, _binarized, _count, _has_test_split, _image_size, _int_list, _load_data, _streamed,
    _int_at_least, _positive_int, _read_yaml, _say, check_out_dir, data_defaults,
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


EVAL_SHARE = 0.1
"""The automatic log p(x) after training may take about this share of the training time."""

MIN_NLL_EXAMPLES = 100
"""…but is never estimated on fewer examples than this (or the whole set when it is smaller)."""


def _nll_examples(model, eval_x, eval_y, samples: int, train_seconds: float, settings: dict[str, Any]) -> int:
    """How many examples the post-training log p(x) can afford: timed on a probe, scaled to
    :data:`EVAL_SHARE` of the training time (``vaekit eval`` scores the whole set)."""
    import time

    from vaekit import log_likelihood

    n = eval_x.shape[0]
    probe = min(n, 20)
    t0 = time.perf_counter()
    log_likelihood(model, eval_x[:probe], samples, y=None if eval_y is None else eval_y[:probe])
    per_example = (time.perf_counter() - t0) / probe
    affordable = int(EVAL_SHARE * train_seconds / max(per_example, 1e-9))
    return max(min(n, MIN_NLL_EXAMPLES), min(n, affordable))


def _write_report(model, history, eval_x, eval_y, out: Path, settings: dict[str, Any], split_name: str,
                  n_train: int | None = None, fit_settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Samples, reconstructions, curves, KL per dimension and metrics.json for a trained run.

    Images get image grids; vector (tabular) data gets ``samples.csv``, a plot of the data's
    and the samples' marginals, and a scatter of values against their reconstructions.
    """
    import torch

    from vaekit import evaluate
    from vaekit._io import atomic_write_text
    from vaekit.viz import (
        plot_kl_per_dimension, plot_marginals, plot_reconstruction_scatter, plot_training_curves, save_image_grid,
        save_reconstructions, write_csv,
    )

    torch.manual_seed(settings["seed"])
    files = {}
    tabular = len(model.input_shape) == 1
    y_labels = eval_y if model.conditional else None
    if model.prior_module is not None:
        if tabular:
            n_samples = min(1000, max(64, eval_x.shape[0]))
            y_sample = None if y_labels is None or not model.num_classes else y_labels[torch.randint(0, len(y_labels), (n_samples,))]
            samples = model.sample(n_samples, y=y_sample).cpu()
            files["samples"] = write_csv(samples, out / "samples.csv")
            files["marginals"] = plot_marginals(eval_x, samples, out / "marginals.png")
        else:
            y_sample = torch.arange(64) % model.num_classes if model.conditional and model.num_classes else None
            files["samples"] = save_image_grid(model.sample(64, y=y_sample).cpu(), out / "samples.png", nrow=8)
    n = min(500 if tabular else 8, eval_x.shape[0])
    yb = None if y_labels is None else y_labels[:n]
    reconstructions = model.reconstruct(eval_x[:n].to(model.device), yb).cpu()
    if tabular:
        files["reconstructions"] = plot_reconstruction_scatter(eval_x[:n], reconstructions, out / "reconstructions.png")
    else:
        files["reconstructions"] = save_reconstructions(eval_x[:n], reconstructions, out / "reconstructions.png", n=n)
    if history:
        files["curves"] = plot_training_curves(history, out / "curves.png")
    from vaekit.eval.likelihood import has_likelihood

    samples_k = settings["nll_samples"] if has_likelihood(model) else 0  # no log p(x) without a prior, nor for WAEs
    nll_limit = None
    if samples_k > 0:
        train_seconds = sum((n_train or 0) / r["samples_per_s"] for r in history if r.get("samples_per_s"))
        nll_limit = _nll_examples(model, eval_x, y_labels, samples_k, train_seconds, settings)
        _say(settings, f"log p(x): K={samples_k} importance samples on {nll_limit} of {eval_x.shape[0]} {split_name} examples "
                       f"(about {EVAL_SHARE:.0%} of the training time; `vaekit eval {out}` scores them all)")
    metrics = evaluate(model, eval_x, y_labels, nll_samples=samples_k, progress=not settings["quiet"], nll_limit=nll_limit)
    if metrics.get("kl_per_dimension"):
        files["kl_per_dimension"] = plot_kl_per_dimension(metrics["kl_per_dimension"], out / "kl_per_dimension.png",
                                                          activity=metrics["unit_activity"])
    metrics = {"split": split_name, **metrics}
    if history:
        metrics["epochs_trained"] = history[-1]["epoch"]
        metrics["train_samples_per_s"] = sum(r["samples_per_s"] for r in history) / len(history)
        metrics["train_seconds"] = history[-1].get("elapsed_s")
    if fit_settings:
        metrics["fit_settings"] = fit_settings  # what fit ran with: the --fast recipe's settings when --fast
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
    print("\nshared options: --latent-dim, --arch auto|mlp|conv|gated_mlp, --hidden-dims, --channels, --likelihood auto|bernoulli|gaussian|logistic, "
          "--likelihood-scale, --conditional (labels one-hot, --num-classes from the data), --condition-dim (vector labels), "
          "--logvar-clamp MIN,MAX (range of a Gaussian posterior's log σ²; default -30,20), "
          "--prior standard|vamp (VampPrior on the variational presets), --pseudo-inputs K (default 500)")
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
    """Resolve defaults < the data set's defaults < --config YAML < flags; return (model name, settings, preset options).

    Every setting is checked here, before anything is read or written.
    """
    from vaekit.errors import ConfigError
    from vaekit.models import get_preset
    from vaekit.train.averaging import check_ema

    explicit: dict[str, Any] = {}
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
                explicit[key] = _setting_from_yaml(key, value, train_flags[key], args.config)
            else:
                options[key] = value
    explicit.update({k: v for k, v in vars(args).items() if k in TRAIN_DEFAULTS and v is not None})
    options.update(_extra_options(extras, list(TRAIN_DEFAULTS) + ["out", "config", "resume", "fresh"]))
    if not name:
        raise ConfigError("no model given: `vaekit train MODEL ...` (see `vaekit models`) or `model:` in the --config file")
    get_preset(name)  # an unknown model is the first thing to say
    data = explicit.get("data", TRAIN_DEFAULTS["data"])
    settings = {**TRAIN_DEFAULTS, **data_defaults(data), **explicit}
    if settings["binarize"] not in ("none", "dynamic", "static"):
        raise ConfigError(f"--binarize takes none, dynamic or static, got {settings['binarize']!r}")
    if not 0 <= settings["val_fraction"] < 1:
        raise ConfigError(f"--val-fraction must lie in [0, 1) (0: no validation split), got {settings['val_fraction']}")
    if settings["grad_clip"] is not None and not (0 < settings["grad_clip"] < float("inf")):
        raise ConfigError(f"--grad-clip must be a positive number (the largest gradient norm allowed; leave it out for no clipping), "
                          f"got {settings['grad_clip']}")
    if settings["patience"] is not None and settings["val_fraction"] == 0:
        raise ConfigError("--patience stops on the validation loss, and --val-fraction 0 leaves no validation split; drop one of them")
    if not settings["lr"] > 0:
        raise ConfigError(f"--lr must be a positive number, got {settings['lr']}")
    check_ema(settings["ema"], "--ema")
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


STREAMED_REPORT_EXAMPLES = 10000
"""Examples of a file-backed evaluation split read into memory for the report after training."""


def _load_training_data(settings: dict[str, Any], split: str = "train") -> Dataset | FileDataset:
    """The data to train on: in memory, or read from its file (:class:`FileDataset`) with ``--stream`` and,
    automatically, when it would take more than half the free memory as float32."""
    from vaekit.data import estimated_memory_bytes, open_file_dataset

    source = settings["data"]
    if not _streamed(source, settings["stream"]):
        return _load_data(settings, split)
    data = open_file_dataset(source, split=split, image_size=_image_size(settings))
    if split == "train":
        why = "--stream" if settings["stream"] else "it would not fit in memory"
        _say(settings, f"streaming {source} from disk ({len(data)} examples, {estimated_memory_bytes(source) / 2**30:.1f} GiB as "
                       f"float32; {why})")
    return data


def _likelihood_for(low: float, high: float) -> str:
    """The default observation model for data in [low, high]: Bernoulli in [0, 1] (images), Gaussian otherwise (tables)."""
    return "bernoulli" if 0.0 <= low and high <= 1.0 else "gaussian"


def cmd_train(args: argparse.Namespace, extras: Sequence[str]) -> int:
    import torch

    import vaekit
    from vaekit._io import atomic_write_text
    from vaekit.data import Dataset, FileDataset, check_data, train_val_split
    from vaekit.train.trainer import data_range
    from vaekit.errors import ConfigError
    from vaekit.train.checkpoint import CHECKPOINT_FILE
    from vaekit.train.distributed import is_main_process

    if args.resume and args.fresh:
        raise ConfigError("--resume continues the run in --out and --fresh starts it over; give one of them")
    name, settings, options = train_settings(args, extras)
    main = is_main_process()  # under torchrun rank 0 alone writes, evaluates and prints
    if not main:
        settings["quiet"] = True
    out = check_out_dir(args.out or f"runs/{name}")
    callbacks = _tracking_callbacks(settings, out) if main else []  # a missing package is said before anything is written
    state_file = out / STATE_FILE
    train_full = _load_training_data(settings)
    streamed = isinstance(train_full, FileDataset)
    if settings["exclude_classes"]:
        train_full = _without_classes(train_full, settings["exclude_classes"], settings["data"])
        _say(settings, f"training without classes {settings['exclude_classes']} ({len(train_full)} examples left)")
    if name == "conditional_vae" or options.get("num_classes") or options.get("condition_dim"):
        settings["conditional"] = True  # these train on (x, y): the labels of the data
    if settings["conditional"] and train_full.y is None:
        raise ConfigError(f"--conditional needs labels, and {settings['data']} has none (give --label-column for CSV files)")
    if settings["val_fraction"] > 0:
        train_set, val_set = train_val_split(train_full, settings["val_fraction"], seed=settings["seed"])
    else:
        train_set, val_set = train_full, None  # no early stopping: the last epoch is the model
    has_test = _has_test_split(settings["data"])
    test_set = _load_training_data(settings, "test") if has_test else (val_set if val_set is not None else train_set)
    split_name = "test" if has_test else ("val" if val_set is not None else "train")
    chosen = settings["likelihood"] == "auto"
    if chosen:
        low, high = data_range(train_full)  # one pass over a file-backed set
        settings["likelihood"] = _likelihood_for(low, high)
    spec = {k: settings[k] for k in SPEC_KEYS}
    if settings["conditional"] and not options.get("num_classes") and not options.get("condition_dim"):
        spec["num_classes"] = int(train_full.y.max()) + 1
    torch.manual_seed(settings["seed"])  # --seed fixes the initial weights too
    model = vaekit.create(name, input_shape=train_full.input_shape, **spec, **options)
    if not streamed:  # a file-backed set is checked by fit, in one chunked pass
        check_data(train_full.x, input_shape=model.input_shape, likelihood=model.config["likelihood"], name=str(settings["data"]))
    if not args.fresh:
        _check_resume(out, model, settings)
    if settings["init_from"] and (args.fresh or not (out / CHECKPOINT_FILE).exists()):  # a resume continues its own weights
        _init_weights(model, settings["init_from"])
    settings.update({k: model.config[k] for k in SPEC_KEYS})  # what the preset built (linear_ae fixes some)
    if chosen:
        _say(settings, f"likelihood: {model.config['likelihood']} (data in [{low:g}, {high:g}]; choose another with --likelihood)")
    # every argument is checked: from here on files are written
    resolved = {"model": name, **settings, "options": model.config["options"], "out": str(out)}
    created = not out.exists()
    previous_state = state_file.read_bytes() if state_file.exists() else None
    previous_checkpoint = _file_version(out / CHECKPOINT_FILE)
    out.mkdir(parents=True, exist_ok=True)
    if main:
        atomic_write_text(state_file, yaml.safe_dump(resolved, sort_keys=False))
    sizes = f"{len(train_set)} train / {len(val_set) if val_set is not None else 'no'} val"
    _say(settings, f"training {name} on {settings['data']} ({sizes}, input {train_full.input_shape}) -> {out}")

    def labelled(d: Dataset | FileDataset | None):
        if d is None or isinstance(d, FileDataset):  # fit reads a file's labels itself when the model is conditional
            return d
        return (d.x, d.y) if settings["conditional"] else d.x

    try:
        result = vaekit.fit(
            model, labelled(train_set), labelled(val_set), epochs=settings["epochs"], batch_size=settings["batch_size"],
            lr=settings["lr"], out_dir=out, quiet=settings["quiet"], seed=settings["seed"], device=settings["device"],
            grad_clip=settings["grad_clip"], patience=settings["patience"],
            warmup_epochs=settings["warmup_epochs"], grad_norm=settings["grad_norm"],
            precision=settings["precision"], compile=settings["compile"], schedule=settings["schedule"],
            lr_warmup_epochs=settings["lr_warmup_epochs"], lr_patience=settings["lr_patience"], fast=settings["fast"],
            ema=settings["ema"],
            binarize_data=None if settings["binarize"] == "none" else settings["binarize"], resume=not args.fresh,
            callbacks=callbacks,
        )
    except BaseException:
        if _file_version(out / CHECKPOINT_FILE) == previous_checkpoint:  # nothing trained: leave the folder as it was
            if main:
                _restore(state_file, previous_state, out if created else None)
        raise
    if not main:  # fit's collective steps are done; the report is rank 0's
        return 0
    if settings["fast"]:
        used = result.settings
        _say(settings, f"--fast trained {used['epochs']} epochs at batch {used['batch_size']}, lr {used['lr']:g} ({used['schedule']}, "
                       f"{used['lr_warmup_epochs']:g}-epoch warm-up), KL warm-up {used['warmup_epochs'] or 0} epochs, "
                       f"{used['precision']}{', compiled' if used['compile'] else ''}")
    if isinstance(test_set, FileDataset):  # the report's evaluation reads a bounded part of a file-backed set
        if len(test_set) > STREAMED_REPORT_EXAMPLES:
            _say(settings, f"evaluating on the first {STREAMED_REPORT_EXAMPLES} of the {len(test_set)} {split_name} examples")
        test_set = test_set[:STREAMED_REPORT_EXAMPLES].load()
    eval_x = _binarized(test_set.x, settings, seed=0)
    report = _write_report(model, result.history, eval_x, test_set.y, out, settings, split_name, n_train=len(train_set),
                           fit_settings=result.settings)
    m = report["metrics"]
    summary = f"done: {out}  (best epoch {result.best_epoch}, {m['split']} "
    summary += f"ELBO {m['elbo']:.2f} nats" if "elbo" in m else f"reconstruction squared error {m['mse']:.4g}"
    if "log_likelihood" in m:
        summary += (f", log p(x) ≈ {m['log_likelihood']:.2f} nats (K={m['log_likelihood_samples']}, "
                    f"{m['log_likelihood_examples']} of {m['num_examples']} examples)")
    print(summary + ")")
    for kind, path in report["files"].items():
        print(f"  {kind:<16} {path}")
    _finish_tracking(callbacks, out, m, settings)
    collapse = _collapse_warning(m)
    if collapse:
        _warn(collapse)
    return 0


def _tracking_callbacks(settings: dict[str, Any], out: Path) -> list[Any]:
    """The callbacks of ``--tensorboard [DIR]`` (default OUT/tensorboard) and ``--mlflow [URI]`` (default ./mlruns)."""
    from vaekit.train.callbacks import MLflowCallback, TensorBoardCallback

    callbacks: list[Any] = []
    if settings["tensorboard"] is not None:
        callbacks.append(TensorBoardCallback(settings["tensorboard"] or out / "tensorboard"))
    if settings["mlflow"] is not None:
        callbacks.append(MLflowCallback(settings["mlflow"] or None, run_name=out.name))
    return callbacks


def _finish_tracking(callbacks: list[Any], out: Path, metrics: dict[str, Any], settings: dict[str, Any]) -> None:
    """After the report: its PNGs and final metrics go to the MLflow run; say where to look."""
    from vaekit.train.callbacks import MLflowCallback, TensorBoardCallback

    for callback in callbacks:
        if isinstance(callback, MLflowCallback):
            callback.log_report(out, metrics, prefix=f"{metrics['split']}/")
            _say(settings, f"mlflow: run {callback.run_id} in {callback.tracking_uri} (mlflow ui --backend-store-uri {callback.tracking_uri})")
        elif isinstance(callback, TensorBoardCallback):
            _say(settings, f"tensorboard: tensorboard --logdir {callback.log_dir}")


def _init_weights(model: Any, source: str) -> None:
    """``--init-from``: start from the weights a run (or ``model.save``) left in ``source``; the model and its
    shapes must be the same (its options may differ: an ``hvae`` trained on the ELBO continues on the IWAE bound)."""
    from vaekit.errors import CheckpointError, ConfigError
    from vaekit.models.persistence import WEIGHTS_FILE, first_mismatch
    from vaekit._io import read_checked_tensors

    path = Path(source) / WEIGHTS_FILE
    if not path.is_file():
        raise ConfigError(f"--init-from {source}: there is no {WEIGHTS_FILE} there; give a run folder of `vaekit train` or a folder "
                          "written by model.save")
    try:
        weights = read_checked_tensors(path, "retrain or restore it")
    except CheckpointError as e:
        raise ConfigError(f"--init-from: {e}") from None
    mismatch = first_mismatch(model.state_dict(), weights)
    if mismatch:
        raise ConfigError(f"--init-from {source}: its weights do not fit this {model.config['model']} ({mismatch}); train the same "
                          "model with the same --latent-dim, --hidden-dims, --arch and shape options")
    model.load_state_dict(weights)


def _check_resume(out: Path, model: Any, settings: dict[str, Any]) -> None:
    """Refuse, before anything is written, a resume that cannot go as asked: another model or
    other options in ``out``, or fewer ``--epochs`` than the run already has."""
    from vaekit.errors import CheckpointError, ConfigError
    from vaekit.train.checkpoint import CHECKPOINT_FILE, check_resumable

    checkpoint = out / CHECKPOINT_FILE
    if not checkpoint.exists():
        return
    try:
        state = check_resumable(checkpoint, model, fix="use --fresh to start over there, or another --out")
    except CheckpointError as e:
        raise ConfigError(str(e)) from None
    done, epochs = int(state["epoch"]), int(settings["epochs"])
    if epochs < done:
        raise ConfigError(f"--epochs {epochs}: {out} has already trained {done} epochs; give --epochs above {done} to continue it, "
                          "or --fresh to start over")
    if state.get("stopped_early"):
        _say(settings, f"{out} stopped early at epoch {done} (no improvement for --patience epochs): nothing to train; "
                       "writing its report again (--fresh starts over)")
    elif epochs == done:
        _say(settings, f"{out} has already trained {done} of {epochs} epochs: nothing to train; writing its report again "
                       f"(give --epochs above {done} to continue)")


def _file_version(path: Path) -> tuple[int, int, int] | None:
    """(inode, size, mtime) of ``path``, None when it does not exist: a checkpoint saved since (atomically, a new file) differs."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _restore(state_file: Path, previous: bytes | None, created_dir: Path | None) -> None:
    """Undo what ``train`` wrote before a failure that trained nothing."""
    import shutil

    from vaekit._io import atomic_write_bytes

    if previous is not None:
        atomic_write_bytes(state_file, previous)
    elif state_file.exists():
        state_file.unlink()
    if created_dir is not None and created_dir.is_dir() and not any(p for p in created_dir.rglob("*") if p.is_file()):
        shutil.rmtree(created_dir, ignore_errors=True)


def _warn(message: str) -> None:
    import sys

    print(f"vaekit train: warning: {message}", file=sys.stderr, flush=True)


def _collapse_warning(metrics: dict[str, Any]) -> str | None:
    """One line when a variational model's posterior has collapsed to its prior (survey §2.10), else None."""
    if "kl" not in metrics or metrics.get("num_examples", 2) < 2:  # one example: no activity to measure
        return None
    kl, active = float(metrics["kl"]), int(metrics.get("active_units", 0))
    if active > 0 and kl >= 1.0:
        return None
    return (f"the posterior has collapsed (KL {kl:.2f} nats, {active} active units): the codes carry almost no information and "
            "samples will look alike; fight it with --warmup-steps N (KL warm-up), --free-bits 0.1, a smaller --batch-size, or more --epochs")


def cmd_demo(args: argparse.Namespace) -> int:
    """A VAE on scikit-learn's 8×8 digits (embedded, no download): about 20 seconds on 2 CPU cores."""
    forwarded = ["vae", "--data", "digits", "--epochs", str(args.epochs), "--arch", "mlp", "--latent-dim", "8", "--hidden-dims", "256,128",
                 "--batch-size", "32", "--nll-samples", "200", "--out", args.out]
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
    p.add_argument("--arch", choices=["auto", "mlp", "conv", "gated_mlp"], default=S,
                   help="auto: conv for images, mlp for vectors; gated_mlp: gated dense layers (VampPrior code)")
    p.add_argument("--hidden-dims", type=_int_list, default=S, help="e.g. 512,512")
    p.add_argument("--channels", type=_int_list, default=S, help="e.g. 32,64")
    p.add_argument("--likelihood", choices=["auto", "bernoulli", "gaussian", "logistic"], default=S,
                   help="observation model; auto (default): bernoulli for data in [0, 1], gaussian otherwise")
    p.add_argument("--likelihood-scale", default=S, help='σ of the Gaussian likelihood, or "learned"')
    p.add_argument("--binarize", choices=["none", "dynamic", "static"], default=S, help="Bernoulli-binarise the data (dynamic: every epoch)")
    p.add_argument("--val-fraction", type=float, default=S)
    p.add_argument("--patience", type=_positive_int, default=S, help="early stopping after this many epochs without improvement")
    p.add_argument("--grad-clip", type=float, default=S)
    p.add_argument("--warmup-epochs", type=_count, default=S,
                   help="KL warm-up over this many epochs (0: off); --patience starts counting after it")
    p.add_argument("--grad-norm", choices=["unit"], default=S, help="unit: scale each gradient to norm 1 before Adam (VampPrior code)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default=S,
                   help="bf16: encoder/decoder bodies in bfloat16, densities in fp32 (where the hardware runs bf16 fast)")
    p.add_argument("--compile", action="store_true", default=S, help="torch.compile the model's loss")
    p.add_argument("--schedule", choices=["constant", "cosine", "onecycle", "plateau"], default=S,
                   help="learning-rate schedule over --epochs; plateau: a fifth of the rate after more than --lr-patience epochs without a better validation loss")
    p.add_argument("--lr-patience", type=_int_at_least(0, "an integer ≥ 0"), default=S,
                   help="epochs without a better validation loss that --schedule plateau waits before it lowers the rate (default 10)")
    p.add_argument("--lr-warmup-epochs", type=float, default=S, help="linear learning-rate warm-up (epochs) of --schedule")
    p.add_argument("--ema", type=float, default=S, metavar="DECAY",
                   help="validate, save and return an exponential moving average of the weights, e.g. 0.999 (see README)")
    p.add_argument("--stream", action="store_true", default=S,
                   help="read the training data from its file batch by batch (.npy, uncompressed .npz, image folder); "
                        "automatic when it would not fit in memory")
    p.add_argument("--fast", action="store_true", default=S,
                   help="time-to-quality recipe: the quality of --epochs at --batch-size in about half the time (see README)")
    p.add_argument("--init-from", default=S, metavar="RUN",
                   help="start from the weights of another run (or model.save folder) of the same model and shapes: "
                        "fine-tuning, e.g. an hvae on the IWAE bound (--num-samples) after the ELBO")
    p.add_argument("--seed", type=int, default=S)
    p.add_argument("--device", default=S, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--nll-samples", type=_count, default=S, help="importance samples for the final log p(x) (0: skip)")
    p.add_argument("--exclude-classes", type=_int_list, default=S,
                   help="leave these labels out of training, e.g. 8 (train on normal data; `vaekit anomaly` then treats them as anomalies)")
    p.add_argument("--conditional", action="store_true", default=S, help="condition on the labels (num_classes from the data)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out (the default when it has a checkpoint)")
    p.add_argument("--fresh", action="store_true", help="start over even if --out holds a checkpoint")
    p.add_argument("--quiet", action="store_true", default=S, help="no progress bar")
    p.add_argument("--tensorboard", nargs="?", const="", default=S, metavar="DIR",
                   help="log scalars and images for TensorBoard to DIR (default OUT/tensorboard); needs pip install 'vaekit[tensorboard]'")
    p.add_argument("--mlflow", nargs="?", const="", default=S, metavar="URI",
                   help="log params, metrics and files to MLflow at URI (default ./mlruns); needs pip install 'vaekit[mlflow]'")

    p = sub.add_parser("demo", help="train a VAE on the embedded 8×8 digits and write PNGs + metrics (about 20 s on 2 idle cores)")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--epochs", type=_positive_int, default=50)
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
