"""Radial flows on the diagonal Gaussian posterior (Rezende & Mohamed, 2015)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from vaekit.distributions.flows.base import AmortisedFlowPosterior, FlowTransform, vector_norm
from vaekit.distributions.posteriors import DEFAULT_LOGVAR_CLAMP

__all__ = ["RadialTransform", "RadialFlowPosterior"]


class RadialTransform(FlowTransform):
    r"""One radial flow step f(z) = z + β h(α, r)(z − z_0), r = ‖z − z_0‖, h = 1/(α + r).

    The free parameters α', β' are mapped to α = softplus(α') > 0 and
    β = −α + softplus(β') ≥ −α, the condition under which f is invertible. With
    h' = ∂h/∂r = −1/(α + r)²,

        log |det ∂f/∂z| = (D − 1) log(1 + βh) + log(1 + βh + βh'r)
                        = (D − 1) log((α + β + r)/(α + r)) + log((α(α + β) + 2αr + r²)/(α + r)²),

    the second line writing each factor with non-negative terms only (α + β = softplus(β')):
    the determinant is positive everywhere. The inverse has no closed form.

    Computed so that large parameters and z give a finite step and log-det, never NaN, as long
    as α, α + β and ‖z − z_0‖ are themselves numbers: r is the norm without squaring large
    entries (:func:`~vaekit.distributions.flows.base.vector_norm`), and the second factor is
    evaluated as σ (α + β)/(α + r) + 2στ + τ² with σ = α/(α + r) and τ = r/(α + r) in [0, 1],
    rather than as a quotient of two squares that overflow for large r or α.

    References:
        Variational Inference with Normalizing Flows (Rezende & Mohamed, 2015), §4.1 and
        Appendix A, arXiv:1505.05770.

    Arguments:
        z0: (…, D), the reference point.
        alpha: (…), the unconstrained α'.
        beta: (…), the unconstrained β'.
        cache_size: torch's transform cache (1: the last (z, f(z)) pair is remembered).

    Example:
        >>> t = RadialTransform(torch.zeros(2), torch.tensor(0.0), torch.tensor(-5.0))
        >>> bool(t.beta >= -t.alpha)
        True
    """

    def __init__(self, z0: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor, cache_size: int = 1):
        super().__init__(cache_size=cache_size)
        self.z0 = z0
        self.alpha = F.softplus(alpha).clamp_min(torch.finfo(alpha.dtype).tiny)  # α > 0 also where softplus underflows
        self._alpha_plus_beta = F.softplus(beta)
        self.beta = self._alpha_plus_beta - self.alpha

    def _call_and_ladj(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        diff = z - self.z0
        r = vector_norm(diff)
        a, ab = self.alpha, self._alpha_plus_beta
        a_r = a + r
        y = z + (self.beta / a_r).unsqueeze(-1) * diff
        sigma, tau = a / a_r, r / a_r
        ladj = (z.shape[-1] - 1) * (torch.log(ab + r) - torch.log(a_r)) + torch.log(sigma * (ab / a_r) + 2 * sigma * tau + tau * tau)
        return y, ladj


class RadialFlowPosterior(AmortisedFlowPosterior):
    r"""Diagonal Gaussian posterior followed by K radial flow steps (survey §2.11–2.12).

        z_0 ~ N(μ(x), diag σ(x)²),   z_k = z_{k−1} + β_k h(α_k, r_k)(z_{k−1} − c_k),
        log q_K(z_K|x) = log q_0(z_0|x) − Σ_k log |det ∂f_k/∂z_{k−1}|,

    with c_k the step's reference point (z_0 in the paper's notation). Amortised: one linear
    layer maps the encoder features to μ, log σ and every step's (c_k, α'_k, β'_k)
    (Rezende & Mohamed §4). The forward returns a :class:`FlowDistribution`; use its
    ``rsample_and_log_prob`` (``log_prob`` of other points raises: no inverse).

    References:
        Variational Inference with Normalizing Flows (Rezende & Mohamed, 2015), arXiv:1505.05770.

    Arguments:
        in_features: F, the size of the encoder features.
        latent_dim: D, the size of z.
        flow_steps: K, the number of radial steps.
        logvar_clamp: (min, max) range of the base's log σ² (None: no clamp).

    Example:
        >>> q = RadialFlowPosterior(32, 4, flow_steps=2)(torch.randn(5, 32))
        >>> z, log_q = q.rsample_and_log_prob()
        >>> z.shape, log_q.shape
        (torch.Size([5, 4]), torch.Size([5]))
    """

    def __init__(self, in_features: int, latent_dim: int, flow_steps: int = 4,
                 logvar_clamp: Sequence[float] | None = DEFAULT_LOGVAR_CLAMP):
        super().__init__(in_features, latent_dim, flow_steps, logvar_clamp)

    def step_size(self, latent_dim: int) -> int:
        return latent_dim + 2

    def step(self, parameters: torch.Tensor) -> RadialTransform:
        d = self.latent_dim
        return RadialTransform(parameters[..., :d], parameters[..., d], parameters[..., d + 1])
