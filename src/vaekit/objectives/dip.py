r"""DIP-VAE: penalise the covariance of the aggregate posterior away from the identity.

The aggregate posterior q(z) = E_p(x)[q(z|x)] of a disentangled code should have
uncorrelated coordinates. Kumar et al. match its covariance (or that of the posterior
means) to the identity on the minibatch:

    type I:   C = Cov_p(x)[μ(x)]
    type II:  C = Cov_q(z)[z] = E_p(x)[Σ(x)] + Cov_p(x)[μ(x)]

    penalty = λ_od Σ_{i≠j} C_ij² + λ_d Σ_i (C_ii − 1)²

with μ(x), Σ(x) the mean and covariance of q(z|x) and the covariance over the batch taken
with 1/B (E[μμᵀ] − E[μ]E[μ]ᵀ, the maximum-likelihood estimate).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch.distributions import Distribution, Independent, MultivariateNormal, Normal

from vaekit.distributions import latent_code
from vaekit.errors import ConfigError
from vaekit.objectives.posterior_sample import PosteriorSample

if TYPE_CHECKING:  # pragma: no cover
    from vaekit.models.model import LatentVariableModel

__all__ = ["DIP_TYPES", "DIPPenalty", "batch_covariance", "dip_covariance", "dip_penalty"]

DIP_TYPES = ("i", "ii")


def batch_covariance(v: torch.Tensor) -> torch.Tensor:
    """Covariance (D, D) of the rows of v (B, D) with 1/B: E[v vᵀ] − E[v] E[v]ᵀ."""
    centred = v - v.mean(0, keepdim=True)
    return centred.T @ centred / v.shape[0]


def _posterior_covariances(q: Distribution) -> torch.Tensor | None:
    """Σ(x) of each posterior (B, D, D) for Gaussian q, else None."""
    if isinstance(q, Independent) and isinstance(q.base_dist, Normal) and q.reinterpreted_batch_ndims == 1:
        return torch.diag_embed(q.base_dist.scale.pow(2))
    if isinstance(q, MultivariateNormal):
        return q.covariance_matrix
    return None


def dip_covariance(q: Distribution, dip_type: str = "i", z: torch.Tensor | None = None) -> torch.Tensor:
    r"""The minibatch covariance C (D, D) that DIP-VAE drives to the identity.

    Type ``"i"``: Cov_p(x)[μ(x)] of the posterior means. Type ``"ii"``: E_p(x)[Σ(x)] + Cov_p(x)[μ(x)],
    the covariance of the aggregate posterior. For a posterior without closed-form moments
    (a flow) type I uses its code (:func:`~vaekit.distributions.latent_code`) for μ(x) and
    type II the covariance of the batch's codes ``z``, one sample of q(z).
    """
    if dip_type not in DIP_TYPES:
        raise ConfigError(f"unknown dip_type {dip_type!r}; choose one of {', '.join(DIP_TYPES)}")
    sigma = _posterior_covariances(q)
    mu = q.mean if sigma is not None else latent_code(q)
    if dip_type == "i":
        return batch_covariance(mu)
    if sigma is None:
        if z is None:
            raise ConfigError("DIP-VAE type II with a non-Gaussian posterior needs the codes z")
        return batch_covariance(z)
    return sigma.mean(0) + batch_covariance(mu)


def dip_penalty(covariance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""(Σ_{i≠j} C_ij², Σ_i (C_ii − 1)²): the off-diagonal and diagonal parts of the DIP penalty."""
    diagonal = covariance.diagonal()
    off_diagonal = (covariance - torch.diag_embed(diagonal)).pow(2).sum()  # not Σ C² − Σ C_ii²: it cancels, even below 0
    return off_diagonal, (diagonal - 1).pow(2).sum()


class DIPPenalty:
    r"""weight · [Σ_{i≠j} C_ij² + r Σ_i (C_ii − 1)²] on the minibatch covariance C of :func:`dip_covariance`.

    With λ_od = ``weight`` and λ_d = ``lambda_diag`` = r·λ_od this is the DIP-VAE loss of
    Kumar et al.,  −ELBO + λ_od Σ_{i≠j} C_ij² + λ_d Σ_i (C_ii − 1)².

    "Batch" is what the objective sees: under DDP (``torchrun``) each process takes the
    covariance of its own batch of ``batch_size`` posteriors, and the averaged gradients are
    those of the mean of the per-process penalties (not of the penalty of the covariance
    over all processes' batches): N processes behave as one at the same per-process batch.

    Arguments:
        dip_type: "i" (covariance of the posterior means) or "ii" (of the aggregate posterior).
        weight: λ_od > 0, the weight of the penalty (of its off-diagonal part).
        lambda_diag: λ_d ≥ 0, the weight of the diagonal part.

    Terms returned, before ``weight``: ``dip`` = Σ_{i≠j} C_ij² + (λ_d/λ_od) Σ_i (C_ii − 1)²
    (the loss adds weight · dip), and its parts ``dip_offdiag`` = Σ_{i≠j} C_ij² and
    ``dip_diag`` = Σ_i (C_ii − 1)².

    References:
        Variational Inference of Disentangled Latent Concepts from Unlabeled Observations
        (Kumar, Sattigeri & Balakrishnan, ICLR 2018), arXiv:1711.00848, §3.

    Example:
        >>> from vaekit.objectives import ELBO
        >>> objective = ELBO([DIPPenalty("ii", weight=10.0, lambda_diag=10.0)])
    """

    def __init__(self, dip_type: str = "i", weight: float = 10.0, lambda_diag: float = 100.0):
        if dip_type not in DIP_TYPES:
            raise ConfigError(f"unknown dip_type {dip_type!r}; choose one of {', '.join(DIP_TYPES)}")
        if not weight > 0 or not lambda_diag >= 0:
            raise ConfigError(f"DIP needs weight (λ_od) > 0 and lambda_diag (λ_d) ≥ 0, got {weight} and {lambda_diag} "
                              "(for no penalty at all, use the vae preset)")
        self.dip_type, self.weight, self.lambda_diag = dip_type, float(weight), float(lambda_diag)

    def __call__(self, model: "LatentVariableModel", sample: PosteriorSample) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        off_diagonal, diagonal = dip_penalty(dip_covariance(sample.q, self.dip_type, sample.z))
        dip = off_diagonal + (self.lambda_diag / self.weight) * diagonal
        return self.weight * dip, {"dip": dip, "dip_offdiag": off_diagonal, "dip_diag": diagonal}
