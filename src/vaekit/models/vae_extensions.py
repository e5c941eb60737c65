"""VAE extensions I (survey §2.12): β-VAE and capacity, β-TC-VAE, IWAE, MIWAE, Info-VAE, DIP-VAE, LogCosh-VAE.

Each preset is the VAE composition (``spec.build``) with an objective assembled from
``vaekit.objectives``: the ELBO's KL weight, a regulariser of the posterior sample, a
reconstruction cost or the importance-weighted bound. No preset re-implements the VAE.
"""

from __future__ import annotations

from typing import Any

from vaekit.distributions import FLOW_POSTERIORS
from vaekit.errors import ConfigError
from vaekit.models.model import LatentVariableModel
from vaekit.models.posterior_options import (
    DEFAULT_FLOW_STEPS,
    document_gaussian_posterior_options,
    document_posterior_options,
    posterior_build_options,
)
from vaekit.models.registry import register
from vaekit.models.spec import ModelSpec
from vaekit.objectives import (
    DIPPenalty,
    ImportanceWeightedBound,
    KLCapacity,
    LogCoshReconstruction,
    MMDPenalty,
    ELBO,
    TotalCorrelationPenalty,
)

__all__ = ["beta_vae", "beta_tc_vae", "iwae", "miwae", "info_vae", "dip_vae", "logcosh_vae"]


def _optional_float(name: str, value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} takes a number or None, got {value!r}") from None


@register("beta_vae", family="variational")
@document_posterior_options
def beta_vae(
    spec: ModelSpec,
    *,
    posterior: str = "diagonal",
    flow_steps: int = DEFAULT_FLOW_STEPS,
    beta: float = 4.0,
    capacity: float = 0.0,
    capacity_steps: int = 100_000,
    gamma: float = 1000.0,
) -> LatentVariableModel:
    r"""β-VAE: the ELBO with KL weight β (Higgins), or a KL capacity raised over training (Burgess).

    Higgins et al.:  loss = −log p(x|z) + β · KL(q(z|x) ‖ p(z)); β > 1 trades reconstruction
    for a more factorised code. With ``capacity`` = C_max > 0 (Burgess et al.):

        loss = −log p(x|z) + γ · |KL(q(z|x) ‖ p(z)) − C_t|,   C_t = C_max · min(1, t / capacity_steps)

    with t the optimisation step and the KL the batch mean (β is then unused). Terms:
    ``loss``, ``reconstruction``, ``kl``, ``elbo``, and ``capacity`` (C_t) with a capacity.

    References:
        β-VAE: Learning Basic Visual Concepts with a Constrained Variational Framework
        (Higgins et al., ICLR 2017). Understanding disentangling in β-VAE (Burgess et al.,
        2018), arXiv:1804.03599.

    Options:
        beta: KL weight β (1 is the VAE); unused when capacity is on.
        capacity: C_max, the KL target in nats reached after capacity_steps (0 or None: off, plain β-VAE).
        capacity_steps: steps over which the target C rises linearly from 0 to C_max.
        gamma: γ, the weight of |KL − C| when capacity is on.
    """
    objective = ELBO([KLCapacity(float(capacity), capacity_steps, gamma)], beta=0.0) if capacity else ELBO(beta=beta)
    return spec.build(objective, **posterior_build_options(posterior, flow_steps))


@register("beta_tc_vae", family="variational")
@document_gaussian_posterior_options
def beta_tc_vae(
    spec: ModelSpec,
    *,
    posterior: str = "diagonal",
    alpha: float = 1.0,
    beta: float = 6.0,
    gamma: float = 1.0,
    sampling: str = "mws",
    dataset_size: int | None = None,
) -> LatentVariableModel:
    r"""β-TC-VAE: the KL split into index-code MI, total correlation and dimension-wise KL, weighted α, β, γ.

        loss = −log p(x|z) + α I_q(x; z) + β KL(q(z) ‖ Π_d q(z_d)) + γ Σ_d KL(q(z_d) ‖ p(z_d))

    with the aggregate posterior q(z) and its marginals estimated on the minibatch by
    minibatch weighted ("mws") or stratified ("mss") sampling. The estimators weigh the
    batch by the training-set size N, which ``vaekit.fit`` records (or set ``dataset_size``). MWS
    terms carry offsets of order log N that cancel in their sum; "mss" reports values near
    the true MI, TC and dimension-wise KL.
    Needs a Gaussian posterior ("diagonal" or "full_covariance": the estimators evaluate
    q(z_i | x_j) for every pair in the batch, which a flow cannot do cheaply) and the N(0, I)
    prior (``prior="vamp"`` is refused: the dimension-wise KL needs a factorised p(z)). Terms: ``loss``,
    ``reconstruction``, ``kl`` (analytic, unweighted), ``elbo``, ``mi``, ``tc``, ``dimension_kl``.

    References:
        Isolating Sources of Disentanglement in Variational Autoencoders (Chen, Li, Grosse &
        Duvenaud, NeurIPS 2018), arXiv:1802.04942.

    Options:
        alpha: weight α of the index-code mutual information I_q(x; z).
        beta: weight β of the total correlation.
        gamma: weight γ of the dimension-wise KL.
        sampling: estimator of log q(z): "mws" (minibatch weighted) or "mss" (minibatch stratified).
        dataset_size: N, the number of training examples; None: the training set's size, recorded by vaekit.fit (the batch's before any fit).
    """
    if posterior in FLOW_POSTERIORS:
        raise ConfigError(f'beta_tc_vae needs a Gaussian posterior ("diagonal" or "full_covariance"), got {posterior!r}')
    if spec.prior != "standard":
        raise ConfigError(f'beta_tc_vae needs prior="standard": its dimension-wise KL compares each q(z_d) with a factorised '
                          f'N(0, 1) prior, which prior={spec.prior!r} (a mixture) is not')
    penalty = TotalCorrelationPenalty(alpha=alpha, beta=beta, gamma=gamma, dataset_size=dataset_size, sampling=sampling)
    return spec.build(ELBO([penalty], beta=0.0), **posterior_build_options(posterior, DEFAULT_FLOW_STEPS))


