r"""Sample quality in the feature space of a classifier trained by vaekit: FD, KID, P/R, density/coverage, entropies.

Every score compares generated images with real ones through φ, the penultimate layer of a
:class:`~vaekit.models.FeatureClassifier` (FID's recipe with vaekit's own network in place
of Inception-v3, whose weights cannot be downloaded here). The scores are only comparable
between runs scored with the same classifier, so :func:`sample_quality` reports its SHA-256.

* Fréchet distance (FID's formula): FD = ‖μ_r − μ_g‖² + tr Σ_r + tr Σ_g − 2 tr (Σ_r Σ_g)^{1/2},
  the 2-Wasserstein distance between Gaussians with the two sets' feature moments. Lower is
  better; it is biased upward at finite n, so compare scores at equal n.
* Kernel distance (KID): the unbiased estimate of MMD² with the cubic polynomial kernel
  k(a, b) = (aᵀb / F + 1)³, averaged over random subsets; ``kid_std`` is its spread over
  the subsets. Unbiased, so ≈ 0 (and possibly < 0) for samples of the real distribution.
* Improved precision and recall: the share of generated samples inside the real manifold
  (the union of balls around each real feature reaching its k-th nearest real neighbour),
  and of real samples inside the generated manifold.
* Density and coverage: density = (1 / kM) Σ_j Σ_i 1[φ_j ∈ B(r_i, NND_k(r_i))] (how many
  real neighbourhoods hold each sample; > 1 is possible), coverage = the share of real
  samples whose neighbourhood holds at least one generated sample.
* Label entropies: the mean entropy of the classifier's p(y|x) on the samples (low: each
  sample looks like one class) and the entropy of the histogram of predicted labels (mode
  coverage: log K nats when every class is generated equally often, 0 for one class).

References:
    GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium
    (Heusel, Ramsauer, Unterthiner, Nessler & Hochreiter, NeurIPS 2017), arXiv:1706.08500.
    The Fréchet distance between multivariate normal distributions (Dowson & Landau,
    J. Multivariate Anal. 1982). Demystifying MMD GANs (Bińkowski, Sutherland, Arbel &
    Gretton, ICLR 2018), arXiv:1801.01401. Improved Precision and Recall Metric for Assessing
    Generative Models (Kynkäänniemi, Karras, Laine, Lehtinen & Aila, NeurIPS 2019),
    arXiv:1904.06991. Reliable Fidelity and Diversity Metrics for Generative Models (Naeem,
    Oh, Uh, Choi & Yoo, ICML 2020), arXiv:2002.09797. Improved Techniques for Training GANs
    (Salimans et al., NeurIPS 2016), arXiv:1606.03498 (the label entropies of the Inception score).
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from vaekit.data import check_data
from vaekit.errors import ConfigError, DataError
from vaekit.models.classifier import FeatureClassifier, classifier_sha256

__all__ = [
    "frechet_distance",
    "trace_sqrt_product",
    "kernel_distance",
    "precision_recall_density_coverage",
    "label_entropies",
    "sample_quality",
    "SAMPLE_QUALITY_KEYS",
]

SAMPLE_QUALITY_KEYS = ("fd", "kid", "kid_std", "precision", "recall", "density", "coverage",
                       "label_entropy", "class_entropy", "n", "classifier_sha256")
"""The keys of :func:`sample_quality`'s result, in order."""


def _features(x: Any, name: str, min_rows: int = 2) -> torch.Tensor:
    """``x`` as a float64 (N, F) tensor of finite features with at least ``min_rows`` rows."""
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).detach().cpu()
    if t.dim() != 2 or t.shape[0] < min_rows or t.shape[1] < 1:
        raise DataError(f"{name} must be a (N, F) array of features with N ≥ {min_rows}, got shape {tuple(t.shape)}")
    if t.is_complex() or not bool(torch.isfinite(t).all()):
        raise DataError(f"{name} holds NaN, infinite or complex values; the images fed to the classifier were broken")
    return t.to(torch.float64)


