"""The ``fashion-mnist`` suite: every preset on binarised Fashion-MNIST, one body, one budget, one table.

Protocol (the reference benchmark's, ``benchmarks/fashion_mnist_loglik.py``): the first
``train_size`` training images are split 90/10 into training and validation sets (seed 0;
all 60 000 give the 54 000 / 6 000 split); training images are re-binarised every epoch
(pixel ~ Bernoulli(intensity)), the validation and test images are binarised once (seed 0);
the model of the best validation epoch is kept. Every entry has the body MLP 784-512-512-32
and back with a Bernoulli likelihood (``vq_vae`` takes the conv body its code grid needs),
Adam 1e-3, batch 128.

Columns, on the first ``test_size`` test images:

* test log p(x): ``vaekit.log_likelihood`` with K importance samples, for models trained on
  a bound of log p(x) (the model's loss reports an ``elbo``); "—" for the others, with the
  reason under the table (no prior; a reconstruction cost that is not a log-density; a
  Wasserstein penalty);
* ELBO (same models), reconstruction MSE (squared error of the posterior-mean reconstruction,
  summed over the 784 pixels) and active units (Cov_x E_q[z_u] > 0.01), from ``vaekit.evaluate``;
* FD ↓ / precision ↑ / recall ↑ of as many samples as test images against the grey test
  images, in the feature space of a Fashion-MNIST classifier (``vaekit.eval.sample_quality``).
  Samples come from the prior (decoder means; labels uniform over the classes for the
  conditional model), from a 10-component GMM fitted to the training codes for models
  without a prior, and from the PixelCNN code prior (``vaekit.samplers.fit_prior``) for ``vq_vae``;
* codebook perplexity of the test codes (``vq_vae``), cluster NMI of argmax_k q(k|x) against
  the test labels (``structured_vae``), wall time (training + measuring).

The scoring classifier is ``--classifier`` or ``benchmarks/models/classifier_fmnist`` when it
exists; otherwise the suite trains one (``vaekit train-classifier``'s recipe, seed 0) into
``OUT/classifier`` and reuses it. ``dfc_vae``'s feature network is another classifier
(seed 1, ``OUT/dfc_feature_network``), so FD is not measured in the very features DFC was
trained to match.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import vaekit
from vaekit.bench.spec import Budget, Context, Entry, Suite
from vaekit.data import Dataset, load_fashion_mnist, static_binarize, train_val_split
from vaekit.eval import evaluate, log_likelihood, sample_quality
from vaekit.eval.likelihood import has_likelihood
from vaekit.models import load_classifier
from vaekit.samplers import GaussianMixtureSampler, PriorSampler, fit_prior

__all__ = ["SUITE", "ENTRIES", "BODY", "binarized_fashion_mnist", "likelihood_gap_reason", "codebook_perplexity", "cluster_nmi",
           "DEFAULT_CLASSIFIER"]

BODY: dict[str, Any] = {"arch": "mlp", "hidden_dims": (512, 512), "latent_dim": 32, "likelihood": "bernoulli"}
"""The reference VAE's body (README, "Log-likelihood of the reference VAE"): MLP 784-512-512-32 and back, Bernoulli."""

DEFAULT_CLASSIFIER = Path("benchmarks/models/classifier_fmnist")
"""The shipped Fashion-MNIST feature classifier (relative to the repository root), used when it exists."""

ENTRIES: list[Entry] = [
    Entry("ae", "ae"),
    Entry("linear_ae", "linear_ae"),
    Entry("sparse_ae", "sparse_ae"),
    Entry("denoising_ae", "denoising_ae"),
    Entry("contractive_ae", "contractive_ae"),
    Entry("vae", "vae"),
    Entry("vae_full_covariance", "vae", {"posterior": "full_covariance"}),
    Entry("vae_planar_k4", "vae", {"posterior": "planar", "flow_steps": 4}),
    Entry("vae_radial_k4", "vae", {"posterior": "radial", "flow_steps": 4}),
    Entry("vae_iaf_k2", "vae", {"posterior": "iaf", "flow_steps": 2}),
    Entry("beta_vae", "beta_vae", {"beta": 4.0}),
    Entry("beta_tc_vae", "beta_tc_vae"),
    Entry("iwae_k5", "iwae", {"num_samples": 5}),
    Entry("miwae_m8_k8", "miwae", {"num_bounds": 8, "num_samples": 8}),
    Entry("info_vae", "info_vae"),
    Entry("dip_vae", "dip_vae"),
    Entry("logcosh_vae", "logcosh_vae"),
    Entry("conditional_vae", "conditional_vae", {"num_classes": 10}, note="log p(x|y) and ELBO given the test label"),
    Entry("auxiliary_vae", "auxiliary_vae"),
    Entry("wae_mmd", "wae_mmd"),
    Entry("swae", "swae"),
    Entry("mssim_vae", "mssim_vae"),
    Entry("dfc_vae", "dfc_vae", note="feature network: a classifier trained by the suite with seed 1, not the scoring one"),
    Entry("categorical_vae", "categorical_vae"),
    Entry("joint_vae", "joint_vae"),
    Entry("vq_vae", "vq_vae", body={"arch": "conv", "channels": (32, 64)},
          note="conv body 32-64 (the code is a 7×7 grid of 32-dim codebook vectors); samples from its PixelCNN code prior"),
    Entry("structured_vae", "structured_vae", {"components": 10}),
]
"""The suite's models and their options. A preset registered later and missing here joins with its defaults."""

