"""Gated dense bodies: every layer is a linear map times a sigmoid gate (the VampPrior code's ``GatedDense``).

A gated layer computes

    h = (W x + b) ⊙ σ(V x + c)

elementwise, σ the logistic sigmoid: a gated linear unit (Dauphin et al. 2017) used as the
hidden layer of the MLPs of the VampPrior and Exemplar-VAE experiments (784-300-300).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["GatedDense", "GatedMLPEncoder", "GatedMLPDecoder"]


class GatedDense(nn.Module):
    r"""h = (W x + b) ⊙ σ(V x + c): a linear output times a sigmoid gate, both ``in_features`` → ``out_features``.

    References:
        Language Modeling with Gated Convolutional Networks (Dauphin, Fan, Auli & Grangier,
        2017), arXiv:1612.08083; used as ``GatedDense`` in VAE with a VampPrior (Tomczak &
        Welling, 2018), arXiv:1705.07120.

    Arguments:
        in_features, out_features: sizes of x and h.

    Example:
        >>> GatedDense(4, 3)(torch.zeros(2, 4)).shape
        torch.Size([2, 3])
    """

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.gate = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) * torch.sigmoid(self.gate(x))


def _gated(sizes: Sequence[int]) -> nn.Sequential:
    return nn.Sequential(*(GatedDense(a, b) for a, b in zip(sizes[:-1], sizes[1:])))


class GatedMLPEncoder(nn.Module):
    """Flatten x and apply :class:`GatedDense` layers of sizes ``hidden_dims`` (``arch="gated_mlp"``).

    Arguments:
        in_features: number of values per example (the product of the input shape).
        hidden_dims: gated layer sizes; the last one is the feature size. Empty means the
            features are the flattened input itself.

    Example:
        >>> GatedMLPEncoder(784, (300, 300))(torch.zeros(3, 1, 28, 28)).shape
        torch.Size([3, 300])
    """

    def __init__(self, in_features: int, hidden_dims: Sequence[int] = (300, 300)):
        super().__init__()
        self.net = _gated([in_features, *hidden_dims])
        self.out_features = hidden_dims[-1] if hidden_dims else in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


class GatedMLPDecoder(nn.Module):
    """:class:`GatedDense` layers from a latent code, then a plain linear layer to ``out_features``
    raw outputs (the likelihood head applies the link, as the VampPrior code's output layer does).

    Example:
        >>> GatedMLPDecoder(40, 784, (300, 300))(torch.zeros(3, 40)).shape
        torch.Size([3, 784])
    """

    def __init__(self, in_features: int, out_features: int, hidden_dims: Sequence[int] = (300, 300)):
        super().__init__()
        self.net = nn.Sequential(_gated([in_features, *hidden_dims]), nn.Linear(hidden_dims[-1] if hidden_dims else in_features, out_features))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)
