"""Sampling helpers shared by every objective: a sample with its log-density, a point code."""

from __future__ import annotations

import torch
from torch.distributions import Distribution, TransformedDistribution

__all__ = ["sample_with_log_prob", "latent_code"]


def sample_with_log_prob(q: Distribution, sample_shape: torch.Size | tuple[int, ...] = ()) -> tuple[torch.Tensor, torch.Tensor]:
    """A reparameterised sample z ~ q and log q(z), shapes (*sample_shape, B, D) and (*sample_shape, B).

    Distributions that can give both in one pass (flows, whose inverse may have no closed
    form) provide ``rsample_and_log_prob``; for the rest log q(z) is evaluated at z.
    """
    sample_shape = torch.Size(sample_shape)
    if hasattr(q, "rsample_and_log_prob"):
        return q.rsample_and_log_prob(sample_shape)
    z = q.rsample(sample_shape)
    return z, q.log_prob(z)


def latent_code(q: Distribution) -> torch.Tensor:
    """A deterministic code for x: the posterior mean, or for a flow the base mean pushed
    through its transforms (a flow's mean has no closed form). Used by ``reconstruct``,
    ``transform`` and the applications."""
    if isinstance(q, TransformedDistribution):
        z = latent_code(q.base_dist)
        for t in q.transforms:
            z = t(z)
        return z
    return q.mean