def _pair(a: Any, b: Any, names: tuple[str, str], min_rows: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = _features(a, names[0], min_rows), _features(b, names[1], min_rows)
    if a.shape[1] != b.shape[1]:
        raise DataError(f"{names[0]} has {a.shape[1]} features per row but {names[1]} has {b.shape[1]}; "
                        "compute both with the same classifier")
    return a, b


def _centred_factor(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean of the rows of x and a factor R with RᵀR = Σ, their unbiased (n − 1) covariance.

    R is the triangular factor of the QR decomposition of the centred data, divided by
    √(n − 1): Σ = X_cᵀX_c / (n − 1) is never formed, so no digits are lost to squaring.
    """
    mean = x.mean(0)
    r = torch.linalg.qr(x - mean, mode="r").R
    return mean, r / math.sqrt(x.shape[0] - 1)


def _psd_factor(cov: torch.Tensor) -> torch.Tensor:
    """A factor L with LᵀL = Σ for a positive semi-definite Σ = V diag(λ) Vᵀ: L = diag(√max(λ, 0)) Vᵀ."""
    eigenvalues, vectors = torch.linalg.eigh(cov)
    return eigenvalues.clamp_min(0).sqrt().unsqueeze(1) * vectors.T


def trace_sqrt_product(cov_a: torch.Tensor, cov_b: torch.Tensor) -> float:
    r"""tr (Σ_a Σ_b)^{1/2} for positive semi-definite Σ_a = L_aᵀL_a, Σ_b = L_bᵀL_b, also when they are singular.

    The non-zero eigenvalues of Σ_a Σ_b = L_aᵀL_a L_bᵀL_b are those of
    L_a L_bᵀ L_b L_aᵀ = M Mᵀ with M = L_a L_bᵀ, so their square roots are the singular
    values of M and

        tr (Σ_a Σ_b)^{1/2} = ‖L_a L_bᵀ‖_*   (the nuclear norm),

    computed in float64 from one SVD, after a symmetric eigendecomposition of each Σ
    (L = diag(√λ) Vᵀ, rounding's negative λ set to 0). No matrix square root of the
    non-symmetric Σ_a Σ_b is taken (``scipy.linalg.sqrtm``, as in pytorch-fid) and no square
    roots of its eigenvalues (torchmetrics), routes that lose about half the digits when the
    covariances are singular. :func:`frechet_distance` goes further and takes L from the
    QR decomposition of the centred features, never forming Σ.
    """
    a, b = torch.as_tensor(cov_a, dtype=torch.float64), torch.as_tensor(cov_b, dtype=torch.float64)
    return float(torch.linalg.svdvals(_psd_factor(a) @ _psd_factor(b).T).sum())


def frechet_distance(feats_a: Any, feats_b: Any) -> float:
    r"""The Fréchet distance between Gaussians fitted to two sets of features (FID's formula).

        FD = ‖μ_a − μ_b‖² + tr Σ_a + tr Σ_b − 2 tr (Σ_a Σ_b)^{1/2}

    with μ, Σ the mean and unbiased covariance of each set. Computed in float64 from the QR
    factors R of the centred features (Σ = RᵀR, never formed): tr Σ = ‖R‖²_F and
    tr (Σ_a Σ_b)^{1/2} = ‖R_a R_bᵀ‖_* (see :func:`trace_sqrt_product`). It stays accurate when
    the covariances are singular (dead ReLU features, fewer samples than features): the FD
    of a set against itself is 0 to about 1e−15 of tr Σ, where the matrix-square-root and
    eigenvalue routes leave errors of 1e−8 to 1e−7 of tr Σ. Symmetric in a and b.

    Arguments:
        feats_a, feats_b: (N_a, F) and (N_b, F) features (tensors or arrays), N ≥ 2.

    Example:
        >>> a = torch.randn(500, 4)
        >>> abs(frechet_distance(a, a)) < 1e-9, round(frechet_distance(a, a + 1.0), 6)  # ‖μ_a − μ_b‖² = 4
        (True, 4.0)
    """
    a, b = _pair(feats_a, feats_b, ("feats_a", "feats_b"))
    (mu_a, r_a), (mu_b, r_b) = _centred_factor(a), _centred_factor(b)
    spread = float((mu_a - mu_b).square().sum() + r_a.square().sum() + r_b.square().sum())
    return spread - 2.0 * float(torch.linalg.svdvals(r_a @ r_b.T).sum())


class _Precomputed(nn.Module):
    """Identity "feature network": hands torchmetrics features computed once for every score."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def kernel_distance(
    feats_a: Any,
    feats_b: Any,
    *,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    seed: int = 0,
) -> tuple[float, float]:
    r"""KID: the unbiased MMD² with a polynomial kernel, averaged over random subsets; returns (mean, std).

    For each of ``subsets`` draws, m = min(``subset_size``, N_a, N_b) rows of each set are
    taken without replacement and

        MMD²_u = 1/(m(m−1)) Σ_{i≠j} [k(a_i, a_j) + k(b_i, b_j)] − 2/m² Σ_{i,j} k(a_i, b_j),
        k(a, b) = (aᵀb / F + 1)^degree,

    is computed (torchmetrics' ``KernelInceptionDistance``, fed the features, in float64).
    The mean over subsets is KID; the standard deviation over subsets (population form, as
    in torchmetrics, torch-fidelity and Bińkowski et al.) is the standard error of one
    m-sample estimate. The subsets are drawn from ``seed`` (the global RNG is left as it was).

    Arguments:
        feats_a, feats_b: (N_a, F) and (N_b, F) features, N ≥ 2.
        subsets, subset_size: the number and size of the random subsets (100 × 1000 by default).
        degree: the polynomial kernel's degree (3, as in KID).
        seed: seeds the subset draws.
    """
    for name, value in (("subsets", subsets), ("subset_size", subset_size), ("degree", degree)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    a, b = _pair(feats_a, feats_b, ("feats_a", "feats_b"))
    m = min(int(subset_size), a.shape[0], b.shape[0])
    from torchmetrics.image.kid import KernelInceptionDistance

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # its notice that it keeps every feature in memory
        metric = KernelInceptionDistance(feature=_Precomputed(a.shape[1]), subsets=int(subsets), subset_size=m, degree=int(degree))
    metric.update(a, real=True)
    metric.update(b, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def precision_recall_density_coverage(real_feats: Any, fake_feats: Any, k: int = 5) -> dict[str, float]:
    r"""Improved precision and recall (Kynkäänniemi et al.) and density and coverage (Naeem et al.), with ``prdc``.

    With NND_k(x) the distance from x to its k-th nearest neighbour within its own set and
    B(x, r) the open ball of radius r (N real features r_i, M generated features g_j):

        precision = (1/M) Σ_j 1[∃ i: g_j ∈ B(r_i, NND_k(r_i))]
        recall    = (1/N) Σ_i 1[∃ j: r_i ∈ B(g_j, NND_k(g_j))]
        density   = (1/(kM)) Σ_j Σ_i 1[g_j ∈ B(r_i, NND_k(r_i))]
        coverage  = (1/N) Σ_i 1[∃ j: g_j ∈ B(r_i, NND_k(r_i))]

    k = 5 for all four, Naeem et al.'s choice (Kynkäänniemi et al. use k = 3 for precision
    and recall). The distances are translation-invariant, so both sets are first moved (in
    float64) near 0 by a shift that is a multiple of a power of two as large as each feature's
    range, before ``prdc`` works in float32: an offset large against the spread costs no
    digits, and integer (or dyadic) features stay exact, so tied distances stay tied. Memory
    and time grow as (N + M)²: 10 000 + 10 000 features take about 1.5 GB.

    Arguments:
        real_feats, fake_feats: (N, F) and (M, F) features; N and M must exceed k + 1.
        k: the neighbourhood size.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k must be a positive integer, got {k!r}")
    real, fake = _pair(real_feats, fake_feats, ("real_feats", "fake_feats"), min_rows=int(k) + 2)
    shift = _shift(real, fake)
    real, fake = real - shift, fake - shift
    from prdc import compute_prdc

    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the set sizes, which would break JSON on stdout
        scores = compute_prdc(real.to(torch.float32).numpy(), fake.to(torch.float32).numpy(), nearest_k=int(k))
    return {name: float(scores[name]) for name in ("precision", "recall", "density", "coverage")}


def _shift(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per feature, the midpoint of the values of a and b rounded to a multiple of q = 2^⌈log₂ range⌉ (the
    value itself for a constant feature, 0 for a range beyond the largest float): subtracting it is exact for
    integer or dyadic values and leaves |x| ≤ q."""
    low, high = torch.minimum(a.amin(0), b.amin(0)), torch.maximum(a.amax(0), b.amax(0))
    q = torch.exp2(torch.ceil(torch.log2(high - low)))
    shift = torch.where(torch.isfinite(q), torch.round((low / 2 + high / 2) / q) * q, torch.zeros_like(q))
    return torch.where(high > low, shift, low)


def label_entropies(logits: Any) -> dict[str, float]:
    r"""The classifier's mean label entropy and the entropy of its predicted-label histogram, in nats.

        label_entropy = −(1/N) Σ_n Σ_y p(y|x_n) log p(y|x_n),    p(·|x) = softmax(logits)
        class_entropy = −Σ_y h_y log h_y,   h_y = (1/N) #{n : argmax p(·|x_n) = y}

    label_entropy is low when each sample is clearly of one class; class_entropy is log K
    when the predicted classes are equally frequent and 0 when every sample gets one class.

    Example:
        >>> round(label_entropies(torch.tensor([[9.0, 0.0], [0.0, 9.0]]))["class_entropy"], 4)  # log 2
        0.6931
    """
    z = _features(logits, "logits", min_rows=1)
    log_p = torch.log_softmax(z, dim=1)
    label_entropy = float(-(log_p.exp() * log_p).sum(1).mean())
    share = torch.bincount(z.argmax(1), minlength=z.shape[1]).to(torch.float64) / z.shape[0]
    share = share[share > 0]
    return {"label_entropy": label_entropy, "class_entropy": 0.0 - float((share * share.log()).sum())}


def _images(x: Any, classifier: FeatureClassifier, name: str) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    expected = tuple(classifier.input_shape)
    if t.dim() != len(expected) + 1 or tuple(t.shape[1:]) != expected:
        raise DataError(f"{name} have shape {tuple(t.shape)} but the classifier was trained on (N, {', '.join(map(str, expected))}); "
                        "score them with a classifier trained on data of their shape (`vaekit train-classifier --data ...`)")
    if not (t.is_floating_point() or t.dtype == torch.bool):
        raise DataError(f"{name} are {str(t.dtype).replace('torch.', '')} values, but the classifier takes floats as vaekit's "
                        "loaders give them (images in [0, 1]); convert them first, e.g. x.float() / 255 for 8-bit images")
    check_data(t, input_shape=expected, name=name)
    return t.detach().to(torch.float32)


def sample_quality(
    images: Any,
    reference_images: Any,
    classifier: FeatureClassifier,
    *,
    batch_size: int = 500,
    k: int = 5,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Every sample-quality score of ``images`` against ``reference_images`` in ``classifier``'s feature space.

    Returns a dict with exactly the keys :data:`SAMPLE_QUALITY_KEYS`: ``fd``
    (:func:`frechet_distance`), ``kid`` and ``kid_std`` (:func:`kernel_distance`),
    ``precision``, ``recall``, ``density``, ``coverage``
    (:func:`precision_recall_density_coverage`), ``label_entropy`` and ``class_entropy``
    (:func:`label_entropies`, of the classifier's predictions on ``images``), ``n`` (the
    number of images) and ``classifier_sha256`` (:func:`~vaekit.models.classifier_sha256`).

    Arguments:
        images: generated images (N, *input_shape), a tensor or array.
        reference_images: real images (M, *input_shape), e.g. the test set.
        classifier: a trained :class:`~vaekit.models.FeatureClassifier` (``vaekit.load_classifier``).
        batch_size: images per forward pass of the classifier.
        k: the neighbourhood size of precision, recall, density and coverage.
        kid_subsets, kid_subset_size: KID's subsets (the size is capped at the smaller set).
        seed: seeds KID's subsets.

    Example:
        >>> clf = vaekit.load_classifier("benchmarks/models/classifier_fmnist")  # doctest: +SKIP
        >>> sample_quality(model.sample(10_000), test.x, clf)["fd"]  # doctest: +SKIP
    """
    if not isinstance(classifier, FeatureClassifier):
        raise ConfigError(f"classifier must be a vaekit FeatureClassifier (vaekit.load_classifier(dir)), got {type(classifier).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    images, reference = _images(images, classifier, "images"), _images(reference_images, classifier, "reference images")
    for name, t in (("images", images), ("reference images", reference)):
        if t.shape[0] < int(k) + 2:
            raise DataError(f"{name}: {t.shape[0]} given, but the scores need more than k + 1 = {int(k) + 1}; use more samples")
    fake_feats, fake_logits = classifier.outputs(images, batch_size=int(batch_size))
    real_feats, _ = classifier.outputs(reference, batch_size=int(batch_size))
    kid, kid_std = kernel_distance(real_feats, fake_feats, subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)
    result: dict[str, Any] = {"fd": frechet_distance(real_feats, fake_feats), "kid": kid, "kid_std": kid_std}
    result.update(precision_recall_density_coverage(real_feats, fake_feats, k=k))
    result.update(label_entropies(fake_logits))
    result["n"] = int(images.shape[0])
    result["classifier_sha256"] = classifier_sha256(classifier)
    return result
