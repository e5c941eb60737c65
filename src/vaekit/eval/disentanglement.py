r"""Disentanglement metrics: β-VAE score, FactorVAE score, MIG, SAP and DCI.

Each follows its paper, with the sample sizes and estimator choices of disentanglement_lib
(Locatello et al., "Challenging Common Assumptions in the Unsupervised Learning of
Disentangled Representations", ICML 2019, arXiv:1811.12359) as defaults:

* :func:`mig`, :func:`sap` and :func:`dci` take arrays: codes (N, D) and discrete factor
  indices (N, F) of the same N examples;
* :func:`betavae_score` and :func:`factorvae_score` need to choose factor values ("fix one
  factor, vary the rest"), so they take ``represent`` (a function from images to codes,
  or a vaekit model, whose posterior means are its codes) and the ground-truth data
  (:class:`vaekit.data.Sprites`, or any object with ``factor_sizes``,
  ``sample_factors(n, rng)`` and ``render(factor_indices)``);
* :func:`disentanglement_scores` computes all of them for one representation.

Notation: z_j the j-th code, v_k the k-th factor, I mutual information, H entropy (nats).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Protocol

import numpy as np
import torch

from vaekit.errors import ConfigError, DataError

__all__ = [
    "mig",
    "sap",
    "dci",
    "dci_from_importance",
    "betavae_score",
    "factorvae_score",
    "disentanglement_scores",
    "sample_codes",
    "histogram_discretize",
    "mutual_information_matrix",
    "GroundTruthData",
    "QUICK_SAMPLE_SIZES",
    "PAPER_SAMPLE_SIZES",
]

#: disentanglement_lib's sample sizes (its ``unsupervised_study_v1`` metric configs).
PAPER_SAMPLE_SIZES = {"num_codes": 10_000, "num_test_codes": 5_000, "num_train": 10_000, "num_eval": 5_000,
                      "num_variance_estimate": 10_000}
#: Smaller samples for a quick look on a CPU (a few seconds to a minute): scores are noisier.
QUICK_SAMPLE_SIZES = {"num_codes": 3_000, "num_test_codes": 1_500, "num_train": 500, "num_eval": 250,
                      "num_variance_estimate": 3_000}

_CHUNK = 2048  # images rendered and encoded at once


class GroundTruthData(Protocol):
    """What the sampling metrics need of a data set with known factors (e.g. :class:`vaekit.data.Sprites`)."""

    factor_sizes: tuple[int, ...]

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray: ...

    def render(self, factor_indices: np.ndarray) -> Any: ...


# -- the array metrics --------------------------------------------------------------------------
def histogram_discretize(codes: np.ndarray | torch.Tensor, num_bins: int = 20) -> np.ndarray:
    """Each code column cut into ``num_bins`` equal-width bins between its minimum and maximum.

    As disentanglement_lib's histogram discretiser: bin edges from ``np.histogram`` and
    labels ``np.digitize(z_j, edges[:-1])`` in 1..num_bins (the maximum lands in the last
    bin; a constant column is one bin). A column whose edges ``np.histogram`` cannot place (a
    range of a few ulps, or one beyond the largest float) gets the exact labels
    ⌊(z_j − min) / (max − min) · num_bins⌋ + 1, capped at num_bins. Returns (N, D) int64.
    """
    z = _real_matrix(codes, "codes")
    num_bins = _positive_int("num_bins", num_bins)
    out = np.empty(z.shape, dtype=np.int64)
    for j in range(z.shape[1]):
        try:
            with np.errstate(over="ignore", invalid="ignore"):  # numpy's notes on a range beyond the largest float
                edges = np.histogram(z[:, j], num_bins)[1]
        except ValueError:  # "too many bins for data range": the edges are not representable
            column, low, high = z[:, j], z[:, j].min(), z[:, j].max()
            if abs(high / 2 - low / 2) > np.finfo(np.float64).max / 2:  # the range overflows: halve everything (exact there)
                column, low, high = column / 2, low / 2, high / 2
            out[:, j] = np.minimum(np.floor((column - low) / (high - low) * num_bins), num_bins - 1) + 1
            continue
        out[:, j] = np.digitize(z[:, j], edges[:-1])
    return out


def mutual_information_matrix(discrete_codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """I(z_j; v_k) in nats for every code j and factor k, (D, F), from the empirical joint
    distribution of two discrete samples (``sklearn.metrics.mutual_info_score``); a 1-d
    array is one column."""
    from sklearn.metrics import mutual_info_score

    a, b = (x.reshape(-1, 1) if x.ndim == 1 else x for x in (np.asarray(discrete_codes), np.asarray(factors)))
    return np.array([[mutual_info_score(b[:, k], a[:, j]) for k in range(b.shape[1])] for j in range(a.shape[1])])


def mig(codes: np.ndarray | torch.Tensor, factors: np.ndarray | torch.Tensor, num_bins: int = 20) -> float:
    r"""Mutual information gap: the mean over factors of the normalised gap between the two
    codes most informative about it.

        MIG = (1/K) Σ_k [ I(z_{j_k}; v_k) − max_{j ≠ j_k} I(z_j; v_k) ] / H(v_k),   j_k = argmax_j I(z_j; v_k)

    Codes are discretised into ``num_bins`` equal-width bins per dimension
    (:func:`histogram_discretize`, 20 as in disentanglement_lib) and I, H are the plug-in
    estimates of the empirical distribution. With one code the gap is I(z_1; v_k).
    Factors constant in the sample (H = 0) are left out of the mean. The discretisation
    caps the score: a factor with more values than bins cannot be resolved (dSprites'
    40 orientations in 20 bins: at most log 20 / log 40 = 0.81 for that factor).

    References:
        Isolating Sources of Disentanglement in Variational Autoencoders (Chen, Li, Grosse &
        Duvenaud, NeurIPS 2018), arXiv:1802.04942, §4.

    Arguments:
        codes: (N, D) real codes (e.g. posterior means).
        factors: (N, F) discrete factor indices of the same examples.
        num_bins: bins per code dimension.

    Example:
        >>> v = np.random.default_rng(0).integers(0, 4, size=(1000, 2))
        >>> round(mig(v.astype(float), v), 3)  # not 1: the plug-in I of the other, independent factor is ≈ 0.006 nats
        0.996
    """
    z, v = _codes_and_factors(codes, factors)
    info = mutual_information_matrix(histogram_discretize(z, num_bins), v)  # (D, F)
    entropy = np.array([_entropy(v[:, k]) for k in range(v.shape[1])])
    informative = entropy > 0
    if not informative.any():
        raise DataError("mig: every factor is constant in this sample (zero entropy); give examples where the factors vary")
    top = np.sort(info, axis=0)[::-1]
    second = top[1] if top.shape[0] > 1 else np.zeros(top.shape[1])
    return float(np.mean((top[0] - second)[informative] / entropy[informative]))


def sap(
    codes: np.ndarray | torch.Tensor,
    factors: np.ndarray | torch.Tensor,
    codes_test: np.ndarray | torch.Tensor | None = None,
    factors_test: np.ndarray | torch.Tensor | None = None,
    *,
    continuous: bool = False,
    test_fraction: float = 1 / 3,
    seed: int = 0,
) -> float:
    r"""Separated attribute predictability: the mean over factors of the gap between the two
    codes that predict it best, each code on its own.

        SAP = (1/K) Σ_k (S_{(1)k} − S_{(2)k}),   S_{(1)k} ≥ S_{(2)k} the two largest of S_{1k}..S_{Dk}

    For discrete factors (default) S_jk is the test accuracy of a linear SVM predicting v_k
    from z_j alone (``LinearSVC(C=0.01, class_weight="balanced")``, as disentanglement_lib);
    with ``continuous=True`` it is the R² of a linear regression, Cov(z_j, v_k)² /
    (Var z_j · Var v_k) (0 for a constant code), on the training sample.

    References:
        Variational Inference of Disentangled Latent Concepts from Unlabeled Observations
        (Kumar, Sattigeri & Balakrishnan, ICLR 2018), arXiv:1711.00848, §3.

    Arguments:
        codes, factors: (N, D) codes and (N, F) factor indices to fit on.
        codes_test, factors_test: a separate sample to score the classifiers on; when not
            given, a seeded ``test_fraction`` of the examples is held out (disentanglement_lib
            samples 10 000 to fit and 5 000 to score).
        continuous: treat the factors as real values (R²) rather than classes.
        test_fraction, seed: the hold-out when no test sample is given.
    """
    from sklearn.svm import LinearSVC

    z, v = _codes_and_factors(codes, factors, discrete=not continuous)
    if continuous:
        scores = np.array([[_r_squared(z[:, j], v[:, k]) for k in range(v.shape[1])] for j in range(z.shape[1])])
    else:
        z, v, z_test, v_test = _train_test(z, v, codes_test, factors_test, test_fraction, seed)
        scores = np.zeros((z.shape[1], v.shape[1]))
        for j in range(z.shape[1]):
            for k in range(v.shape[1]):
                if np.unique(v[:, k]).size < 2:
                    scores[j, k] = 1.0  # a constant factor is predicted by every code alike: gap 0
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # liblinear's convergence notes at C = 0.01
                    classifier = LinearSVC(C=0.01, class_weight="balanced").fit(z[:, j : j + 1], v[:, k])
                scores[j, k] = np.mean(classifier.predict(z_test[:, j : j + 1]) == v_test[:, k])
    ranked = np.sort(scores, axis=0)
    second = ranked[-2] if ranked.shape[0] > 1 else np.zeros(ranked.shape[1])
    return float(np.mean(ranked[-1] - second))


def dci(
    codes: np.ndarray | torch.Tensor,
    factors: np.ndarray | torch.Tensor,
    codes_test: np.ndarray | torch.Tensor | None = None,
    factors_test: np.ndarray | torch.Tensor | None = None,
    *,
    predictor: str = "lasso",
    alpha: float = 0.02,
    test_fraction: float = 1 / 3,
    seed: int = 0,
) -> dict[str, Any]:
    r"""DCI: disentanglement, completeness and informativeness from the importance matrix of
    one predictor per factor.

    R_jk ≥ 0 is the importance of code z_j for predicting factor v_k. With P_jk = R_jk / Σ_k R_jk
    and P̃_jk = R_jk / Σ_j R_jk:

        D = Σ_j ρ_j (1 − H_K(P_j·)),   ρ_j = Σ_k R_jk / Σ_jk R_jk     (entropy to base K = #factors)
        C = Σ_k ρ̃_k (1 − H_D(P̃_·k)),  ρ̃_k = Σ_j R_jk / Σ_jk R_jk     (entropy to base D = #codes)
        I = 1 − E, E the test prediction error averaged over factors

    (C weighted by factor importance as in disentanglement_lib; Eastwood & Williams
    average it uniformly, the same when every factor is predicted alike.)

    Predictors:

    * ``"lasso"`` (default; Eastwood & Williams' main choice, and fast on a CPU: a few
      milliseconds per factor): codes and factors standardised on the training sample,
      ``sklearn.linear_model.Lasso(alpha)`` per factor, R_jk = |w_jk|, E = the normalised
      root-mean-square error NRMSE = RMSE / std(v_k). A linear predictor's error is
      unchanged by any invertible linear map of the codes, so I measures the linearly
      decodable information; α = 0.02 is a weak penalty on unit-variance inputs (the paper
      tunes it on held-out data; pass another ``alpha`` to change it).
    * ``"gbt"`` (disentanglement_lib's choice, for comparison with Locatello et al.):
      ``sklearn.ensemble.GradientBoostingClassifier()`` per factor on the raw codes,
      R_jk = its impurity-based feature importances, E = the test misclassification rate
      (so I is disentanglement_lib's ``informativeness_test`` accuracy). Minutes per
      representation on 10 000 codes on a CPU.

    References:
        A Framework for the Quantitative Evaluation of Disentangled Representations
        (Eastwood & Williams, ICLR 2018), https://openreview.net/forum?id=By-7dz-AZ.

    Arguments:
        codes, factors: (N, D) codes and (N, F) factor indices to fit on.
        codes_test, factors_test: a separate sample to measure the error on; when not
            given, a seeded ``test_fraction`` of the examples is held out.
        predictor: ``"lasso"`` or ``"gbt"``.
        alpha: the Lasso penalty.

    Returns:
        ``{"disentanglement", "completeness", "informativeness", "informativeness_train",
        "importance"}``, the last the (D, F) array R.
    """
    predictor = str(predictor).lower()
    if predictor not in ("lasso", "gbt"):
        raise ConfigError(f'dci predictor must be "lasso" or "gbt", got {predictor!r}')
    z, v = _codes_and_factors(codes, factors, discrete=predictor == "gbt")
    z, v, z_test, v_test = _train_test(z, v, codes_test, factors_test, test_fraction, seed)
    if predictor == "lasso":
        importance, error_train, error_test = _lasso_importance(z, v, z_test, v_test, float(alpha))
    else:
        importance, error_train, error_test = _gbt_importance(z, v, z_test, v_test, seed)
    d, c = dci_from_importance(importance)
    return {"disentanglement": d, "completeness": c, "informativeness": 1.0 - error_test,
            "informativeness_train": 1.0 - error_train, "importance": importance}


def dci_from_importance(importance: np.ndarray) -> tuple[float, float]:
    """(disentanglement, completeness) of an importance matrix R (D codes × F factors), as in :func:`dci`.

    A code (or factor) with zero total importance has entropy 1 (uniform) and weight 0;
    an all-zero matrix scores (0, 0).
    """
    r = np.abs(np.asarray(importance, dtype=np.float64))
    if r.ndim != 2 or r.shape[0] < 1 or r.shape[1] < 1:
        raise DataError(f"importance must be a (codes, factors) matrix, got shape {r.shape}")
    total = r.sum()
    if total == 0:
        return 0.0, 0.0
    per_code = 1.0 - _normalised_entropy(r, axis=1)  # (D,)
    per_factor = 1.0 - _normalised_entropy(r, axis=0)  # (F,)
    return float(np.sum(per_code * r.sum(axis=1) / total)), float(np.sum(per_factor * r.sum(axis=0) / total))


# -- the sampling metrics -------------------------------------------------------------------------
def betavae_score(
    represent: Callable[[torch.Tensor], Any] | torch.nn.Module,
    sprites: GroundTruthData,
    *,
    num_train: int = 10_000,
    num_eval: int = 5_000,
    batch_size: int = 64,
    seed: int = 0,
) -> float:
    r"""β-VAE score: how well a linear classifier tells, from code differences, which factor was held fixed.

    One point: draw a factor k uniformly; draw ``batch_size`` pairs of factor combinations
    whose k-th factors agree (the rest independent); its feature is the mean over pairs of
    |z(x₁) − z(x₂)| and its label k. A logistic regression (scikit-learn's default, up to
    1 000 iterations, as disentanglement_lib) is fitted on ``num_train`` points; the score
    is its accuracy on ``num_eval`` new points (chance: 1/F).

    References:
        β-VAE: Learning Basic Visual Concepts with a Constrained Variational Framework
        (Higgins et al., ICLR 2017), §3 and Appendix A.4.

    Arguments:
        represent: images (B, *input_shape) → codes (B, D) (tensor or array), or a vaekit model.
        sprites: the ground-truth data (:class:`vaekit.data.Sprites`).
        num_train, num_eval: points to fit and to score on (each costs 2 · batch_size images).
        batch_size: pairs per point.
        seed: seeds every draw.
    """
    from sklearn.linear_model import LogisticRegression

    encode, data, rng = _representation(represent), _ground_truth(sprites), np.random.default_rng(seed)
    num_train, num_eval, batch_size = (_positive_int(n, v) for n, v in
                                       (("num_train", num_train), ("num_eval", num_eval), ("batch_size", batch_size)))

    def points(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(len(data.factor_sizes), size=n)
        features = []
        per_chunk = max(1, _CHUNK // (2 * batch_size))
        for start in range(0, n, per_chunk):
            fixed = np.repeat(labels[start : start + per_chunk], batch_size)
            first, second = _sample(data, fixed.size, rng), _sample(data, fixed.size, rng)
            rows = np.arange(fixed.size)
            second[rows, fixed] = first[rows, fixed]
            codes = encode(data.render(np.concatenate([first, second])))
            diff = np.abs(codes[: fixed.size] - codes[fixed.size :]).reshape(-1, batch_size, codes.shape[1])
            features.append(diff.mean(axis=1))
        return np.concatenate(features), labels

    x_train, y_train = points(num_train)
    x_eval, y_eval = points(num_eval)
    if np.unique(y_train).size < 2:
        return float(np.mean(y_eval == y_train[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs' convergence notes on unscaled features
        model = LogisticRegression(max_iter=1000).fit(x_train, y_train)
    return float(model.score(x_eval, y_eval))


def factorvae_score(
    represent: Callable[[torch.Tensor], Any] | torch.nn.Module,
    sprites: GroundTruthData,
    *,
    num_train: int = 10_000,
    num_eval: int = 5_000,
    batch_size: int = 64,
    num_variance_estimate: int = 10_000,
    prune_threshold: float = 0.05,
    seed: int = 0,
) -> float:
    r"""FactorVAE score: accuracy of a majority-vote classifier that names the fixed factor
    from the code dimension of least normalised variance.

    The global variance s_j² of each code is estimated on ``num_variance_estimate`` random
    images; codes with s_j < ``prune_threshold`` are collapsed and ignored. One vote: draw
    a factor k, draw ``batch_size`` combinations sharing the k-th factor's value, and find
    d = argmin_j Var_batch(z_j) / s_j² over the active codes; the vote is (d, k). The
    classifier maps each code d to the factor with most training votes; the score is the
    share of ``num_eval`` new votes it gets right (0 when no code is active; chance ~1/F).

    References:
        Disentangling by Factorising (Kim & Mnih, ICML 2018), arXiv:1802.05983, §4;
        variance estimate and pruning as disentanglement_lib (threshold 0.05 on s_j).

    Arguments:
        represent: images → codes, or a vaekit model (see :func:`betavae_score`).
        sprites: the ground-truth data.
        num_train, num_eval: votes to build and to test the classifier (``batch_size`` images each).
        batch_size: images per vote.
        num_variance_estimate: images for the global variances (at least 2).
        prune_threshold: codes whose standard deviation is below it are collapsed.
        seed: seeds every draw.
    """
    encode, data, rng = _representation(represent), _ground_truth(sprites), np.random.default_rng(seed)
    num_train, num_eval = (_positive_int(n, v) for n, v in (("num_train", num_train), ("num_eval", num_eval)))
    num_variance_estimate = _int_at_least("num_variance_estimate", num_variance_estimate, 2)  # a variance needs 2
    batch_size = _int_at_least("batch_size", batch_size, 2)
    num_factors = len(data.factor_sizes)
    codes = _encode_in_chunks(encode, data, _sample(data, num_variance_estimate, rng))
    global_variance = codes.var(axis=0, ddof=1)
    active = np.flatnonzero(np.sqrt(global_variance) >= prune_threshold)
    if active.size == 0:
        return 0.0

    def votes(n: int) -> np.ndarray:
        counts = np.zeros((num_factors, codes.shape[1]), dtype=np.int64)
        labels = rng.integers(num_factors, size=n)
        per_chunk = max(1, _CHUNK // batch_size)
        for start in range(0, n, per_chunk):
            fixed = labels[start : start + per_chunk]
            factors = _sample(data, fixed.size * batch_size, rng).reshape(fixed.size, batch_size, num_factors)
            groups = np.arange(fixed.size)
            factors[groups, :, fixed] = factors[groups, 0, fixed][:, None]
            z = encode(data.render(factors.reshape(-1, num_factors))).reshape(fixed.size, batch_size, -1)
            ratio = z[:, :, active].var(axis=1, ddof=1) / global_variance[active]
            np.add.at(counts, (fixed, active[np.argmin(ratio, axis=1)]), 1)
        return counts

    train_votes = votes(num_train)
    classifier = np.argmax(train_votes, axis=0)  # the factor each code votes for most
    eval_votes = votes(num_eval)
    return float(eval_votes[classifier, np.arange(eval_votes.shape[1])].sum() / eval_votes.sum())


def sample_codes(
    represent: Callable[[torch.Tensor], Any] | torch.nn.Module,
    sprites: GroundTruthData,
    num: int,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``num`` random factor combinations and the codes of their images: ((num, D) float64, (num, F) int64)."""
    encode, data = _representation(represent), _ground_truth(sprites)
    factors = _sample(data, _positive_int("num", num), np.random.default_rng(seed))
    return _encode_in_chunks(encode, data, factors), factors


def disentanglement_scores(
    represent: Callable[[torch.Tensor], Any] | torch.nn.Module,
    sprites: GroundTruthData,
    *,
    num_codes: int = PAPER_SAMPLE_SIZES["num_codes"],
    num_test_codes: int = PAPER_SAMPLE_SIZES["num_test_codes"],
    num_train: int = PAPER_SAMPLE_SIZES["num_train"],
    num_eval: int = PAPER_SAMPLE_SIZES["num_eval"],
    num_variance_estimate: int = PAPER_SAMPLE_SIZES["num_variance_estimate"],
    dci_predictor: str = "lasso",
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, float]:
    """All five metrics of one representation, with disentanglement_lib's sample sizes by default.

    MIG, SAP and DCI share one sample of ``num_codes`` random images (MIG uses it alone;
    SAP and DCI fit on it and score on ``num_test_codes`` more); the β-VAE and FactorVAE
    scores use ``num_train``/``num_eval`` points (see their functions) and the FactorVAE
    score ``num_variance_estimate`` images for its variances. ``progress`` (e.g. ``print``)
    is told the name of each metric as it starts. See :data:`QUICK_SAMPLE_SIZES` for a
    cheaper setting.

    Returns:
        ``{"betavae_score", "factorvae_score", "mig", "sap", "dci_disentanglement",
        "dci_completeness", "dci_informativeness"}``.
    """
    say = progress or (lambda message: None)
    encode = _representation(represent)
    say(f"codes of {num_codes} + {num_test_codes} random images")
    codes, factors = sample_codes(encode, sprites, num_codes, seed=seed)
    codes_test, factors_test = sample_codes(encode, sprites, num_test_codes, seed=seed + 1)
    say("MIG, SAP, DCI")
    scores = {"mig": mig(codes, factors), "sap": sap(codes, factors, codes_test, factors_test)}
    d = dci(codes, factors, codes_test, factors_test, predictor=dci_predictor, seed=seed)
    scores.update({"dci_disentanglement": d["disentanglement"], "dci_completeness": d["completeness"],
                   "dci_informativeness": d["informativeness"]})
    say(f"β-VAE score ({num_train} + {num_eval} points)")
    scores["betavae_score"] = betavae_score(encode, sprites, num_train=num_train, num_eval=num_eval, seed=seed + 2)
    say(f"FactorVAE score ({num_train} + {num_eval} votes)")
    scores["factorvae_score"] = factorvae_score(encode, sprites, num_train=num_train, num_eval=num_eval,
                                                num_variance_estimate=num_variance_estimate, seed=seed + 3)
    order = ("betavae_score", "factorvae_score", "mig", "sap", "dci_disentanglement", "dci_completeness", "dci_informativeness")
    return {k: float(scores[k]) for k in order}


# -- helpers ------------------------------------------------------------------------------------
def _representation(represent: Any) -> Callable[[Any], np.ndarray]:
    """``represent`` as a function images → (B, D) float64 array; a vaekit model gives its posterior means."""
    if getattr(represent, "_vaekit_representation", False):
        return represent
    transform = getattr(represent, "transform", None)
    if isinstance(represent, torch.nn.Module) and callable(transform):
        model = represent

        def encode(images: Any) -> np.ndarray:
            x = torch.as_tensor(images, dtype=torch.float32).to(model.device)
            with torch.no_grad():
                was_training = model.training
                model.eval()
                try:
                    return model.transform(x).double().cpu().numpy()
                finally:
                    model.train(was_training)
    elif callable(represent):

        def encode(images: Any) -> np.ndarray:
            codes = represent(images)
            if isinstance(codes, torch.Tensor):
                codes = codes.detach().cpu().double().numpy()
            codes = np.asarray(codes, dtype=np.float64)
            n = len(images)
            if codes.ndim == 1:
                codes = codes[:, None]
            if codes.ndim != 2 or codes.shape[0] != n:
                raise DataError(f"represent must map {n} images to codes of shape ({n}, D), got {codes.shape}")
            if not np.all(np.isfinite(codes)):
                raise DataError("represent returned non-finite codes (NaN or infinity)")
            return codes
    else:
        raise ConfigError(f"represent must be a function from images to codes or a vaekit model, got {type(represent).__name__}")
    encode._vaekit_representation = True  # type: ignore[attr-defined]
    return encode


def _ground_truth(data: Any) -> GroundTruthData:
    """The renderer of a :class:`~vaekit.data.SpritesDataset`, or ``data`` itself if it has the protocol."""
    sprites = getattr(data, "sprites", None)
    if sprites is not None and not callable(getattr(data, "render", None)):
        data = sprites
    methods = (getattr(data, "sample_factors", None), getattr(data, "render", None))
    if not (hasattr(data, "factor_sizes") and all(callable(m) for m in methods)):
        raise ConfigError(f"need ground-truth data with factor_sizes, sample_factors(n, rng) and render(indices) "
                          f"(e.g. vaekit.data.Sprites(size)), got {type(data).__name__}")
    return data


def _sample(data: GroundTruthData, n: int, rng: np.random.Generator) -> np.ndarray:
    return np.asarray(data.sample_factors(n, rng), dtype=np.int64).reshape(n, len(data.factor_sizes)).copy()


def _encode_in_chunks(encode: Callable[[Any], np.ndarray], data: GroundTruthData, factors: np.ndarray) -> np.ndarray:
    return np.concatenate([encode(data.render(factors[i : i + _CHUNK])) for i in range(0, factors.shape[0], _CHUNK)])


def _lasso_importance(z: np.ndarray, v: np.ndarray, z_test: np.ndarray, v_test: np.ndarray, alpha: float):
    from sklearn.linear_model import Lasso

    if not alpha >= 0:
        raise ConfigError(f"dci alpha must be ≥ 0, got {alpha}")
    mean, std = z.mean(axis=0), z.std(axis=0)
    std = np.where(std > 0, std, 1.0)  # a constant code standardises to 0 and gets no weight
    zs, zs_test = (z - mean) / std, (z_test - mean) / std
    importance = np.zeros((z.shape[1], v.shape[1]))
    errors_train, errors_test = [], []
    for k in range(v.shape[1]):
        mu, sd = v[:, k].mean(), v[:, k].std()
        if sd == 0:
            errors_train.append(0.0)
            errors_test.append(0.0)
            continue
        target, target_test = (v[:, k] - mu) / sd, (v_test[:, k] - mu) / sd
        model = Lasso(alpha=alpha).fit(zs, target)
        importance[:, k] = np.abs(model.coef_)
        errors_train.append(_nrmse(model.predict(zs), target))
        errors_test.append(_nrmse(model.predict(zs_test), target_test))
    return importance, float(np.mean(errors_train)), float(np.mean(errors_test))


def _gbt_importance(z: np.ndarray, v: np.ndarray, z_test: np.ndarray, v_test: np.ndarray, seed: int):
    from sklearn.ensemble import GradientBoostingClassifier

    importance = np.zeros((z.shape[1], v.shape[1]))
    errors_train, errors_test = [], []
    for k in range(v.shape[1]):
        if np.unique(v[:, k]).size < 2:
            errors_train.append(float(np.mean(v[:, k] != v[0, k])))
            errors_test.append(float(np.mean(v_test[:, k] != v[0, k])))
            continue
        model = GradientBoostingClassifier(random_state=seed).fit(z, v[:, k])
        importance[:, k] = np.abs(model.feature_importances_)
        errors_train.append(float(np.mean(model.predict(z) != v[:, k])))
        errors_test.append(float(np.mean(model.predict(z_test) != v_test[:, k])))
    return importance, float(np.mean(errors_train)), float(np.mean(errors_test))


def _nrmse(prediction: np.ndarray, target: np.ndarray) -> float:
    """√mean((ŷ − v)²) / std(v) on the given sample (v standardised on the training sample)."""
    sd = target.std()
    rmse = math.sqrt(float(np.mean((prediction - target) ** 2)))
    return rmse / sd if sd > 0 else rmse


def _normalised_entropy(r: np.ndarray, axis: int) -> np.ndarray:
    """Entropy of r normalised along ``axis``, to the base of that axis' length (uniform → 1; zero rows → 1)."""
    n = r.shape[axis]
    if n == 1:
        return np.zeros(r.shape[1 - axis])
    sums = r.sum(axis=axis, keepdims=True)
    p = np.where(sums > 0, r / np.where(sums > 0, sums, 1.0), 1.0 / n)
    terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -terms.sum(axis=axis) / math.log(n)


def _r_squared(a: np.ndarray, b: np.ndarray) -> float:
    cov = np.cov(a, b, ddof=1)
    if cov[0, 0] <= 1e-12 or cov[1, 1] <= 0:
        return 0.0
    return float(cov[0, 1] ** 2 / (cov[0, 0] * cov[1, 1]))


def _entropy(labels: np.ndarray) -> float:
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def _train_test(z, v, z_test, v_test, test_fraction: float, seed: int):
    """The fit and test samples: the given test arrays, or a seeded hold-out of (z, v)."""
    if (z_test is None) != (v_test is None):
        raise ConfigError("give both codes_test and factors_test, or neither")
    if z_test is not None:
        z_test, v_test = _codes_and_factors(z_test, v_test, discrete=v.dtype.kind in "iu")
        if z_test.shape[1] != z.shape[1] or v_test.shape[1] != v.shape[1]:
            raise DataError(f"the test codes/factors have {z_test.shape[1]}/{v_test.shape[1]} columns, "
                            f"the training ones {z.shape[1]}/{v.shape[1]}; give the same representation and factors")
        return z, v, z_test, v_test
    if not 0 < test_fraction < 1:
        raise ConfigError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    n_test = int(round(z.shape[0] * test_fraction))
    if not 0 < n_test < z.shape[0]:
        raise DataError(f"{z.shape[0]} examples cannot be split into fit and test parts; give more examples")
    order = np.random.default_rng(seed).permutation(z.shape[0])
    fit, test = order[n_test:], order[:n_test]
    return z[fit], v[fit], z[test], v[test]


def _codes_and_factors(codes: Any, factors: Any, discrete: bool = True) -> tuple[np.ndarray, np.ndarray]:
    z, v = _real_matrix(codes, "codes"), _real_matrix(factors, "factors")
    if z.shape[0] != v.shape[0]:
        raise DataError(f"codes have {z.shape[0]} rows but factors {v.shape[0]}; give one row of each per example")
    if z.shape[0] < 2:
        raise DataError(f"need at least 2 examples, got {z.shape[0]}")
    if discrete:
        if not np.array_equal(v, np.round(v)):
            raise DataError("factors must be discrete indices (integers), got non-integer values; "
                            "pass factor indices (e.g. SpritesDataset.factor_indices), not factor values")
        v = v.astype(np.int64)
    return z, v


def _real_matrix(a: Any, name: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise DataError(f"{name} must be numeric, got dtype {a.dtype}")
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[1] == 0:
        raise DataError(f"{name} must be a 2-d array (N, columns), got shape {a.shape}")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise DataError(f"{name} has non-finite values (NaN or infinity)")
    return a


def _positive_int(name: str, value: Any) -> int:
    return _int_at_least(name, value, 1)


def _int_at_least(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"{name} must be an integer ≥ {low}, got {value!r}")
    return int(value)