@register("iwae", family="variational")
@document_posterior_options
def iwae(spec: ModelSpec, *, posterior: str = "diagonal", flow_steps: int = DEFAULT_FLOW_STEPS, num_samples: int = 5) -> LatentVariableModel:
    r"""Importance-weighted autoencoder: the k-sample bound E[log (1/k) Σ_i p(x, z_i) / q(z_i|x)].

    loss = −mean_b [ logsumexp_i log w_{i,b} − log k ], gradients through every weight.
    k = 1 is the VAE; the bound tightens toward log p(x) as k grows. Terms: ``loss``,
    ``iwae`` (the bound), ``elbo`` (mean log w), and the ELBO's parts at the same samples,
    ``reconstruction`` and ``kl`` (Monte Carlo), for monitoring.

    References:
        Importance Weighted Autoencoders (Burda, Grosse & Salakhutdinov, ICLR 2016), arXiv:1509.00519.

    Options:
        num_samples: k, importance samples per example.
    """
    return spec.build(ImportanceWeightedBound(num_samples=num_samples), **posterior_build_options(posterior, flow_steps))


@register("miwae", family="variational")
@document_posterior_options
def miwae(
    spec: ModelSpec, *, posterior: str = "diagonal", flow_steps: int = DEFAULT_FLOW_STEPS, num_samples: int = 8, num_bounds: int = 8
) -> LatentVariableModel:
    r"""MIWAE: the average of M independent k-sample importance-weighted bounds.

    loss = −(1/M) Σ_m mean_b [ logsumexp_i log w_{m,i,b} − log k ] over M·k draws. Keeps the
    inference network's gradient signal that a single large-k bound loses. Terms: ``loss``,
    ``iwae`` (the averaged bound), ``elbo``, ``reconstruction``, ``kl``.

    References:
        Tighter Variational Bounds are Not Necessarily Better (Rainforth et al., ICML 2018), arXiv:1802.04537.

    Options:
        num_samples: k, importance samples per bound.
        num_bounds: M, independent bounds averaged.
    """
    objective = ImportanceWeightedBound(num_samples=num_samples, num_bounds=num_bounds)
    return spec.build(objective, **posterior_build_options(posterior, flow_steps))


@register("info_vae", family="variational")
@document_posterior_options
def info_vae(
    spec: ModelSpec,
    *,
    posterior: str = "diagonal",
    flow_steps: int = DEFAULT_FLOW_STEPS,
    alpha: float = 0.0,
    weight: float = 1000.0,
    kernel: str = "rbf",
    kernel_scale: float | None = None,
) -> LatentVariableModel:
    r"""Info-VAE: the ELBO with KL weight 1 − α plus an MMD(q(z) ‖ p(z)) term weighted λ + α − 1.

        loss = −log p(x|z) + (1 − α) KL(q(z|x) ‖ p(z)) + (α + λ − 1) MMD²(q(z), p(z))

    MMD² is the unbiased estimate between the batch's codes and as many prior draws, with
    k = exp(−‖a − b‖²/C) ("rbf") or C/(C + ‖a − b‖²) ("imq"). α = 1 removes the KL (the
    MMD-VAE). MMD² is small (≲ 1), so λ must be large for it to matter. Needs α ≤ 1 (a
    negative KL weight makes the loss unbounded below) and α + λ ≥ 1. Terms: ``loss``,
    ``reconstruction``, ``kl``, ``elbo``, ``mmd``.

    References:
        InfoVAE: Information Maximizing Variational Autoencoders (Zhao, Song & Ermon, AAAI 2019),
        arXiv:1706.02262.

    Options:
        alpha: α; the KL weight is 1 − α (≤ 1; 1 drops the KL).
        weight: λ; the MMD weight is α + λ − 1.
        kernel: "rbf" or "imq".
        kernel_scale: C of the kernel; None for 2·D·σ² (2 × latent_dim for the N(0, I) prior).
    """
    if alpha > 1:
        raise ConfigError(f"alpha must be ≤ 1 (the KL weight 1 − alpha would be negative), got {alpha}")
    if alpha + weight - 1 < 0:
        raise ConfigError(f"alpha + weight − 1 (the MMD weight) must be ≥ 0, got {alpha + weight - 1}")
    penalty = MMDPenalty(weight=alpha + weight - 1, kernel=kernel, scale=_optional_float("kernel_scale", kernel_scale))
    return spec.build(ELBO([penalty], beta=1.0 - alpha), **posterior_build_options(posterior, flow_steps))