QUICK_MODELS = ("vae", "iwae_k5", "beta_vae", "ae", "wae_mmd", "categorical_vae", "structured_vae")
"""``--quick``'s models: one per column (log p(x), GMM samples, no likelihood, NMI). vq_vae is left out: drawing its
samples from the autoregressive code prior takes minutes on two cores."""

FULL = Budget(epochs=60, train_size=None, test_size=None, seeds=1, nll_samples=1000,
              extra={"classifier_epochs": 4, "prior_epochs": 10, "gmm_components": 10})
QUICK = Budget(epochs=2, train_size=2000, test_size=500, seeds=1, nll_samples=20,
               extra={"classifier_epochs": 2, "prior_epochs": 1, "gmm_components": 10})


def entries(budget: Budget) -> list[Entry]:
    """The table's entries whose preset exists, then every other registered preset with its defaults."""
    available = vaekit.available_models()
    chosen = [e for e in ENTRIES if e.preset in available]
    covered = {e.preset for e in chosen}
    return chosen + [Entry(name, name, note="not in the suite's table: the preset's defaults") for name in available
                     if name not in covered]


def binarized_fashion_mnist(
    train_size: int | None = None, test_size: int | None = None, data_dir: str | None = None, val_fraction: float = 0.1,
) -> tuple[Dataset, Dataset, Dataset, torch.Tensor]:
    """The binarised Fashion-MNIST protocol's data: (train, val, test, x_test binarised once with seed 0).

    ``train`` and ``val`` are the first ``train_size`` training images (all: None) split
    ``1 − val_fraction`` / ``val_fraction`` with seed 0, in grey levels: ``vaekit.fit(...,
    binarize_data="dynamic")`` re-binarises the training set every epoch and the validation
    set once. ``test`` holds the first ``test_size`` test images in grey levels (for sample
    quality), ``x_test`` the same images binarised (for log p(x), ELBO, reconstruction).
    """
    full = load_fashion_mnist("train", data_dir)
    full = full[:train_size] if train_size else full
    train, val = train_val_split(full, val_fraction, seed=0)
    test = load_fashion_mnist("test", data_dir)
    test = test[:test_size] if test_size else test
    return train, val, test, static_binarize(test.x, seed=0)


def likelihood_gap_reason(model: vaekit.LatentVariableModel, x: torch.Tensor, y: torch.Tensor | None = None) -> str | None:
    """Why ``model`` has no test log p(x) to report, or None when it has one.

    A model has one when it has a prior, a likelihood-based objective (:func:`has_likelihood`)
    and its loss is a bound on log p(x) (it reports an ``elbo`` term); models trained on a
    reconstruction cost that is not a log-density (log-cosh, 1 − MS-SSIM, a feature distance)
    have a decoder whose Bernoulli "likelihood" was never fitted.
    """
    if model.prior_module is None:
        return "no prior p(z)"
    if not has_likelihood(model):
        return "reconstruction cost + a penalty on q(z), no likelihood"
    with torch.no_grad():
        terms = model.loss(x[:2], None if y is None else y[:2])
    return None if "elbo" in terms else "reconstruction cost that is not a log-density"


@torch.no_grad()
def codebook_perplexity(model: Any, x: torch.Tensor) -> float:
    """exp(H) of the histogram of the code indices of ``x`` (a ``vq_vae``): the effective number of codes in use."""
    from vaekit.objectives import code_counts, code_perplexity
    from vaekit.samplers.code_prior import code_grids

    return float(code_perplexity(code_counts(code_grids(model, x).cpu(), model.codebook_size)))


