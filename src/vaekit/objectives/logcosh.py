r"""The log-cosh reconstruction cost: quadratic near zero, linear (robust) far from it."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.distributions import Distribution

from vaekit.errors import ConfigError

__all__ = ["LogCoshReconstruction", "log_cosh"]


def log_cosh(t: torch.Tensor) -> torch.Tensor:
    r"""log cosh(t), finite for any finite t and accurate to a few ulps, relative, everywhere.

    For |t| ≥ 1 it is |t| + log1p(exp(−2|t|)) − log 2: the naive log(cosh t) overflows once
    cosh t does (|t| ≳ 89 in float32), and this form never exponentiates a positive number.
    For |t| < 1 that form cancels (|t| − log 2 + log 2 − |t| + t²/2: all of t²/2 lost in
    float32 below |t| ≈ 10⁻⁴), so there it is log1p(2 sinh²(t/2)) = log(1 + cosh t − 1),
    ≈ t²/2 to full precision. Its derivative is tanh(t) (either branch).
    """
    a = t.abs()
    near = a < 1.0
    t_near = torch.where(near, t, torch.zeros_like(t))  # keeps sinh of the far branch from overflowing (and its gradient finite)
    return torch.where(near, torch.log1p(2.0 * torch.sinh(0.5 * t_near).pow(2)), a + F.softplus(-2.0 * a) - math.log(2.0))


class LogCoshReconstruction:
    r"""c(x, x̂) = Σ_j (1/a) · log cosh(a · (x_j − x̂_j)) with x̂ the decoder's mean E[x|z].

    For small residuals it is ≈ (a/2)(x − x̂)², for large ones ≈ |x − x̂| − log(2)/a: a
    squared error that does not chase outliers; a sets where it turns from one to the other.
    Used as the reconstruction of the ELBO (``ELBO(reconstruction=...)``), the
    LogCosh-VAE loss is  Σ_j (1/a) log cosh(a (x_j − x̂_j)) + β · KL(q(z|x) ‖ p(z)).

    Arguments:
        a: sharpness a > 0.

    References:
        Log Hyperbolic Cosine Loss Improves Variational Auto-Encoder (ICLR 2019 submission,
        OpenReview).

    Example:
        >>> from vaekit.objectives import ELBO
        >>> objective = ELBO(reconstruction=LogCoshReconstruction(a=10.0))
    """

    def __init__(self, a: float = 10.0):
        if not a > 0:
            raise ConfigError(f"a (the log-cosh sharpness) must be > 0, got {a}")
        self.a = float(a)

    def __call__(self, px: Distribution, x: torch.Tensor) -> torch.Tensor:
        residual = x - px.mean
        return (log_cosh(self.a * residual) / self.a).flatten(1).sum(1)
