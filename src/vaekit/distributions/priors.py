"""Priors p(z)."""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Distribution, Independent, Normal

__all__ = ["StandardNormalPrior"]


class StandardNormalPrior(nn.Module):
    """p(z) = N(0, I): an ``Independent(Normal)`` with event shape (D,) (survey §2.3).

    A module (with buffers, so it follows the model's device) whose forward takes no
    input and returns the distribution.

    Example:
        >>> StandardNormalPrior(4)().sample((2,)).shape
        torch.Size([2, 4])
    """

    def __init__(self, latent_dim: int):
        super().__init__()
        self.register_buffer("loc", torch.zeros(latent_dim), persistent=False)
        self.register_buffer("scale", torch.ones(latent_dim), persistent=False)

    def forward(self) -> Distribution:
        return Independent(Normal(self.loc, self.scale, validate_args=False), 1, validate_args=False)
