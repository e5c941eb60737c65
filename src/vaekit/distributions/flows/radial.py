"""Radial flows on the diagonal Gaussian posterior (Rezende & Mohamed, 2015)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vaekit.distributions.flows.base import AmortisedFlowPosterior, FlowTransform

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
        self.alpha = F.softplus(alpha)
        self._alpha_plus_beta = F.softplus(beta)
        self.beta = self._alpha_plus_beta - self.alpha

    def _call_and_ladj(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        diff = z - self.z0
        r = torch.linalg.vector_norm(diff, dim=-1)
        a, ab = self.alpha, self._alpha_plus_beta
        y = z + (self.beta / (a + r)).unsqueeze(-1) * diff
        log_ar = torch.log(a + r)
        ladj = (z.shape[-1] - 1) * (torch.log(ab + r) - log_ar) + torch.log(a * ab + 2 * a * r + r * r) - 2 * log_ar
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

    Example:
        >>> q = RadialFlowPosterior(32, 4, flow_steps=2)(torch.randn(5, 32))
        >>> z, log_q = q.rsample_and_log_prob()
        >>> z.shape, log_q.shape
        (torch.Size([5, 4]), torch.Size([5]))
    """

    def __init__(self, in_features: int, latent_dim: int, flow_steps: int = 4):
        super().__init__(in_features, latent_dim, flow_steps)

    def step_size(self, latent_dim: int) -> int:
        return latent_dim + 2

    def step(self, parameters: torch.Tensor) -> RadialTransform:
        d = self.latent_dim
        return RadialTransform(parameters[..., :d], parameters[..., d], parameters[..., d + 1])
