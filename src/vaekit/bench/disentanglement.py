"""The ``sprites`` suite: five models × seeds on the procedural sprites, five disentanglement metrics (mean ± sd), traversals.

Every model has the same body and budget: MLP 512-256-10 and back (Bernoulli
likelihood; an MLP as in the β-VAE and β-TC-VAE papers' dSprites experiments, smaller),
Adam 1e-3, batch 64, 40 epochs of a seeded subset of 20 000 32×32 sprites
(``vaekit.data.load_sprites``: 12 500 steps, against 300 000 in Locatello et al.); its
codes are posterior means. Models (presets of ``vaekit.create``):

* ``vae``;
* ``beta_vae`` with β = 4 (Higgins et al. 2017);
* ``beta_vae`` with a KL capacity C rising to 25 nats over the first 80 % of the steps,
  γ = 1000 (Burgess et al. 2018);
* ``beta_tc_vae`` with β = 6 (Chen et al. 2018);
* ``dip_vae``, type I, λ_od = 10, λ_d = 100 (Kumar et al. 2018).

Metrics (``vaekit.eval.disentanglement_scores``): MIG, SAP and DCI (Lasso) on 10 000 random
images (+ 5 000 to score SAP/DCI), β-VAE and FactorVAE scores on 2 000 training and 1 000
evaluation points (disentanglement_lib uses 10 000 and 5 000; fewer here to fit the
budget: 0.6 M rendered images per model instead of 2.9 M). Active units and the traversal
(one row per latent dimension, most active first, the code of one test image with that
dimension swept over [−2.5, 2.5]) use 1 000 test sprites.

``benchmarks/disentanglement_sprites.py`` (two models at a time in two processes) and
``vaekit bench --suite sprites`` (one after the other, resumable) both run
:func:`train_and_score`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

import vaekit
from vaekit.bench.spec import Budget, Context, Entry, Suite
from vaekit.data import Sprites, load_sprites
from vaekit.eval import active_units, disentanglement_scores
from vaekit.viz import save_image_rows, traversal_rows, traversal_values

__all__ = ["SUITE", "configurations", "train_and_score", "traversal", "summary_table", "sprites_data", "METRICS", "HEADERS",
           "METRIC_SIZES", "QUICK_METRIC_SIZES"]

METRICS = ("mig", "factorvae_score", "betavae_score", "sap", "dci_disentanglement", "dci_completeness", "dci_informativeness")
HEADERS = ("MIG", "FactorVAE", "β-VAE", "SAP", "DCI D", "DCI C", "DCI I")
METRIC_SIZES = {"num_codes": 10_000, "num_test_codes": 5_000, "num_train": 2_000, "num_eval": 1_000, "num_variance_estimate": 10_000}
"""The metrics' sample sizes of the recorded runs (see the module docstring)."""
QUICK_METRIC_SIZES = {"num_codes": 1_000, "num_test_codes": 500, "num_train": 100, "num_eval": 100, "num_variance_estimate": 1_000}
"""Sample sizes of a smoke run: seconds per model, noisy scores."""
TEST_SIZE = 1_000
"""Test sprites for active units and the traversal."""


def configurations(total_steps: int) -> dict[str, tuple[str, dict[str, Any]]]:
    """The five models: name -> (preset, options). The capacity schedule depends on the step budget."""
    return {
        "vae": ("vae", {}),
        "beta_vae_b4": ("beta_vae", {"beta": 4.0}),
        "beta_vae_capacity": ("beta_vae", {"capacity": 25.0, "gamma": 1000.0, "capacity_steps": max(1, int(0.8 * total_steps))}),
        "beta_tc_vae": ("beta_tc_vae", {"beta": 6.0}),
        "dip_vae": ("dip_vae", {"dip_type": "i", "weight": 10.0}),
    }


