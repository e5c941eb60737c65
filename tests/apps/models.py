"""Small models with known behaviour for the application tests."""

from __future__ import annotations

import torch

import vaekit


def projector(q: torch.Tensor):
    """A linear AE whose encoder is Qᵀ and decoder Q (orthonormal columns, no biases): x̂ = QQᵀx."""
    m, d = q.shape
    model = vaekit.create("linear_ae", input_shape=(m,), latent_dim=d)
    with torch.no_grad():
        model.posterior.net.weight.copy_(q.T)
        model.posterior.net.bias.zero_()
        model.decoder.net[0].weight.copy_(q)
        model.decoder.net[0].bias.zero_()
    return model.eval()


def orthonormal(m: int, d: int, seed: int = 0) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(m, d, generator=torch.Generator().manual_seed(seed)))
    return q
