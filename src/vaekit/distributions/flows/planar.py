"""Planar flows on the diagonal Gaussian posterior (Rezende & Mohamed, 2015)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vaekit.distributions.flows.base import AmortisedFlowPosterior, FlowTransform

__all__ = ["PlanarTransform", "PlanarFlowPosterior"]


class PlanarTransform(FlowTransform):
    r"""One planar flow step f(z) = z + û h(wᵀz + b), h = tanh.

    The free parameter u is mapped to

        û = u + (m(wᵀu) − wᵀu) w / ‖w‖²,   m(a) = −1 + softplus(a)

    (the paper's Appendix A), so ûᵀw = m(wᵀu) > −1 and f is invertible. With
    ψ(z) = h'(wᵀz + b) w,

        log |det ∂f/∂z| = log |1 + ûᵀψ(z)| = log( t² + (1 − t²) softplus(wᵀu) ),   t = tanh(wᵀz + b),

    the right-hand form being the same number written as a sum of non-negative terms (no
    cancellation): the determinant is positive everywhere. The inverse has no closed form.

    References:
        Variational Inference with Normalizing Flows (Rezende & Mohamed, 2015), §4.1 and
        Appendix A, arXiv:1505.05770.

    Arguments:
        u: (…, D), the unconstrained direction (û is derived from it).
        w: (…, D).
        b: (…), the bias.
        cache_size: torch's transform cache (1: the last (z, f(z)) pair is remembered).

    Example:
        >>> t = PlanarTransform(torch.tensor([-3.0, 0.0]), torch.tensor([1.0, 0.0]), torch.tensor(0.0))
        >>> float(t.u_hat @ t.w) > -1
        True
    """

    def __init__(self, u: torch.Tensor, w: torch.Tensor, b: torch.Tensor, cache_size: int = 1):
        super().__init__(cache_size=cache_size)
        self.u, self.w, self.b = u, w, b
        wu = (w * u).sum(-1)
        # ûᵀw + 1 > 0; kept off 0 so that a very negative wᵀu (softplus underflow) leaves det ≠ 0
        self._softplus_wu = F.softplus(wu).clamp_min(torch.finfo(wu.dtype).eps)
        w_sq = (w * w).sum(-1).clamp_min(torch.finfo(w.dtype).tiny)
        self.u_hat = u + ((self._softplus_wu - 1 - wu) / w_sq).unsqueeze(-1) * w

    def _call_and_ladj(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = torch.tanh((self.w * z).sum(-1) + self.b)
        y = z + self.u_hat * t.unsqueeze(-1)
        t_sq = t * t
        return y, torch.log(t_sq + (1 - t_sq) * self._softplus_wu)



class PlanarFlowPosterior(AmortisedFlowPosterior):
    r"""Diagonal Gaussian posterior followed by K planar flow steps (survey §2.11–2.12).

        z_0 ~ N(μ(x), diag σ(x)²),   z_k = z_{k−1} + û_k tanh(w_kᵀ z_{k−1} + b_k),
        log q_K(z_K|x) = log q_0(z_0|x) − Σ_k log |1 + û_kᵀ ψ_k(z_{k−1})|.

    Amortised: one linear layer maps the encoder features to μ, log σ and every step's
    (u_k, w_k, b_k), so "the parameters of the flow are outputs of the inference network"
    (Rezende & Mohamed §4). The forward returns a :class:`FlowDistribution`; use its
    ``rsample_and_log_prob`` (``log_prob`` of other points raises: no inverse).

    References:
        Variational Inference with Normalizing Flows (Rezende & Mohamed, 2015), arXiv:1505.05770.

    Arguments:
        in_features: F, the size of the encoder features.
        latent_dim: D, the size of z.
        flow_steps: K, the number of planar steps.

    Example:
        >>> q = PlanarFlowPosterior(32, 4, flow_steps=2)(torch.randn(5, 32))
        >>> z, log_q = q.rsample_and_log_prob((3,))
        >>> z.shape, log_q.shape
        (torch.Size([3, 5, 4]), torch.Size([3, 5]))
    """

    def __init__(self, in_features: int, latent_dim: int, flow_steps: int = 4):
        super().__init__(in_features, latent_dim, flow_steps)

    def step_size(self, latent_dim: int) -> int:
        return 2 * latent_dim + 1

    def step(self, parameters: torch.Tensor) -> PlanarTransform:
        d = self.latent_dim
        return PlanarTransform(parameters[..., :d], parameters[..., d : 2 * d], parameters[..., 2 * d])
