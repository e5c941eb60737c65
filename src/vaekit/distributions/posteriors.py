"""Gaussian posterior heads q(z|x): networks that map encoder features to a distribution.

Each head is an ``nn.Module`` built as ``Head(in_features, latent_dim)`` whose forward
returns a ``torch.distributions.Distribution`` with batch shape (B,) and event shape (D,).
Amortised inference (survey §2.5): one network gives q(z|x) for every x.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution, Independent, MultivariateNormal, Normal

from vaekit.errors import ConfigError

__all__ = [
    "DEFAULT_LOGVAR_CLAMP", "DiagonalGaussianPosterior", "FullCovarianceGaussian", "FullCovarianceGaussianPosterior", "check_logvar_clamp",
    "clamp_log_scale", "diagonal_gaussian", "scale_tril_from_parameters",
]

DEFAULT_LOGVAR_CLAMP = (-30.0, 20.0)
"""Default range of log σ² for every Gaussian posterior head: σ from e⁻¹⁵ ≈ 3·10⁻⁷ to e¹⁰ ≈ 2·10⁴.

Wide enough that normal training never reaches it (trained posteriors have σ within about
10⁻³…1 against a N(0, I) prior, and an encoder output beyond it is already a diverging run), so
results inside the range are unchanged bit for bit; narrow enough that σ² and 1/σ² stay far
inside float32 (up to 3.4·10³⁸): a runaway encoder output gives a finite σ instead of σ = inf
and a NaN log-density (inf/inf), in every family built on the Gaussian (the flows' base too)."""

LOGVAR_LIMIT = 80.0
"""|log σ²| allowed in a ``logvar_clamp``: e^±80 is still a float32 number."""


def check_logvar_clamp(logvar_clamp: Sequence[float] | None) -> tuple[float, float] | None:
    """``logvar_clamp`` as ``(min, max)`` floats with −80 ≤ min < max ≤ 80, None (no clamp), or a ``ConfigError``."""
    if logvar_clamp is None:
        return None
    try:
        low, high = (float(v) for v in logvar_clamp)
    except (TypeError, ValueError):
        raise ConfigError(f"logvar_clamp must be (min, max) in log-variance, got {logvar_clamp!r}") from None
    if not -LOGVAR_LIMIT <= low < high <= LOGVAR_LIMIT:
        raise ConfigError(f"logvar_clamp must be (min, max) with -{LOGVAR_LIMIT:g} ≤ min < max ≤ {LOGVAR_LIMIT:g} "
                          f"(log σ², so σ² stays a float32 number), got {logvar_clamp!r}; the default is {DEFAULT_LOGVAR_CLAMP}")
    return low, high


def clamp_log_scale(log_scale: torch.Tensor, logvar_clamp: tuple[float, float] | None) -> torch.Tensor:
    r"""log σ limited to [min/2, max/2] for ``logvar_clamp`` = (min, max) in log σ² (unchanged when None).

    A hard clamp: values inside the range pass unchanged (with their gradient); outside, log σ
    sits at the bound and its gradient is 0. NaN stays NaN.
    """
    if logvar_clamp is None:
        return log_scale
    return log_scale.clamp(0.5 * logvar_clamp[0], 0.5 * logvar_clamp[1])


def diagonal_gaussian(loc: torch.Tensor, log_scale: torch.Tensor) -> Distribution:
    """N(μ, diag σ²) with σ = exp(log σ), as ``Independent(Normal)`` with event shape (D,)."""
    return Independent(Normal(loc, log_scale.exp(), validate_args=False), 1, validate_args=False)


class DiagonalGaussianPosterior(nn.Module):
    r"""Diagonal Gaussian posterior q(z|x) = N(μ(x), diag σ(x)²) (survey §2.8).

    The head outputs (μ, log σ); a reparameterised sample is z = μ + σ ⊙ ε with
    ε ~ N(0, I), and log q(z|x) = Σ_i [log N(ε_i; 0, 1) − log σ_i]. log σ² is clamped to
    ``logvar_clamp`` (:data:`DEFAULT_LOGVAR_CLAMP`), so σ stays finite and positive.

    References:
        Auto-Encoding Variational Bayes (Kingma & Welling, 2014), arXiv:1312.6114.

    Arguments:
        in_features: F, the size of the encoder features.
        latent_dim: D.
        logvar_clamp: (min, max) range of log σ² (None: no clamp; see :func:`clamp_log_scale`).

    Example:
        >>> head = DiagonalGaussianPosterior(32, 4)
        >>> q = head(torch.zeros(5, 32))
        >>> q.batch_shape, q.event_shape
        (torch.Size([5]), torch.Size([4]))
    """

    def __init__(self, in_features: int, latent_dim: int, logvar_clamp: Sequence[float] | None = DEFAULT_LOGVAR_CLAMP):
        super().__init__()
        self.logvar_clamp = check_logvar_clamp(logvar_clamp)
        self.net = nn.Linear(in_features, 2 * latent_dim)

    def forward(self, h: torch.Tensor) -> Distribution:
        loc, log_scale = self.net(h).chunk(2, dim=-1)
        return diagonal_gaussian(loc, clamp_log_scale(log_scale, self.logvar_clamp))


class FullCovarianceGaussian(MultivariateNormal):
    r"""N(μ, LLᵀ) (torch's ``MultivariateNormal`` with ``scale_tril``) whose log-densities never come out NaN.

    * :meth:`rsample_and_log_prob` draws z = μ + Lε and takes log q(z) = log N(ε; 0, I) −
      Σ_i log |L_ii| from ε itself: exact, with no triangular solve of z − μ, whose rounding
      error the solve amplifies by up to max|L_ij| / min L_ii per coordinate.
    * :meth:`log_prob` is torch's (a triangular solve); where, for a finite value and finite
      parameters, the solve overflows (so ‖L⁻¹(z − μ)‖ exceeds the float range and the
      density is below the smallest float), it returns −inf instead of the NaN of inf − inf.

    Example:
        >>> q = FullCovarianceGaussian(torch.zeros(2), scale_tril=torch.eye(2))
        >>> z, log_q = q.rsample_and_log_prob((3,))
        >>> torch.allclose(log_q, q.log_prob(z))
        True
    """

    def rsample_and_log_prob(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size()) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised z and log q(z), shapes (*sample_shape, *batch, D) and (*sample_shape, *batch)."""
        shape = self._extended_shape(torch.Size(sample_shape))
        eps = torch.empty(shape, dtype=self.loc.dtype, device=self.loc.device).normal_()  # as MultivariateNormal.rsample
        z = self.loc + (self.scale_tril @ eps.unsqueeze(-1)).squeeze(-1)
        log_det = self.scale_tril.diagonal(dim1=-2, dim2=-1).abs().log().sum(-1)
        log_q = -0.5 * (eps.pow(2).sum(-1) + self.event_shape[0] * math.log(2 * math.pi)) - log_det
        return z, log_q

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        log_q = super().log_prob(value)
        overflow = torch.isnan(log_q) & torch.isfinite(value).all(-1)
        overflow = overflow & torch.isfinite(self.loc).all(-1) & torch.isfinite(self.scale_tril).flatten(-2).all(-1)
        return log_q.masked_fill(overflow, -math.inf)


def scale_tril_from_parameters(log_scale: torch.Tensor, off_diagonal: torch.Tensor) -> torch.Tensor:
    r"""L = L_mask ⊙ L' + diag(σ) (survey §2.9).

    ``off_diagonal`` holds the D(D−1)/2 free entries of L', written into the strictly
    lower triangle row by row; σ = exp(log σ) sits on the diagonal, so det L = Π σ_i > 0.
    """
    d = log_scale.shape[-1]
    rows, cols = torch.tril_indices(d, d, offset=-1, device=log_scale.device)
    tril = log_scale.new_zeros(*log_scale.shape, d)
    tril[..., rows, cols] = off_diagonal
    return tril + torch.diag_embed(log_scale.exp())


class FullCovarianceGaussianPosterior(nn.Module):
    r"""Full-covariance Gaussian posterior q(z|x) = N(μ(x), L(x) L(x)ᵀ) (survey §2.9).

    The head outputs (μ, log σ, L'); L = L_mask ⊙ L' + diag(σ) is lower triangular with a
    positive diagonal, z = μ + L ε, and log q(z|x) = log N(ε; 0, I) − Σ_i log σ_i.
    The L' outputs start at zero, so training starts from the diagonal posterior: with a
    default initialisation the D(D−1)/2 random off-diagonal entries add Σ_{j<i} L'_ij² to
    Var(z_i), noise the decoder first learns to ignore (measured on Fashion-MNIST after
    5 epochs: 1.5 nats of test log-likelihood).

    The reparameterisation gradient reaches each L'_ij through ε_j (∂z_i/∂L'_ij = ε_j): D(D−1)/2
    zero-mean noisy signals that all flow back into the encoder body shared with μ and σ.
    By default (``detach_correlations=True``) the L' outputs read the encoder features
    without back-propagating into them: the head's own L' weights still learn from the ELBO,
    the bound and its value are unchanged, only the body's gradient drops the L' path.
    Measured with the same seeds and budget: on the 8×8 digits with D = 32 (3 seeds) test
    log p(x) −23.18 ± 0.05 detached against −23.57 ± 0.05 with the full gradient (diagonal
    posterior −23.23); on Fashion-MNIST (784-512-512-32, 5 epochs, 2 000 test images, K = 1000)
    −245.12 against −251.64. ``detach_correlations=False`` gives the plain AEVB gradient.

    log σ_i² (the diagonal of L) is clamped to ``logvar_clamp``, and each free entry L'_ij to
    |L'_ij| ≤ e^{max/2}, the largest σ: the scales stay in one documented range, so Σ, its
    Cholesky solves and log q(z|x) stay finite for a runaway encoder.

    References:
        An Introduction to Variational Autoencoders (Kingma & Welling, 2019), §2.5,
        arXiv:1906.02691.

    Arguments:
        in_features: F, the size of the encoder features.
        latent_dim: D.
        detach_correlations: train the encoder body through μ and σ only (see above); False
            for the full reparameterisation gradient.
        logvar_clamp: (min, max) range of log σ² (None: no clamp; see :func:`clamp_log_scale`).

    Example:
        >>> q = FullCovarianceGaussianPosterior(32, 3)(torch.zeros(5, 32))
        >>> q.scale_tril.shape
        torch.Size([5, 3, 3])
    """

    def __init__(self, in_features: int, latent_dim: int, detach_correlations: bool = True,
                 logvar_clamp: Sequence[float] | None = DEFAULT_LOGVAR_CLAMP):
        super().__init__()
        self.latent_dim, self.detach_correlations = latent_dim, bool(detach_correlations)
        self.logvar_clamp = check_logvar_clamp(logvar_clamp)
        self.net = nn.Linear(in_features, 2 * latent_dim + latent_dim * (latent_dim - 1) // 2)
        with torch.no_grad():  # start as the diagonal posterior: L' = 0, correlations are learned
            self.net.weight[2 * latent_dim :].zero_()
            self.net.bias[2 * latent_dim :].zero_()

    def forward(self, h: torch.Tensor) -> Distribution:
        d = self.latent_dim
        if self.detach_correlations:
            w, b = self.net.weight, self.net.bias
            out = torch.cat([F.linear(h, w[: 2 * d], b[: 2 * d]), F.linear(h.detach(), w[2 * d :], b[2 * d :])], dim=-1)
        else:
            out = self.net(h)
        loc, log_scale, off_diagonal = out[..., :d], out[..., d : 2 * d], out[..., 2 * d :]
        if self.logvar_clamp is not None:
            log_scale = clamp_log_scale(log_scale, self.logvar_clamp)
            bound = math.exp(0.5 * self.logvar_clamp[1])
            off_diagonal = off_diagonal.clamp(-bound, bound)
        return FullCovarianceGaussian(loc, scale_tril=scale_tril_from_parameters(log_scale, off_diagonal), validate_args=False)