def traversal(model: vaekit.LatentVariableModel, image: torch.Tensor, activity: torch.Tensor, path: Path) -> Path:
    """One row per latent dimension (most active first): the image's code with that dimension swept over [−2.5, 2.5]."""
    order = torch.argsort(activity, descending=True).tolist()
    rows = traversal_rows(model, model.transform(image[None])[0], order, traversal_values(2.5, 9))
    return save_image_rows(rows, path, labels=[f"z{d} (var {float(activity[d]):.2f})" for d in order])


def summary_table(runs: list[dict[str, Any]], names: Sequence[str]) -> str:
    """Markdown: one row per model, each metric as mean ± sd over its seeds (the value alone for one seed), active units as a mean."""
    lines = ["| model | " + " | ".join(HEADERS) + " | active units |", "|---|" + "---|" * (len(HEADERS) + 1)]
    for name in names:
        rows = [r for r in runs if r["model"] == name]
        cells = []
        for key in (*METRICS, "active_units"):
            values = np.array([r[key] for r in rows], dtype=float)
            if key == "active_units":
                cells.append(f"{values.mean():.1f}")
            else:
                cells.append(f"{values.mean():.2f} ± {values.std(ddof=1):.2f}" if len(values) > 1 else f"{values.mean():.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


_DATA: dict[tuple, Any] = {}


def sprites_data(size: int, train_size: int, test_size: int = TEST_SIZE) -> tuple[Any, Any]:
    """The training sprites and ``test_size`` test sprites (for traversals and active units), rendered once per process."""
    key = (size, train_size, test_size)
    if key not in _DATA:
        _DATA[key] = (load_sprites("train", size=size, subset=train_size, test_size=test_size, seed=0),
                      load_sprites("test", size=size, subset=train_size, test_size=test_size, seed=0))
    return _DATA[key]


def train_and_score(
    name: str,
    preset: str,
    options: Mapping[str, Any],
    seed: int,
    *,
    size: int = 32,
    train_size: int = 20_000,
    test_size: int = TEST_SIZE,
    epochs: int = 40,
    batch_size: int = 64,
    lr: float = 1e-3,
    latent_dim: int = 10,
    hidden_dims: Sequence[int] = (512, 256),
    metric_sizes: Mapping[str, int] = METRIC_SIZES,
    picture: Path | None = None,
    out_dir: Path | None = None,
    quiet: bool = True,
) -> dict[str, Any]:
    """Train one model on the sprites and compute its metrics (and, for ``picture``, its traversal PNG).

    Arguments:
        name, preset, options: the row's name and the model (``vaekit.create(preset, **options)``).
        seed: seeds the initial weights, the training and the metrics' samples.
        size, train_size, test_size: sprites of size × size pixels; training and test images.
        epochs, batch_size, lr: the budget (Adam).
        latent_dim, hidden_dims: the MLP body.
        metric_sizes: keyword arguments of :func:`vaekit.eval.disentanglement_scores`.
        picture: where to write the traversal PNG (None: none).
        out_dir: the run folder (``vaekit.fit`` resumes from its checkpoint); None: none.
        quiet: no progress bar.
    """
    train, test = sprites_data(size, train_size, test_size)
    sprites = Sprites(size)
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    model = vaekit.create(preset, input_shape=sprites.input_shape, latent_dim=latent_dim, arch="mlp",
                          hidden_dims=tuple(hidden_dims), likelihood="bernoulli", **options)
    result = vaekit.fit(model, train.x, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, quiet=quiet, out_dir=out_dir)
    model.eval()
    train_seconds = time.perf_counter() - t0
    scores = disentanglement_scores(model, sprites, **metric_sizes, seed=seed)
    count, activity = active_units(model.transform(test.x))
    last = result.history[-1]
    run = {"model": name, "preset": preset, "options": dict(options), "seed": seed, **scores, "active_units": count,
           "train_kl": last.get("train/kl"), "train_reconstruction": last.get("train/reconstruction"),
           "train_seconds": round(train_seconds, 1), "metric_seconds": round(time.perf_counter() - t0 - train_seconds, 1)}
    if picture is not None:
        run["traversal"] = str(traversal(model, test.x[0], activity, picture))
    return run


# -- the suite --------------------------------------------------------------------------------
BODY: dict[str, Any] = {"arch": "mlp", "hidden_dims": (512, 256), "latent_dim": 10, "likelihood": "bernoulli", "size": 32}
FULL = Budget(epochs=40, train_size=20_000, test_size=TEST_SIZE, seeds=3, batch_size=64, extra={"metric_sizes": METRIC_SIZES})
QUICK = Budget(epochs=2, train_size=2_000, test_size=500, seeds=1, batch_size=64, extra={"metric_sizes": QUICK_METRIC_SIZES})


def entries(budget: Budget) -> list[Entry]:
    """The five models; the capacity schedule spans 80 % of this budget's steps."""
    steps = budget.epochs * math.ceil(int(budget.train_size or FULL.train_size) / budget.batch_size)
    return [Entry(name, preset, options) for name, (preset, options) in configurations(steps).items()]


def prepare(context: Context) -> None:
    b = context.budget
    context.say(f"rendering {b.train_size} training and {b.test_size} test sprites ({BODY['size']}×{BODY['size']})")
    sprites_data(BODY["size"], int(b.train_size or FULL.train_size), int(b.test_size or TEST_SIZE))
    context.provenance["Metric sample sizes"] = ", ".join(f"{k} {v}" for k, v in b.extra["metric_sizes"].items())


def run(entry: Entry, seed: int, context: Context, folder: Path) -> dict[str, Any]:
    b = context.budget
    return train_and_score(
        entry.name, entry.preset, entry.options, seed, size=BODY["size"], train_size=int(b.train_size or FULL.train_size),
        test_size=int(b.test_size or TEST_SIZE), epochs=b.epochs, batch_size=b.batch_size, lr=b.lr, latent_dim=BODY["latent_dim"],
        hidden_dims=BODY["hidden_dims"], metric_sizes=b.extra["metric_sizes"], picture=folder / "traversal.png" if seed == 0 else None,
        out_dir=folder, quiet=context.quiet)


def table(rows: list[tuple[Entry, list[dict[str, Any]]]], context: Context) -> str:
    done = [(entry, runs) for entry, runs in rows if runs]
    text = summary_table([r for _, runs in done for r in runs], [entry.name for entry, _ in done])
    lines = text.splitlines()
    lines[0] += " wall time (s) | traversal (seed 0) |"
    lines[1] = lines[1] + "---|---|"
    for i, (entry, runs) in enumerate(done):
        picture = next((r.get("traversal") for r in runs if r.get("traversal")), None)
        link = f"[png]({_relative(picture, context.out)})" if picture else "—"
        lines[2 + i] += f" {np.mean([r['seconds'] for r in runs]):.0f} | {link} |"
    failed = context.items.get("failed", {})
    for entry, runs in rows:
        if not runs:
            lines.append(f"| {entry.name} | failed: {failed.get(entry.name, 'not run')} |" + " |" * (len(HEADERS) + 2))
    options = "\n".join(f"* {entry.name}: {entry.describe()}" for entry, _ in rows)
    spread = f"mean ± sd over {context.budget.seeds} seeds" if context.budget.seeds > 1 else "one seed"
    return "\n".join(lines) + f"\n\nMetrics: {spread}; codes are posterior means. Models:\n\n{options}\n"


def _relative(path: str, out: Path) -> str:
    try:
        return str(Path(path).relative_to(out))
    except ValueError:
        return path


SUITE = Suite(
    name="sprites",
    title="Disentanglement on the procedural sprites: five metrics, mean ± sd over seeds",
    body=BODY,
    budget=FULL,
    quick=QUICK,
    quick_models=tuple(configurations(1)),
    entries=entries,
    prepare=prepare,
    run=run,
    table=table,
    training_keys=("epochs", "train_size", "batch_size", "lr"),
    needs_fashion_mnist=False,
)
