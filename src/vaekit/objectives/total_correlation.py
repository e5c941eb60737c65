r"""The β-TC decomposition of the KL: index-code MI, total correlation and dimension-wise KL.

Averaged over the data, the KL term of the ELBO splits into three (Chen et al. 2018, §3):

    E_p(x)[KL(q(z|x) ‖ p(z))] = I_q(x; z)                        index-code MI
                              + KL(q(z) ‖ Π_d q(z_d))            total correlation (TC)
                              + Σ_d KL(q(z_d) ‖ p(z_d))           dimension-wise KL

where q(z) = E_p(x)[q(z|x)] is the aggregate posterior. q(z) and its marginals q(z_d) are
estimated on the minibatch from the matrix log q(z_i | x_j) of every code against every
posterior in the batch (minibatch weighted or stratified sampling, Appendix C).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch.distributions import Distribution, Independent, MultivariateNormal, Normal

from vaekit.errors import ConfigError
from vaekit.objectives.posterior_sample import PosteriorSample

if TYPE_CHECKING:  # pragma: no cover
    from vaekit.models.model import LatentVariableModel

__all__ = [
    "SAMPLING",
    "TotalCorrelationPenalty",
    "log_density_matrix",
    "log_aggregate_density",
    "stratified_log_weights",
    "total_correlation_decomposition",
]

SAMPLING = ("mws", "mss")
"""Estimators of log q(z): minibatch weighted sampling, minibatch stratified sampling."""


def _gaussian_marginals(q: Distribution) -> Normal:
    if isinstance(q, Independent) and isinstance(q.base_dist, Normal) and q.reinterpreted_batch_ndims == 1:
        return q.base_dist
    if isinstance(q, MultivariateNormal):
        return Normal(q.loc, q.covariance_matrix.diagonal(dim1=-2, dim2=-1).sqrt(), validate_args=False)
    raise ConfigError(
        f"the total-correlation decomposition needs a Gaussian posterior (diagonal or full covariance), got {type(q).__name__}"
    )


def log_density_matrix(q: Distribution, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""log q(z_i | x_j) for every code z_i against every posterior q(·|x_j) of the batch.

    Returns the joint densities, shape (B, B), and those of each coordinate's marginal
    q(z_{i,d} | x_j), shape (B, B, D); row i is the code, column j the posterior.
    Needs a Gaussian posterior (its marginals are Normal).
    """
    marginals = _gaussian_marginals(q)
    per_dim = Normal(marginals.loc.unsqueeze(0), marginals.scale.unsqueeze(0), validate_args=False).log_prob(z.unsqueeze(1))
    if isinstance(q, MultivariateNormal):
        joint = q.log_prob(z.unsqueeze(1))
    else:
        joint = per_dim.sum(-1)
    return joint, per_dim


def stratified_log_weights(batch_size: int, dataset_size: int, dtype: torch.dtype = torch.float32, device: torch.device | None = None) -> torch.Tensor:
    r"""log W (B, B) of minibatch stratified sampling: q̂(z_i) = Σ_j W_ij q(z_i | x_j).

    With M = B − 1 other examples in the batch, row i weighs its own posterior by 1/N, one
    other example (j = i + 1 mod B) by (N − M)/(N M) and the remaining M − 1 by 1/M; each row
    sums to 1 (Chen et al. 2018, Appendix C.2, with the stratum assigned cyclically so every
    row gets one).
    """
    n, m = dataset_size, batch_size - 1
    if m < 1:
        raise ConfigError("minibatch stratified sampling needs batches of at least 2 examples")
    if n < m:
        raise ConfigError(f"dataset_size ({n}) is smaller than the batch ({batch_size}); set dataset_size to the number of training examples")
    w = torch.full((batch_size, batch_size), 1.0 / m, dtype=torch.float64)
    rows = torch.arange(batch_size)
    w[rows, rows] = 1.0 / n
    w[rows, (rows + 1) % batch_size] = (n - m) / (n * m)
    return w.log().to(dtype=dtype, device=device)


def log_aggregate_density(log_q_matrix: torch.Tensor, dataset_size: int, sampling: str = "mws") -> torch.Tensor:
    r"""Minibatch estimate of log q(z_i) from log q(z_i | x_j), shape (B, B, ...) -> (B, ...).

    Minibatch weighted sampling (MWS, Chen et al. 2018, eq. 4):

        log q(z_i) ≈ log Σ_j q(z_i | x_j) − log(N·B)

    minibatch stratified sampling (MSS): log Σ_j W_ij q(z_i | x_j) with the weights of
    :func:`stratified_log_weights` (a batch of one falls back to MWS). Trailing dimensions
    (one per latent coordinate) are estimated the same way, giving log q(z_{i,d}).
    """
    if sampling not in SAMPLING:
        raise ConfigError(f"unknown sampling {sampling!r}; choose one of {', '.join(SAMPLING)}")
    b = log_q_matrix.shape[0]
    if sampling == "mss" and b >= 2:
        log_w = stratified_log_weights(b, dataset_size, log_q_matrix.dtype, log_q_matrix.device)
        log_w = log_w.view(b, b, *([1] * (log_q_matrix.dim() - 2)))
        return torch.logsumexp(log_q_matrix + log_w, dim=1)
    return torch.logsumexp(log_q_matrix, dim=1) - math.log(dataset_size * b)


