"""Two-level latent distributions q(z₁, z₂) = q(z₂) q(z₁|z₂) over the concatenated code [z₁, z₂]."""

from __future__ import annotations

from typing import Callable

import torch
from torch.distributions import Distribution, constraints

__all__ = ["ChainDistribution"]


class ChainDistribution(Distribution):
    r"""p(z₁, z₂) = p(z₂) p(z₁ | z₂) as one distribution over z = [z₁, z₂] (event shape (D₁ + D₂,)).

    Sampling is ancestral (z₂ first, then z₁ given it) and reparameterised when both levels
    are; the density is the chain rule

        log p(z) = log p(z₂) + log p(z₁ | z₂).

    The generative hierarchy of a two-layer VAE (p(z₂) p(z₁|z₂)) and its inference network
    (q(z₂|x) q(z₁|x, z₂)) are both of this form, so the model's ``prior()`` and ``encode(x)``
    speak the ``Distribution`` protocol like every other model's, and the importance-sampled
    log p(x) draws both layers through :meth:`rsample_and_log_prob`.

    ``mean`` is the *code* [m₁, E z₂] with m₁ = E[z₁ | z₂ = E z₂] (what ``transform`` and
    ``reconstruct`` use); it is not E z₁ when the conditional is nonlinear in z₂.

    References:
        VAE with a VampPrior (Tomczak & Welling, AISTATS 2018), §hierarchical, arXiv:1705.07120;
        Ladder Variational Autoencoders (Sønderby et al., NeurIPS 2016), arXiv:1602.02282.

    Arguments:
        top: p(z₂), batch shape (B,) (or none for a prior), event shape (D₂,).
        conditional: z₂ of shape (*S, B, D₂) -> p(z₁ | z₂) with batch shape (*S, B), event shape (D₁,).
        bottom_dim: D₁.

    Example:
        >>> from torch.distributions import Independent, Normal
        >>> top = Independent(Normal(torch.zeros(2), torch.ones(2)), 1)
        >>> chain = ChainDistribution(top, lambda z2: Independent(Normal(z2.sum(-1, keepdim=True), torch.ones(1)), 1), 1)
        >>> chain.rsample((5,)).shape
        torch.Size([5, 3])
    """

    arg_constraints: dict = {}
    support = constraints.independent(constraints.real, 1)

    def __init__(self, top: Distribution, conditional: Callable[[torch.Tensor], Distribution], bottom_dim: int):
        self.top, self.conditional, self.bottom_dim = top, conditional, int(bottom_dim)
        event = (self.bottom_dim + top.event_shape[-1],)
        super().__init__(top.batch_shape, torch.Size(event), validate_args=False)

    @property
    def has_rsample(self) -> bool:  # type: ignore[override]
        return self.top.has_rsample

    def split(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z = [z₁, z₂] -> (z₁, z₂)."""
        return z[..., : self.bottom_dim], z[..., self.bottom_dim :]

    def rsample_and_log_prob(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> tuple[torch.Tensor, torch.Tensor]:
        """z = [z₁, z₂] drawn ancestrally and log q(z₂) + log q(z₁|z₂), in one pass."""
        z2 = self.top.rsample(torch.Size(sample_shape))
        bottom = self.conditional(z2)
        z1 = bottom.rsample()
        return torch.cat([z1, z2], dim=-1), self.top.log_prob(z2) + bottom.log_prob(z1)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size()) -> torch.Tensor:
        return self.rsample_and_log_prob(sample_shape)[0]

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            z2 = self.top.sample(torch.Size(sample_shape))
            return torch.cat([self.conditional(z2).sample(), z2], dim=-1)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        z1, z2 = self.split(z)
        return self.top.log_prob(z2) + self.conditional(z2).log_prob(z1)

    @property
    def mean(self) -> torch.Tensor:
        z2 = self.top.mean
        return torch.cat([self.conditional(z2).mean, z2], dim=-1)
