"""The ``apps`` suite: what codes are good for on Fashion-MNIST (survey §1.5), per model, against PCA and raw pixels.

The protocols of the application benchmarks (``benchmarks/latent_classification.py``,
``compression_pca.py``, ``anomaly_fashion_mnist.py``), which call the functions here too:

* every model is an MLP 784-512-256-16 and back with a Bernoulli decoder on grey levels in
  [0, 1] (binary cross-entropy for the autoencoders), trained with ``vaekit.fit`` on the first
  ``train_size`` training images (no validation set), Adam 1e-3, batch 128 (:func:`train_model`);
* **classification**: k-NN (k = 5) on the codes of the same training images with their labels,
  scored on the test images; baselines k-NN on the raw pixels and on PCA codes of the same size
  (``vaekit.apps.compare_latent_classification``);
* **compression**: test MSE per pixel of the reconstructions from float and from 8-bit codes,
  against PCA with as many components (``vaekit.apps.compare_with_pca``; :func:`compression_row`);
* **anomaly detection**: one class c held out as the anomaly: a model trained on the first
  ``train_size`` training images of the nine other classes, threshold at the 95 % quantile of
  their scores, AUROC on the test set with class c as the anomalies; scores: the reconstruction
  error, and −ELBO for models with a likelihood bound (:func:`anomaly_holdout`). The table
  reports the mean AUROC over the held-out classes (all ten in the full budget).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

import vaekit
from vaekit.apps import AnomalyDetector, compare_latent_classification, compare_with_pca
from vaekit.bench.spec import Budget, Context, Entry, Suite
from vaekit.data import Dataset, load_fashion_mnist
from vaekit.eval.likelihood import has_likelihood

__all__ = ["SUITE", "ENTRIES", "BODY", "train_model", "compression_row", "anomaly_score_kinds", "anomaly_holdout", "CLASSES"]

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

BODY: dict[str, Any] = {"arch": "mlp", "hidden_dims": (512, 256), "latent_dim": 16, "likelihood": "bernoulli"}
"""The application benchmarks' body: MLP 512-256, D = 16, Bernoulli decoder on grey levels."""

ENTRIES: list[Entry] = [Entry(name, name) for name in ("ae", "sparse_ae", "denoising_ae", "contractive_ae", "vae")]
"""The models of the application benchmarks (issue 3)."""

FULL = Budget(epochs=30, train_size=None, test_size=None, seeds=1, extra={"k": 5, "bits": 8, "anomaly_classes": list(range(10))})
QUICK = Budget(epochs=2, train_size=2000, test_size=500, seeds=1, extra={"k": 5, "bits": 8, "anomaly_classes": [8]})


def train_model(
    name: str,
    x: torch.Tensor,
    *,
    epochs: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    latent_dim: int = BODY["latent_dim"],
    hidden_dims: Sequence[int] = BODY["hidden_dims"],
    likelihood: str = "bernoulli",
    out_dir: str | Path | None = None,
    quiet: bool = True,
    **options: Any,
) -> vaekit.LatentVariableModel:
    """``name`` (a preset, with ``options``) as an MLP, trained on all of ``x`` with the benchmarks' budget; in eval mode.

    ``out_dir`` makes the training resumable (``vaekit.fit``'s run folder).
    """
    torch.manual_seed(seed)
    model = vaekit.create(name, input_shape=tuple(x.shape[1:]), latent_dim=latent_dim, arch="mlp", hidden_dims=tuple(hidden_dims),
                          likelihood=likelihood, **options)
    vaekit.fit(model, x, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, quiet=quiet, out_dir=out_dir)
    return model.eval()


def compression_row(model: Any, x_train: torch.Tensor, x_test: torch.Tensor, bits: int = 8) -> dict[str, Any]:
    """Test MSE per pixel of the model's reconstructions (float and ``bits``-bit codes) against PCA at the same D."""
    report = compare_with_pca(model, x_train, x_test, bits=bits, dims=[model.latent_dim])
    return {"d": report["latent_dim"], "model_mse": report["model_mse_float"], "model_mse_quantized": report["model_mse"],
            "pca_mse": report["pca_mse"], "pca_mse_quantized": report["pca_mse_quantized"], "bits_per_code": report["bits_per_code"]}


def anomaly_score_kinds(model: Any) -> list[str]:
    """The anomaly scores a model has: the reconstruction error, and −ELBO when it has a likelihood bound."""
    return ["reconstruction", "elbo"] if has_likelihood(model) else ["reconstruction"]


def anomaly_holdout(model: Any, normal_x: torch.Tensor, test: Dataset, held_out: int, scores: Sequence[str], seed: int = 0) -> list[dict[str, Any]]:
    """AUROC and average precision of each score, with the test images of class ``held_out`` as the anomalies.

    ``model`` was trained on ``normal_x`` (images of the other classes); each detector's
    threshold is the 95 % quantile of the scores of ``normal_x``.
    """
    is_anomaly = (test.y == held_out).long()
    rows = []
    for score in scores:
        detector = AnomalyDetector(model, score=score, seed=seed).fit(normal_x)
        report = detector.evaluate(test.x, is_anomaly)
        rows.append({"class": held_out, "score": score, "auroc": report["auroc"], "average_precision": report["average_precision"]})
    return rows


