"""A linear-Gaussian latent variable model with known marginal and posterior, built from vaekit parts.

p(z) = N(0, I), p(x|z) = N(Wz + b, σ²I)  ⇒  p(x) = N(b, WWᵀ + σ²I),
p(z|x) = N(A(x − b), Σ) with Σ = (I + WᵀW/σ²)⁻¹ and A = Σ Wᵀ / σ².
"""

from __future__ import annotations

import torch
from torch.distributions import MultivariateNormal

from vaekit.distributions import DiagonalGaussianPosterior, FullCovarianceGaussianPosterior, GaussianLikelihood, StandardNormalPrior
from vaekit.models import LatentVariableModel
from vaekit.nn import MLPDecoder, MLPEncoder
from vaekit.objectives import ELBO


def linear_gaussian_model(m: int = 5, d: int = 2, sigma: float = 0.5, posterior: str = "full_covariance", exact: bool = True, seed: int = 0):
    """The model, and (W, b, σ).

    With ``exact`` (full covariance only) the posterior head outputs the true p(z|x);
    otherwise it outputs a deliberately imperfect proposal: means shifted by 0.3 and
    standard deviations 1.5 times the true marginal ones, so the ELBO gap is clearly positive.
    """
    g = torch.Generator().manual_seed(seed)
    W, b = torch.randn(m, d, generator=g), torch.randn(m, generator=g)
    head_cls = FullCovarianceGaussianPosterior if posterior == "full_covariance" else DiagonalGaussianPosterior
    model = LatentVariableModel(
        input_shape=(m,), latent_dim=d, encoder=MLPEncoder(m, ()), posterior=head_cls(m, d),
        decoder=MLPDecoder(d, m, ()), likelihood=GaussianLikelihood((m,), scale=sigma),
        prior=StandardNormalPrior(d), objective=ELBO(), config={"model": "linear_gaussian"},
    )
    with torch.no_grad():
        lin = model.decoder.net[0]
        lin.weight.copy_(W)
        lin.bias.copy_(b)
        cov = torch.linalg.inv(torch.eye(d) + W.T @ W / sigma**2)
        A = cov @ W.T / sigma**2
        head = model.posterior.net
        head.weight.zero_()
        head.bias.zero_()
        head.weight[:d] = A
        head.bias[:d] = -A @ b
        if exact and posterior == "full_covariance":
            L = torch.linalg.cholesky(cov)
            head.bias[d : 2 * d] = L.diagonal().log()
            rows, cols = torch.tril_indices(d, d, offset=-1)
            head.bias[2 * d :] = L[rows, cols]
        else:
            head.bias[:d] += 0.3
            head.bias[d : 2 * d] = 0.5 * cov.diagonal().log() + torch.log(torch.tensor(1.5))
    return model, W, b, sigma


def exact_log_marginal(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor, sigma: float) -> torch.Tensor:
    cov = W @ W.T + sigma**2 * torch.eye(W.shape[0])
    return MultivariateNormal(b, covariance_matrix=cov).log_prob(x)