@register("dip_vae", family="variational")
@document_posterior_options
def dip_vae(
    spec: ModelSpec,
    *,
    posterior: str = "diagonal",
    flow_steps: int = DEFAULT_FLOW_STEPS,
    dip_type: str = "i",
    weight: float = 10.0,
    lambda_diag: float | None = None,
    lambda_offdiag: float | None = None,
) -> LatentVariableModel:
    r"""DIP-VAE (types I and II): the ELBO plus a penalty pulling the aggregate posterior's covariance to I.

        loss = −ELBO + λ_od Σ_{i≠j} C_ij² + λ_d Σ_i (C_ii − 1)²  =  −ELBO + λ_od · dip

    with C = Cov_p(x)[μ(x)] (type I) or E_p(x)[Σ(x)] + Cov_p(x)[μ(x)] (type II) on the
    minibatch, λ_od = ``weight``. Terms: ``loss``, ``reconstruction``, ``kl``, ``elbo``,
    ``dip`` = Σ_{i≠j} C_ij² + (λ_d/λ_od) Σ_i (C_ii − 1)² (before the weight), and its parts
    ``dip_offdiag``, ``dip_diag``.

    References:
        Variational Inference of Disentangled Latent Concepts from Unlabeled Observations
        (Kumar, Sattigeri & Balakrishnan, ICLR 2018), arXiv:1711.00848.

    Options:
        dip_type: "i" (covariance of the posterior means) or "ii" (of the aggregate posterior).
        weight: λ_od > 0, weight of the squared off-diagonal covariances.
        lambda_diag: λ_d, weight of the squared diagonal deviations from 1; None picks
            10·λ_od for type I and λ_od for type II (the paper's choice).
        lambda_offdiag: the paper's name for weight (λ_od); give one or the other.
    """
    dip_type = str(dip_type).lower()
    if lambda_offdiag is not None:
        if weight != 10.0 and float(lambda_offdiag) != weight:
            raise ConfigError(f"weight ({weight}) and lambda_offdiag ({lambda_offdiag}) name the same λ_od; give one")
        weight = float(lambda_offdiag)
    lambda_d = _optional_float("lambda_diag", lambda_diag)
    if lambda_d is None:
        lambda_d = 10.0 * weight if dip_type == "i" else weight
    penalty = DIPPenalty(dip_type=dip_type, weight=weight, lambda_diag=lambda_d)
    return spec.build(ELBO([penalty]), **posterior_build_options(posterior, flow_steps))


@register("logcosh_vae", family="variational")
@document_posterior_options
def logcosh_vae(
    spec: ModelSpec, *, posterior: str = "diagonal", flow_steps: int = DEFAULT_FLOW_STEPS, a: float = 10.0, beta: float = 1.0
) -> LatentVariableModel:
    r"""LogCosh-VAE: the reconstruction Σ_j (1/a) log cosh(a (x_j − x̂_j)) with x̂ the decoder mean, plus β·KL.

        loss = Σ_j (1/a) log cosh(a (x_j − x̂_j)) + β · KL(q(z|x) ‖ p(z))

    ≈ squared error for small residuals, ≈ absolute error for large ones; computed stably as
    |t| + log1p(exp(−2|t|)) − log 2. The likelihood only supplies x̂ (its mean); the cost is
    not a log-density, so no ``elbo`` term. Terms: ``loss``, ``reconstruction`` (the log-cosh
    cost), ``kl``.

    References:
        Log Hyperbolic Cosine Loss Improves Variational Auto-Encoder (ICLR 2019 submission, OpenReview).

    Options:
        a: sharpness a > 0 of the log-cosh (large: closer to the absolute error).
        beta: KL weight β.
    """
    objective = ELBO(beta=beta, reconstruction=LogCoshReconstruction(a=a))
    return spec.build(objective, **posterior_build_options(posterior, flow_steps))
