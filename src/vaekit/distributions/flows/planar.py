"""Planar flows on the diagonal Gaussian posterior (Rezende & Mohamed, 2015)."""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from vaekit.distributions.flows.base import AmortisedFlowPosterior, FlowTransform, vector_norm
from vaekit.distributions.posteriors import DEFAULT_LOGVAR_CLAMP

__all__ = ["PlanarTransform", "PlanarFlowPosterior"]


class PlanarTransform(FlowTransform):
    r"""One planar flow step f(z) = z + û h(wᵀz + b), h = tanh.

    The free parameter u is mapped to

        û = u + (m(wᵀu) − wᵀu) w / ‖w‖²,   m(a) = −1 + softplus(a)

    (the paper's Appendix A), so ûᵀw = m(wᵀu) > −1 and f is invertible; at w = 0 (where the
    formula divides by 0) the step is the translation z + u tanh(b), with û = u and log-det 0. With
    ψ(z) = h'(wᵀz + b) w,

        log |det ∂f/∂z| = log |1 + ûᵀψ(z)| = log( t² + (1 − t²) softplus(wᵀu) ),   t = tanh(wᵀz + b),

    the right-hand form being the same number written as a sum of non-negative terms (no
    cancellation): the determinant is positive everywhere. The inverse has no closed form.

    Computed so that large parameters and z (an encoder whose outputs run away) give a finite
    step and log-det, never NaN, as long as ‖w‖, ‖u‖ and z + û are themselves numbers: products
    are formed along the unit vector ŵ = w/‖w‖ (wᵀu = ‖w‖ ŵᵀu, wᵀz = ‖w‖ ŵᵀz, no squares of
    large numbers; an overflow of wᵀz to ±inf only saturates t);
    m(a) − a = softplus(−a) − 1 = −a + softplus(a) − 1 is used in whichever form has no
    inf − inf; and the log-det is logaddexp(log t², log(1 − t²) + log softplus(wᵀu)) with
    log(1 − t²) = 2 (log 2 − |a| − softplus(−2|a|)), finite where 1 − t² underflows to 0.

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
        finfo = torch.finfo(w.dtype)
        w_norm = vector_norm(w)
        # w = 0 (e.g. a zero-initialised head; also ‖w‖ below the normal range, where w/‖w‖ is no unit
        # vector) is the translation f(z) = z + u tanh(b): ŵ = 0, û = u and det ∂f/∂z = 1
        w_is_zero = w_norm < finfo.tiny
        self._w_norm = w_norm.clamp_min(finfo.tiny)
        self._w_unit = (w / self._w_norm.unsqueeze(-1)).masked_fill(w_is_zero.unsqueeze(-1), 0.0)
        projection = (self._w_unit * u).sum(-1)  # ŵᵀu
        wu = self._w_norm * projection  # may overflow to ±inf: only its sign and softplus are used
        # ûᵀw + 1 = softplus(wᵀu) > 0; kept off 0 so that a very negative wᵀu (softplus underflow) leaves det ≠ 0
        softplus_wu = F.softplus(wu).clamp_min(finfo.eps)
        self._log_softplus_wu = torch.where(
            wu > 20, torch.log(self._w_norm) + torch.log(projection.clamp_min(finfo.tiny)), torch.log(softplus_wu)
        ).masked_fill(w_is_zero, 0.0)  # ûᵀw + 1 = 1 at w = 0
        # (m(wᵀu) − wᵀu)/‖w‖ with the clamped softplus: ûᵀw = softplus(wᵀu) − 1 exactly
        coefficient = torch.where(
            wu >= 0, (F.softplus(-wu) - 1) / self._w_norm, -projection + (softplus_wu - 1) / self._w_norm
        )
        self.u_hat = u + coefficient.unsqueeze(-1) * self._w_unit

    def _call_and_ladj(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self._w_norm * (self._w_unit * z).sum(-1) + self.b
        t = torch.tanh(a)
        y = z + self.u_hat * t.unsqueeze(-1)
        abs_a = a.abs()
        log_one_minus_t_sq = 2 * (math.log(2) - abs_a - F.softplus(-2 * abs_a))
        log_t_sq = torch.log(t * t + torch.finfo(t.dtype).tiny)  # finite, with gradient 0, at t = 0
        return y, torch.logaddexp(log_t_sq, log_one_minus_t_sq + self._log_softplus_wu)


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
        logvar_clamp: (min, max) range of the base's log σ² (None: no clamp).

    Example:
        >>> q = PlanarFlowPosterior(32, 4, flow_steps=2)(torch.randn(5, 32))
        >>> z, log_q = q.rsample_and_log_prob((3,))
        >>> z.shape, log_q.shape
        (torch.Size([3, 5, 4]), torch.Size([3, 5]))
    """

    def __init__(self, in_features: int, latent_dim: int, flow_steps: int = 4,
                 logvar_clamp: Sequence[float] | None = DEFAULT_LOGVAR_CLAMP):
        super().__init__(in_features, latent_dim, flow_steps, logvar_clamp)

    def step_size(self, latent_dim: int) -> int:
        return 2 * latent_dim + 1

    def step(self, parameters: torch.Tensor) -> PlanarTransform:
        d = self.latent_dim
        return PlanarTransform(parameters[..., :d], parameters[..., d : 2 * d], parameters[..., 2 * d])