# -- the suite --------------------------------------------------------------------------------
def entries(budget: Budget) -> list[Entry]:
    available = vaekit.available_models()
    return [e for e in ENTRIES if e.preset in available]


def prepare(context: Context) -> None:
    b = context.budget
    data_dir = context.items.get("data_dir")
    train, test = load_fashion_mnist("train", data_dir), load_fashion_mnist("test", data_dir)
    context.items.update(train=train, test=test[: b.test_size] if b.test_size else test)


def run(entry: Entry, seed: int, context: Context, folder: Path) -> dict[str, Any]:
    b, items = context.budget, context.items
    train, test = items["train"], items["test"]
    fit = train[: b.train_size] if b.train_size else train
    budget = {"epochs": b.epochs, "batch_size": b.batch_size, "lr": b.lr, "seed": seed, "quiet": context.quiet, **BODY, **entry.body,
              **entry.options}
    budget.pop("arch")
    t0 = time.perf_counter()
    model = train_model(entry.preset, fit.x, out_dir=folder, **budget)
    result: dict[str, Any] = {"preset": entry.preset, "train_seconds": round(time.perf_counter() - t0, 1), "num_train": len(fit)}
    classification = compare_latent_classification(model, fit.x, fit.y, test.x, test.y, k=int(b.extra["k"]))
    result["accuracy"] = classification["accuracy"]
    result["compression"] = compression_row(model, fit.x, test.x, bits=int(b.extra["bits"]))
    anomaly: list[dict[str, Any]] = []
    for c in b.extra["anomaly_classes"]:
        normal = train.x[train.y != c]
        normal = normal[: b.train_size] if b.train_size else normal
        context.say(f"  {entry.name}: anomaly detection with class {c} ({CLASSES[c]}) held out")
        held_out_model = train_model(entry.preset, normal, out_dir=folder / f"holdout{c}", **budget)
        anomaly += anomaly_holdout(held_out_model, normal, test, c, anomaly_score_kinds(held_out_model), seed=seed)
    result["anomaly"] = anomaly
    result["mean_auroc"] = {score: float(np.mean([r["auroc"] for r in anomaly if r["score"] == score]))
                            for score in dict.fromkeys(r["score"] for r in anomaly)}
    return result


def _mean(runs: list[dict[str, Any]], *path: str) -> float | None:
    values = []
    for r in runs:
        value: Any = r
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            values.append(float(value))
    return float(np.mean(values)) if values else None


def _fmt(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def table(rows: list[tuple[Entry, list[dict[str, Any]]]], context: Context) -> str:
    b = context.budget
    failed = context.items.get("failed", {})
    classes = ", ".join(str(c) for c in b.extra["anomaly_classes"])
    lines = [f"| features | k-NN accuracy (k = {b.extra['k']}) | test MSE/pixel, float codes | test MSE/pixel, {b.extra['bits']}-bit codes "
             f"| mean AUROC, reconstruction | mean AUROC, −ELBO | wall time (s) |", "|---|---:|---:|---:|---:|---:|---:|"]
    baseline = None
    for entry, runs in rows:
        if not runs:
            lines.append(f"| `{entry.name}` codes | failed: {failed.get(entry.name, 'not run')} | | | | | |")
            continue
        baseline = baseline or runs[0]
        lines.append(f"| `{entry.name}` codes ({BODY['latent_dim']}) | {_fmt(_mean(runs, 'accuracy', 'latent'), 3)} | "
                     f"{_fmt(_mean(runs, 'compression', 'model_mse'), 5)} | {_fmt(_mean(runs, 'compression', 'model_mse_quantized'), 5)} | "
                     f"{_fmt(_mean(runs, 'mean_auroc', 'reconstruction'), 3)} | {_fmt(_mean(runs, 'mean_auroc', 'elbo'), 3)} | "
                     f"{_fmt(_mean(runs, 'seconds'), 0)} |")
    if baseline is not None:
        c = baseline["compression"]
        lines.append(f"| PCA codes ({c['d']}) | {baseline['accuracy']['pca']:.3f} | {c['pca_mse']:.5f} | {c['pca_mse_quantized']:.5f} | — | — | — |")
        lines.append(f"| raw pixels (784) | {baseline['accuracy']['raw']:.3f} | 0 | — | — | — | — |")
    return ("\n".join(lines) + f"\n\nAnomaly detection: held-out class(es) {classes}, one model per class trained on the other nine; "
            "−ELBO (10 samples) for models with a likelihood bound. Codes are posterior means for VAEs.\n")


SUITE = Suite(
    name="apps",
    title="Applications on Fashion-MNIST: k-NN on codes, compression against PCA, anomaly AUROC",
    body=BODY,
    budget=FULL,
    quick=QUICK,
    quick_models=("ae", "denoising_ae", "vae"),
    entries=entries,
    prepare=prepare,
    run=run,
    table=table,
    training_keys=("epochs", "train_size", "batch_size", "lr"),
)