@torch.no_grad()
def cluster_nmi(model: Any, x: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    """Normalised mutual information between argmax_k q(k|x) (``structured_vae``) and the labels (scikit-learn)."""
    from sklearn.metrics import normalized_mutual_info_score

    model.eval()
    clusters = torch.cat([model.cluster_probabilities(x[i : i + batch_size].to(model.device)).argmax(1).cpu()
                          for i in range(0, x.shape[0], batch_size)])
    return float(normalized_mutual_info_score(labels.numpy(), clusters.numpy()))


def _classifier(context: Context, key: str, folder: Path, seed: int) -> Any:
    """The classifier in ``folder``, trained there first (on the suite's training images) when it holds none."""
    from vaekit.train.classifier import train_classifier

    if (folder / "model.safetensors").is_file():
        return load_classifier(folder)
    train, val = context.items["train"], context.items["val"]
    context.say(f"training the {key} ({context.budget.extra['classifier_epochs']} epochs on {len(train)} images, seed {seed}) -> {folder}")
    classifier, _ = train_classifier((train.x, train.y), (val.x, val.y), epochs=int(context.budget.extra["classifier_epochs"]),
                                     seed=seed, out_dir=folder, quiet=context.quiet)
    return classifier


def prepare(context: Context) -> None:
    """Load the data and the scoring classifier (and dfc_vae's feature network when dfc_vae runs)."""
    from vaekit.models import classifier_sha256
    from vaekit.train.classifier import classifier_accuracy

    budget = context.budget
    train, val, test, x_test = binarized_fashion_mnist(budget.train_size, budget.test_size, context.items.get("data_dir"))
    context.items.update(train=train, val=val, test=test, x_test=x_test)
    given = context.items.get("classifier") or (DEFAULT_CLASSIFIER if (DEFAULT_CLASSIFIER / "model.safetensors").is_file() else None)
    if given:
        folder = Path(given)
        classifier = load_classifier(folder)
    else:
        folder = context.out / "classifier"
        classifier = _classifier(context, "scoring classifier", folder, seed=0)
    context.items["classifier"] = classifier
    accuracy = classifier_accuracy(classifier, test.x, test.y)
    context.provenance["Sample-quality features"] = (f"classifier {folder} (test accuracy {accuracy:.3f} on these test images, "
                                                     f"weights SHA-256 {classifier_sha256(classifier)[:16]}…)")
    if "dfc_vae" in context.items.get("presets", ()):
        features = context.out / "dfc_feature_network"
        network = _classifier(context, "dfc_vae feature network", features, seed=1)
        context.items["feature_network"] = str(features.resolve())
        context.provenance["dfc_vae feature network"] = f"{features} (weights SHA-256 {classifier_sha256(network)[:16]}…)"


def _samples(model: Any, entry: Entry, context: Context, folder: Path, n: int, seed: int) -> tuple[torch.Tensor, str]:
    """n images to score and where they came from: the prior, a GMM on the training codes, or vq_vae's code prior."""
    x_fit = static_binarize(context.items["train"].x, seed=1)
    if entry.preset == "vq_vae":
        if model.code_prior is None:
            fit_prior(model, x_fit, epochs=int(context.budget.extra["prior_epochs"]), seed=seed, quiet=context.quiet, out_dir=folder)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return model.sample(n), "PixelCNN code prior"
    if model.prior_module is None:
        sampler = GaussianMixtureSampler(int(context.budget.extra["gmm_components"]), seed=seed).fit(model, x_fit)
        return sampler.sample(n, seed=seed), f"GMM ({sampler.components} components) on training codes"
    if model.conditional:
        labels = torch.arange(n) % model.num_classes
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return model.sample(n, y=labels), "prior, labels uniform over the classes"
    return PriorSampler(model).sample(n, seed=seed), "prior"


def run(entry: Entry, seed: int, context: Context, folder: Path) -> dict[str, Any]:
    """Train ``entry`` in ``folder`` (resuming) on the suite's data and measure it."""
    budget, items = context.budget, context.items
    options = dict(entry.options)
    if entry.preset == "dfc_vae":
        options["feature_network"] = items["feature_network"]
    torch.manual_seed(seed)
    model = vaekit.create(entry.preset, input_shape=(1, 28, 28), **{**BODY, **entry.body}, **options)
    train, val, test, x_test = items["train"], items["val"], items["test"], items["x_test"]
    labelled = model.conditional
    t0 = time.perf_counter()
    fit = vaekit.fit(model, (train.x, train.y) if labelled else train.x, (val.x, val.y) if labelled else val.x, epochs=budget.epochs,
                     batch_size=budget.batch_size, lr=budget.lr, binarize_data="dynamic", out_dir=folder, quiet=context.quiet, seed=seed)
    # the training time of every invocation, resumed ones included: each epoch's images / its throughput (validation excluded)
    train_seconds = sum(len(train) / r["samples_per_s"] for r in fit.history) if fit.history else time.perf_counter() - t0
    t1 = time.perf_counter()
    model = fit.model
    y = test.y if labelled else None
    metrics = evaluate(model, x_test, y)
    result: dict[str, Any] = {"preset": entry.preset, "best_epoch": fit.best_epoch, "epochs_trained": len(fit.history),
                              "train_seconds": round(train_seconds, 1), "mse": metrics["mse"], "active_units": metrics["active_units"],
                              "latent_dim": model.latent_dim}
    reason = likelihood_gap_reason(model, x_test, y)
    if reason is None:
        torch.manual_seed(seed)
        ll = log_likelihood(model, x_test, budget.nll_samples, y=y, progress=not context.quiet)
        result.update(elbo=metrics["elbo"], kl=metrics["kl"], log_likelihood=float(ll.mean()),
                      log_likelihood_sd=float(ll.std()) if ll.numel() > 1 else 0.0)
    else:
        result["no_log_likelihood"] = reason
    n = x_test.shape[0]
    images, source = _samples(model, entry, context, folder, n, seed)
    quality = sample_quality(images, test.x, items["classifier"], seed=seed)
    result.update({k: quality[k] for k in ("fd", "kid", "precision", "recall", "density", "coverage", "n")}, sample_source=source)
    from vaekit.viz import save_image_grid

    save_image_grid(images[:64], folder / "bench_samples.png", nrow=8)
    if entry.preset == "vq_vae":
        result["codebook_perplexity"] = codebook_perplexity(model, x_test)
    if entry.preset == "structured_vae":
        result["cluster_nmi"] = cluster_nmi(model, x_test, test.y)
    result["measure_seconds"] = round(time.perf_counter() - t1, 1)
    result["wall_seconds"] = round(train_seconds + result["measure_seconds"], 1)
    return result


# -- the table ------------------------------------------------------------------------------
def _cell(runs: list[dict[str, Any]], key: str, digits: int) -> str:
    values = [r[key] for r in runs if r.get(key) is not None]
    if not values:
        return "—"
    mean = float(np.mean(values))
    if len(values) > 1:
        return f"{mean:.{digits}f} ± {float(np.std(values, ddof=1)):.{digits}f}"
    return f"{mean:.{digits}f}"


COLUMNS = (("test log p(x)", "log_likelihood", 2), ("ELBO", "elbo", 2), ("recon. MSE", "mse", 2), ("FD ↓", "fd", 2),
           ("precision ↑", "precision", 3), ("recall ↑", "recall", 3), ("active units", "active_units", 1),
           ("codebook perplexity", "codebook_perplexity", 1), ("cluster NMI", "cluster_nmi", 3), ("train + measure (s)", "wall_seconds", 0))


def table(rows: list[tuple[Entry, list[dict[str, Any]]]], context: Context) -> str:
    """The Markdown table: one row per entry, mean (± sd over seeds), notes on "—" cells and samplers below."""
    failed = context.items.get("failed", {})
    lines = ["| model | preset and options | " + " | ".join(c[0] for c in COLUMNS) + " | samples from |",
             "|---|---|" + "---:|" * len(COLUMNS) + "---|"]
    gaps: dict[str, list[str]] = {}
    notes = []
    for entry, runs in rows:
        if not runs:
            why = failed.get(entry.name, "not run")
            lines.append(f"| {entry.name} | {entry.describe()} | failed: {why} |" + " |" * len(COLUMNS))
            continue
        cells = [_cell(runs, key, digits) for _, key, digits in COLUMNS]
        lines.append(f"| {entry.name} | {entry.describe()} | " + " | ".join(cells) + f" | {runs[0].get('sample_source', '—')} |")
        if "no_log_likelihood" in runs[0]:
            gaps.setdefault(runs[0]["no_log_likelihood"], []).append(entry.name)
        if entry.note:
            notes.append(f"* {entry.name}: {entry.note}.")
    k = context.budget.nll_samples
    out = "\n".join(lines) + "\n\n"
    out += (f"Training: the first training images, 90 % to train on (re-binarised every epoch) and 10 % to pick the best epoch. "
            f"log p(x): K = {k} importance samples per test image, nats (higher is better); recon. MSE: squared error summed "
            f"over the 784 pixels of the binarised test images; FD, precision, recall: as many samples as test images, "
            f"against the grey test images; train + measure: training time summed over every invocation that trained the model "
            f"(throughput per epoch, validation excluded) plus measuring time.\n")
    for reason, names in gaps.items():
        out += f"\n* log p(x) and ELBO are \"—\" for {', '.join(names)}: {reason}."
    for note in notes:
        out += "\n" + note
    return out + "\n"


SUITE = Suite(
    name="fashion-mnist",
    title="Every preset on binarised Fashion-MNIST: test log-likelihood, bound, reconstruction, sample quality",
    body=BODY,
    budget=FULL,
    quick=QUICK,
    quick_models=QUICK_MODELS,
    entries=entries,
    prepare=prepare,
    run=run,
    table=table,
    training_keys=("epochs", "train_size", "batch_size", "lr"),
)
