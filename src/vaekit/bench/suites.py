"""The suites by name, and :func:`make_plan`: a suite, its budget with the caller's changes, the chosen entries, all checked.

Everything a suite needs is checked here, before the runner writes anything: the suite's
name, the models (``--models``) against the suite's entries, each entry's options against
its preset, the budget's numbers, the data and the classifier folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from vaekit.bench import applications, disentanglement, fashion
from vaekit.bench.runner import Plan
from vaekit.bench.spec import Budget, Suite
from vaekit.errors import ConfigError

__all__ = ["SUITES", "make_plan", "DEFAULT_OUT"]

SUITES: dict[str, Suite] = {s.name: s for s in (fashion.SUITE, disentanglement.SUITE, applications.SUITE)}
"""``fashion-mnist``, ``sprites``, ``apps``."""

DEFAULT_OUT = Path("runs/bench")
"""Suites write under ``runs/bench/<suite>`` unless told otherwise."""


def _check_budget(budget: Budget) -> None:
    for name in ("epochs", "seeds", "batch_size"):
        value = getattr(budget, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    for name in ("train_size", "test_size"):
        value = getattr(budget, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 2):
            raise ConfigError(f"{name} must be an integer ≥ 2 (or None for all images), got {value!r}")
    if isinstance(budget.nll_samples, bool) or not isinstance(budget.nll_samples, int) or budget.nll_samples < 0:
        raise ConfigError(f"nll_samples must be an integer ≥ 0, got {budget.nll_samples!r}")
    if not budget.lr > 0:
        raise ConfigError(f"lr must be > 0, got {budget.lr!r}")


def make_plan(
    suite: str,
    *,
    quick: bool = False,
    models: Sequence[str] | None = None,
    out: str | Path | None = None,
    epochs: int | None = None,
    train_size: int | None = None,
    test_size: int | None = None,
    seeds: int | None = None,
    nll_samples: int | None = None,
    classifier: str | Path | None = None,
    data_dir: str | None = None,
) -> Plan:
    """The suite ``suite`` with its full (or ``quick``) budget, changed where an argument is given, and its entries.

    Arguments:
        suite: ``"fashion-mnist"``, ``"sprites"`` or ``"apps"``.
        quick: the smoke-test budget and model subset (a few minutes on two CPU cores).
        models: entry names to run (default: all entries; with ``quick``, the suite's quick subset).
        out: the output folder (default ``runs/bench/<suite>``).
        epochs, train_size, test_size, seeds, nll_samples: changes to the budget.
        classifier: the feature classifier run folder for sample quality (fashion-mnist).
        data_dir: where the Fashion-MNIST IDX files are.

    Raises a one-line ``ConfigError`` naming the problem and the fix for anything wrong (a
    Fashion-MNIST suite's ``train_size``/``test_size`` above the 60 000/10 000 images the set has, too).
    """
    if suite not in SUITES:
        raise ConfigError(f"unknown suite {suite!r}; choose one of {', '.join(SUITES)}")
    spec = SUITES[suite]
    budget = (spec.quick if quick else spec.budget).replace(epochs=epochs, train_size=train_size, test_size=test_size, seeds=seeds,
                                                           nll_samples=nll_samples)
    _check_budget(budget)
    available = spec.entries(budget)
    by_name = {e.name: e for e in available}
    if models:
        unknown = [m for m in models if m not in by_name]
        if unknown:
            raise ConfigError(f"unknown model {unknown[0]!r} for suite {suite}; choose from: {', '.join(by_name)}")
        chosen = [by_name[m] for m in dict.fromkeys(models)]
    else:
        chosen = [by_name[m] for m in spec.quick_models if m in by_name] if quick else available
    _check_entries(chosen, suite)
    options: dict[str, Any] = {"data_dir": data_dir, "presets": {e.preset for e in chosen}}
    if spec.needs_fashion_mnist:
        from vaekit.data import load_fashion_mnist

        test = load_fashion_mnist("test", data_dir)  # missing or broken files: a one-line DataError naming the folder and the fix
        # more images than the set holds would be cut silently while the table's header claims the number asked for
        for name, split, limit in (("train_size", "training", 60_000), ("test_size", "test", len(test))):
            value = getattr(budget, name)
            if value is not None and value > limit:
                raise ConfigError(f"{name} {value} is more than the {limit} Fashion-MNIST {split} images; give at most {limit}")
    if classifier is not None:
        if suite != "fashion-mnist":
            raise ConfigError(f"--classifier scores samples in the fashion-mnist suite; suite {suite} takes none, drop it")
        folder = Path(classifier)
        if not (folder / "model.safetensors").is_file() or not (folder / "config.json").is_file():
            raise ConfigError(f"--classifier {classifier}: no classifier run folder there (model.safetensors + config.json); "
                              "make one with `vaekit train-classifier --data fashion-mnist --out FOLDER`")
        options["classifier"] = str(folder)
    return Plan(spec, budget, chosen, Path(out) if out is not None else DEFAULT_OUT / suite, quick, options)


def _check_entries(entries: list, suite: str) -> None:
    """Each entry's options must be options of its preset (a typo in a table fails here, not after hours of training)."""
    from vaekit.models.registry import SPEC_OPTIONS, get_preset

    for entry in entries:
        preset = get_preset(entry.preset)
        preset.resolve({k: v for k, v in entry.options.items() if k not in SPEC_OPTIONS})
