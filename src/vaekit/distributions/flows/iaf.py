"""Inverse autoregressive flow on the diagonal Gaussian posterior (Kingma et al., 2016)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution

from vaekit.distributions.flows.base import FlowDistribution, FlowTransform, ReverseTransform, check_flow_steps
from vaekit.distributions.posteriors import DEFAULT_LOGVAR_CLAMP, check_logvar_clamp, clamp_log_scale, diagonal_gaussian
from vaekit.errors import ConfigError

__all__ = ["MaskedLinear", "MADE", "IAFTransform", "IAFPosterior"]


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask (out_features, in_features)."""

    def __init__(self, in_features: int, out_features: int, mask: torch.Tensor):
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.to(self.weight.dtype), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    r"""Masked autoencoder for distribution estimation, with a context: (z, h) ↦ (m, s).

    Each input gets a degree: z_i has degree i (1…D), each context entry degree 0; hidden
    unit k of every layer has degree k mod D (0…D−1); the outputs m_i and s_i have degree i.
    A weight from a unit of degree d to one of degree d' is kept when d' ≥ d between
    hidden layers and into them, and when d' > d into the outputs. Every path from z_j to
    m_i or s_i then climbs through degrees j ≤ … < i, so (m_i, s_i) depend on z_{<i} and h
    only: ∂(m_i, s_i)/∂z_j = 0 for j ≥ i.

    References:
        MADE: Masked Autoencoder for Distribution Estimation (Germain, Gregor, Murray &
        Larochelle, 2015), arXiv:1502.03509.

    Arguments:
        latent_dim: D.
        context_dim: C, the size of h (0: no context).
        hidden_dims: sizes of the masked hidden layers (ELU activations).
        forget_bias: initial bias of s, so σ = sigmoid(s) starts near 1 (IAF §4: +1 or +2).

    Example:
        >>> m, s = MADE(3, 2, (16,))(torch.randn(4, 3), torch.randn(4, 2))
        >>> m.shape, s.shape
        (torch.Size([4, 3]), torch.Size([4, 3]))
    """

    def __init__(self, latent_dim: int, context_dim: int = 0, hidden_dims: Sequence[int] = (64,), forget_bias: float = 2.0):
        super().__init__()
        d = latent_dim
        self.latent_dim, self.context_dim = d, context_dim
        degrees = [torch.cat([torch.arange(1, d + 1), torch.zeros(context_dim, dtype=torch.long)])]
        layers: list[nn.Module] = []
        for width in hidden_dims:
            hidden = torch.arange(width) % d
            layers += [MaskedLinear(degrees[-1].numel(), width, (hidden[:, None] >= degrees[-1][None, :])), nn.ELU()]
            degrees.append(hidden)
        outputs = torch.arange(1, d + 1).repeat(2)  # degrees of (m, s)
        self.output = MaskedLinear(degrees[-1].numel(), 2 * d, outputs[:, None] > degrees[-1][None, :])
        with torch.no_grad():
            self.output.bias[d:].fill_(forget_bias)
        self.hidden = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(m, s), each shaped like z (…, D); the context (B, C) broadcasts over z's leading dims."""
        if self.context_dim:
            z = torch.cat([z, context.expand(*z.shape[:-1], self.context_dim)], dim=-1)
        return self.output(self.hidden(z)).chunk(2, dim=-1)


