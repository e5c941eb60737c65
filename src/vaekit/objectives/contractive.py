"""The contractive penalty: the squared Frobenius norm of the encoder's Jacobian (survey §1.4.3)."""

from __future__ import annotations

from typing import Callable

import torch

from vaekit.errors import ConfigError

__all__ = ["ContractivePenalty", "jacobian_frobenius_sq"]


def jacobian_frobenius_sq(
    f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, create_graph: bool | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""f(x) and ‖∂f(x)/∂x‖_F² = Σ_{d, j} (∂f_d(x)/∂x_j)² per example, exactly.

    ``f`` maps a batch (B, *shape) to codes (B, D) example by example (row b of f(x) depends
    only on x_b; true of every vaekit encoder, which has no batch normalisation). Then
    ∇_x Σ_b f_d(x_b) stacks the rows ∂f_d(x_b)/∂x_b, so D backward passes (one per code
    dimension, ``torch.autograd.grad``) give the whole Jacobian of every example. Works for
    any differentiable encoder (MLP, convolutional, k-sparse).

    Arguments:
        f: the encoder, x ↦ E_φ(x).
        x: inputs (B, *shape).
        create_graph: keep the graph of the derivatives so the norm can be differentiated
            (training); default: whenever gradients are enabled. The value is computed even
            under ``torch.no_grad()`` (validation), and then detached.

    Returns:
        (f(x) of shape (B, D), ‖J‖_F² of shape (B,)).

    Example:
        >>> W = torch.randn(3, 5)
        >>> _, sq = jacobian_frobenius_sq(lambda x: x @ W.T, torch.randn(4, 5))
        >>> torch.allclose(sq, W.pow(2).sum().expand(4))
        True
    """
    if create_graph is None:
        create_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        x = x if x.requires_grad else x.detach().requires_grad_(True)
        fx = f(x)
        if fx.dim() != 2 or fx.shape[0] != x.shape[0]:
            raise ValueError(f"f must map (B, ...) to (B, D), got {tuple(fx.shape)} from {tuple(x.shape)}")
        total = x.new_zeros(x.shape[0])
        for d in range(fx.shape[1]):
            (grad,) = torch.autograd.grad(fx[:, d].sum(), x, create_graph=create_graph, retain_graph=True, allow_unused=True)
            if grad is not None:
                total = total + grad.pow(2).flatten(1).sum(1)
    if not create_graph:
        fx, total = fx.detach(), total.detach()
    return fx, total


class ContractivePenalty:
    r"""λ·E_x ‖∇_x E_φ(x)‖_F², the contractive autoencoder's penalty (survey §1.4.3).

    The Jacobian norm is exact (:func:`jacobian_frobenius_sq`), not a stochastic or
    finite-difference approximation; the objective reports E_x ‖J‖_F² as ``"contractive"``.

    Arguments:
        weight: λ ≥ 0.

    References:
        Contractive Auto-Encoders: Explicit Invariance During Feature Extraction
        (Rifai, Vincent, Muller, Glorot & Bengio, ICML 2011).
    """

    name = "contractive"

    def __init__(self, weight: float):
        if not weight >= 0:
            raise ConfigError(f"weight (λ) must be ≥ 0, got {weight}")
        self.weight = float(weight)

    def __call__(self, encode: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(E_φ(x), ‖J‖_F² per example)."""
        return jacobian_frobenius_sq(encode, x)