def total_correlation_decomposition(
    q: Distribution, z: torch.Tensor, prior: Distribution, dataset_size: int, sampling: str = "mws"
) -> dict[str, torch.Tensor]:
    r"""Per-example estimates of the three terms, each of shape (B,):

        mi           = log q(z_i | x_i) − log q̂(z_i)
        tc           = log q̂(z_i) − Σ_d log q̂(z_{i,d})
        dimension_kl = Σ_d log q̂(z_{i,d}) − Σ_d log p(z_{i,d})

    with q̂ the minibatch estimate (:func:`log_aggregate_density`). They telescope: their sum
    is log q(z_i | x_i) − log p(z_i), the one-sample estimate of KL(q(z|x_i) ‖ p(z)).
    The prior must factorise over coordinates (an ``Independent(Normal)``, as N(0, I)).

    Arguments:
        q: Gaussian posterior of the batch, batch shape (B,).
        z: codes z_i ~ q(z | x_i), shape (B, D).
        prior: p(z), factorised.
        dataset_size: N, the number of training examples.
        sampling: "mws" or "mss".
    """
    if not (isinstance(prior, Independent) and isinstance(prior.base_dist, Normal)):
        raise ConfigError(f"the total-correlation decomposition needs a factorised Gaussian prior, got {type(prior).__name__}")
    if int(dataset_size) != dataset_size or dataset_size < 1:
        raise ConfigError(f"dataset_size must be a positive integer (the number of training examples), got {dataset_size}")
    joint, per_dim = log_density_matrix(q, z)
    log_qz_x = joint.diagonal()
    log_qz = log_aggregate_density(joint, int(dataset_size), sampling)
    log_qz_product = log_aggregate_density(per_dim, int(dataset_size), sampling).sum(-1)
    log_pz = prior.base_dist.log_prob(z).sum(-1)
    return {"mi": log_qz_x - log_qz, "tc": log_qz - log_qz_product, "dimension_kl": log_qz_product - log_pz}


class TotalCorrelationPenalty:
    r"""β-TC penalty: α · MI + β · TC + γ · dimension-wise KL, estimated on the minibatch.

    Used with a KL weight of 0 it replaces the KL of the ELBO, giving the β-TCVAE loss

        −log p(x|z) + α I_q(x; z) + β KL(q(z) ‖ Π_d q(z_d)) + γ Σ_d KL(q(z_d) ‖ p(z_d))

    (α = β = γ = 1 is the ELBO, up to the estimator). Both estimators need N, the size of
    the training set: ``dataset_size``, or when it is None the size ``vaekit.fit`` records on
the model (``model.dataset_size``), or failing both the batch itself. MWS gives
    every batch posterior the weight 1/(N·B), so its log q̂(z) sits between log B and log N
    nats below the truth (and each log q̂(z_d) likewise): the MI, TC and dimension-wise
    KL it reports carry offsets of that order (at initialisation, TC ≈ (D − 1) log N),
    which cancel in their sum. MSS weights sum to one: read the terms' values with "mss".

    "Batch" is what the objective sees: under DDP (``torchrun``) each process estimates
    q(z) from its own batch of B = ``batch_size`` (the B × B matrix of its codes against its
    posteriors) with N the whole training set's size, since each process's batch is a
    uniform draw from all of it; the averaged gradients are those of the mean of the
    per-process penalties, as one process at the same per-process batch would give.

    Arguments:
        alpha: weight α of the index-code mutual information.
        beta: weight β of the total correlation.
        gamma: weight γ of the dimension-wise KL.
        dataset_size: N, the number of training examples; None: the training set ``fit`` saw.
        sampling: "mws" (minibatch weighted) or "mss" (minibatch stratified).

    Terms returned (batch means, before weights): ``mi``, ``tc``, ``dimension_kl``.

    References:
        Isolating Sources of Disentanglement in Variational Autoencoders (Chen, Li, Grosse &
        Duvenaud, NeurIPS 2018), arXiv:1802.04942, §3 and Appendix C.

    Example:
        >>> from vaekit.objectives import ELBO
        >>> objective = ELBO([TotalCorrelationPenalty(beta=6.0, dataset_size=60000)], beta=0.0)
    """

    def __init__(self, alpha: float = 1.0, beta: float = 6.0, gamma: float = 1.0, dataset_size: int | None = None, sampling: str = "mws"):
        for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
            if value < 0:
                raise ConfigError(f"{name} must be ≥ 0, got {value}")
        if sampling not in SAMPLING:
            raise ConfigError(f"unknown sampling {sampling!r}; choose one of {', '.join(SAMPLING)}")
        if dataset_size is not None and (int(dataset_size) != dataset_size or dataset_size < 1):
            raise ConfigError(f"dataset_size must be a positive integer (the number of training examples), got {dataset_size}")
        self.alpha, self.beta, self.gamma = float(alpha), float(beta), float(gamma)
        self.dataset_size = None if dataset_size is None else int(dataset_size)
        self.sampling = sampling

    def __call__(self, model: "LatentVariableModel", sample: PosteriorSample) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        n = self.dataset_size or getattr(model, "dataset_size", None) or sample.z.shape[0]
        terms = {k: v.mean() for k, v in total_correlation_decomposition(sample.q, sample.z, sample.prior, n, self.sampling).items()}
        penalty = self.alpha * terms["mi"] + self.beta * terms["tc"] + self.gamma * terms["dimension_kl"]
        return penalty, terms