class IAFTransform(FlowTransform):
    r"""One IAF step with the numerically stable gated update (Kingma et al. 2016, Algorithm 1):

        [m, s] = MADE(z, h),   σ = sigmoid(s),   f(z) = σ ⊙ z + (1 − σ) ⊙ m,
        log |det ∂f/∂z| = Σ_i log σ_i,

    exact because (m_i, σ_i) depend on z_{<i} only, so ∂f/∂z is lower triangular with
    diagonal σ. The inverse is exact too: solving z_i = (f_i − (1 − σ_i) m_i)/σ_i for
    i = 1…D takes D passes of the MADE (used by ``log_prob`` of points not sampled).

    References:
        Improved Variational Inference with Inverse Autoregressive Flow (Kingma, Salimans,
        Jozefowicz, Chen, Sutskever & Welling, 2016), eqs. 10–14, arXiv:1606.04934.

    With ``min_logit`` the gate logit is clamped, s ≥ min_logit, so σ ≥ sigmoid(min_logit) ≈
    e^{min_logit}: a gate that shuts completely (σ = 0 in floating point) would make the step
    non-invertible and the inverse divide by 0.

    Arguments:
        made: the autoregressive network (:class:`MADE`).
        context: h, (B, C) or None, per example.
        cache_size: torch's transform cache (1: the last (z, f(z)) pair is remembered).
        min_logit: lower bound of s (None: none).

    Example:
        >>> t = IAFTransform(MADE(3, 2, (16,)), torch.randn(4, 2))
        >>> z = torch.randn(4, 3)
        >>> torch.allclose(t.inv(t(z).clone()), z, atol=1e-5)
        True
    """

    def __init__(self, made: MADE, context: torch.Tensor | None = None, cache_size: int = 1, min_logit: float | None = None):
        super().__init__(cache_size=cache_size)
        self.made, self.context, self.min_logit = made, context, min_logit

    def _gate(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(m, s) of the MADE at z, with s clamped below at ``min_logit``."""
        m, s = self.made(z, self.context)
        return m, s if self.min_logit is None else s.clamp_min(self.min_logit)

    def _call_and_ladj(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m, s = self._gate(z)
        y = torch.sigmoid(s) * z + torch.sigmoid(-s) * m
        return y, F.logsigmoid(s).sum(-1)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        # Solve for one coordinate per MADE pass, in order: (m_i, s_i) depend on z_{<i} only,
        # which are already exact. Later coordinates stay 0 until solved (never inf/NaN, which
        # the masked-out weights would otherwise turn into NaN through 0·inf).
        z = torch.zeros_like(y)
        for i in range(y.shape[-1]):
            m, s = self._gate(z)
            z_i = (y[..., i] - torch.sigmoid(-s[..., i]) * m[..., i]) / torch.sigmoid(s[..., i])
            z = torch.cat([z[..., :i], z_i.unsqueeze(-1), z[..., i + 1 :]], dim=-1)
        return z


class IAFPosterior(nn.Module):
    r"""Diagonal Gaussian posterior followed by K inverse autoregressive flow steps (survey §2.12).

        (μ_0, log σ_0, h) = encoder head(x),   z_0 = μ_0 + σ_0 ⊙ ε,
        z_k = σ_k ⊙ z_{k−1} + (1 − σ_k) ⊙ m_k,   [m_k, s_k] = MADE_k(z_{k−1}, h),  σ_k = sigmoid(s_k),
        log q(z_K|x) = −Σ_i (½ ε_i² + ½ log 2π + log σ_0,i) − Σ_k Σ_i log σ_k,i,

    with the order of z reversed between steps (log-det 0). The MADE weights are shared by
    all examples; the context h is per example. ``log_prob`` of any z is exact (D MADE
    passes per step to invert); ``rsample_and_log_prob`` needs none. The ELBO estimates the
    KL as log q(z_K|x) − log p(z_K) at the sample, without splitting off KL(q_0 ‖ p): the gate
    can discard z_0, and the split then diverges (:func:`vaekit.distributions.sample_and_kl`).

    References:
        Improved Variational Inference with Inverse Autoregressive Flow (Kingma, Salimans,
        Jozefowicz, Chen, Sutskever & Welling, 2016), arXiv:1606.04934.

    Arguments:
        in_features: F, the size of the encoder features.
        latent_dim: D, the size of z.
        flow_steps: K, the number of IAF steps.
        hidden_dims: hidden sizes of each step's MADE.
        context_dim: size of the context h the encoder gives each step (0: none).
        logvar_clamp: (min, max) range of the base's log σ_0² (None: no clamp; see
            :func:`vaekit.distributions.posteriors.clamp_log_scale`); the gate logits are also
            kept ≥ min/2, so every scale of the flow, σ_0 and each σ_k, stays ≳ e^{min/2}.

    Example:
        >>> q = IAFPosterior(32, 4, flow_steps=2, hidden_dims=(16,), context_dim=8)(torch.randn(5, 32))
        >>> z, log_q = q.rsample_and_log_prob((3,))
        >>> torch.allclose(q.log_prob(z.clone()), log_q, atol=1e-4)
        True
    """

    def __init__(
        self,
        in_features: int,
        latent_dim: int,
        flow_steps: int = 2,
        hidden_dims: Sequence[int] = (128, 128),
        context_dim: int = 32,
        logvar_clamp: Sequence[float] | None = DEFAULT_LOGVAR_CLAMP,
    ):
        super().__init__()
        if int(context_dim) != context_dim or context_dim < 0:
            raise ConfigError(f"context_dim must be an integer ≥ 0, got {context_dim!r}")
        if any(int(w) != w or w < 1 for w in hidden_dims):
            raise ConfigError(f"hidden_dims must be positive sizes, got {tuple(hidden_dims)}")
        self.latent_dim, self.flow_steps, self.context_dim = latent_dim, check_flow_steps(flow_steps), int(context_dim)
        self.logvar_clamp = check_logvar_clamp(logvar_clamp)
        self.net = nn.Linear(in_features, 2 * latent_dim + self.context_dim)
        widths = tuple(int(w) for w in hidden_dims)
        self.steps = nn.ModuleList(MADE(latent_dim, self.context_dim, widths) for _ in range(self.flow_steps))

    def forward(self, h: torch.Tensor) -> Distribution:
        d = self.latent_dim
        out = self.net(h)
        loc, log_scale = out[..., :d], clamp_log_scale(out[..., d : 2 * d], self.logvar_clamp)
        context = out[..., 2 * d :] if self.context_dim else None
        transforms: list = []
        min_logit = None if self.logvar_clamp is None else 0.5 * self.logvar_clamp[0]
        for k, made in enumerate(self.steps):
            if k:
                transforms.append(ReverseTransform())
            transforms.append(IAFTransform(made, context, min_logit=min_logit))
        # no closed-form base KL: the gate can discard z_0 (see sample_and_kl)
        return FlowDistribution(diagonal_gaussian(loc, log_scale), transforms, split_base_kl=False)
