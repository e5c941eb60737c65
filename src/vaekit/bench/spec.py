"""What a benchmark suite is: its models (:class:`Entry`), its budget (:class:`Budget`) and its steps (:class:`Suite`).

A suite trains every entry with the same body and budget (an entry may override the body
only where its preset cannot take the suite's, e.g. ``vq_vae`` needs a convolutional
grid), measures each trained model, and turns the per-model results into one Markdown
table. The runner (:mod:`vaekit.bench.runner`) owns the run folders, resuming and
progress; a suite only knows how to train and measure one model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

__all__ = ["Entry", "Budget", "Suite", "Context", "json_values"]


@dataclass(frozen=True)
class Entry:
    """One row of a suite: a name, the preset it trains, the preset's options.

    Arguments:
        name: the row's name, unique in its suite (``--models`` takes these).
        preset: a name of ``vaekit.available_models()``.
        options: the preset's options (its ``Options:`` block), as ``vaekit.create`` takes them.
        body: overrides of the suite's body (``arch``, ``channels``, ``latent_dim``, ...) for a
            preset that cannot use it; empty for almost every entry.
        note: why the entry differs from the suite's body or defaults, shown under the table.
    """

    name: str
    preset: str
    options: Mapping[str, Any] = field(default_factory=dict)
    body: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""

    def describe(self) -> str:
        """``preset opt=value, ...`` as the tables show it."""
        options = ", ".join(f"{k}={v}" for k, v in self.options.items())
        body = ", ".join(f"{k}={v}" for k, v in self.body.items())
        return f"`{self.preset}`" + (f" {options}" if options else "") + (f" ({body})" if body else "")

    def record(self) -> dict[str, Any]:
        """The entry as JSON values."""
        return {"name": self.name, "preset": self.preset, "options": json_values(dict(self.options)), "body": json_values(dict(self.body)),
                "note": self.note}


@dataclass(frozen=True)
class Budget:
    """The training and measuring budget shared by every entry of a suite.

    Arguments:
        epochs, batch_size, lr: the optimisation budget (Adam) of every model.
        train_size: training images (the first ones of the set; None: all of them).
        test_size: test images measured on (None: all of them).
        seeds: models per entry, seeds 0 .. seeds − 1 (mean ± sd over them).
        nll_samples: K, importance samples per test image for log p(x) (suites that report it).
        extra: the suite's own settings (classifier epochs, metric sample sizes, held-out classes, ...).
    """

    epochs: int
    train_size: int | None
    test_size: int | None
    seeds: int = 1
    nll_samples: int = 0
    batch_size: int = 128
    lr: float = 1e-3
    extra: Mapping[str, Any] = field(default_factory=dict)

    def replace(self, **changes: Any) -> "Budget":
        """A copy with ``changes`` (None values are ignored: the flag was not given)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def record(self) -> dict[str, Any]:
        return json_values(dataclasses.asdict(self))


@dataclass
class Context:
    """What a suite prepares once and every model of the run shares: data, a feature classifier, ..."""

    budget: Budget
    body: Mapping[str, Any]
    out: Path
    quiet: bool
    say: Callable[[str], None]
    items: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)  # what the table header names (classifier SHA-256, data)


@dataclass(frozen=True)
class Suite:
    """A benchmark suite.

    Arguments:
        name: ``--suite`` value.
        title: one line for the table header.
        body: the model body every entry shares (``vaekit.create`` keywords).
        budget, quick: the full budget and the ``--quick`` one.
        quick_models: the entries ``--quick`` runs when ``--models`` is not given.
        entries: the suite's entries for a budget (options may depend on the number of steps).
        prepare: ``prepare(context)`` loads data and shared resources into ``context.items``;
            it may train shared resources (a feature classifier) into ``context.out``.
        run: ``run(entry, seed, context, folder) -> results``: train one model in ``folder``
            (resuming from its checkpoint) and measure it; results are JSON values.
        table: ``table(rows, context) -> Markdown`` from the rows ``(entry, [results per seed])``.
        training_keys: the budget fields that decide a trained model (a run folder trained with
            other values is refused); the rest only change the measurements.
        needs_fashion_mnist: the suite reads Fashion-MNIST (checked before anything is written).
    """

    name: str
    title: str
    body: Mapping[str, Any]
    budget: Budget
    quick: Budget
    quick_models: Sequence[str]
    entries: Callable[[Budget], list[Entry]]
    prepare: Callable[[Context], None]
    run: Callable[[Entry, int, Context, Path], dict[str, Any]]
    table: Callable[[list[tuple[Entry, list[dict[str, Any]]]], Context], str]
    training_keys: Sequence[str] = ("epochs", "train_size", "batch_size", "lr")
    needs_fashion_mnist: bool = True


def json_values(value: Any) -> Any:
    """``value`` with tuples as lists and paths as strings (what ``json.dumps`` can write and compare)."""
    if isinstance(value, Mapping):
        return {str(k): json_values(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_values(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
