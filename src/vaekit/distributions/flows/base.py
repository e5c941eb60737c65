"""What every flow posterior shares: the transform base class and the flow distribution.

A flow posterior is "a base distribution and a list of transforms" (survey §2.11):
z_0 ~ q_0(z|x) = N(μ(x), diag σ(x)²), z_K = f_K ∘ … ∘ f_1(z_0), and by the change of variables

    log q_K(z_K|x) = log q_0(z_0|x) − Σ_{k=1}^{K} log |det ∂f_k/∂z_{k−1}|.

The sum is accumulated on the forward pass (:meth:`FlowDistribution.rsample_and_log_prob`),
so flows whose inverse has no closed form (planar, radial) still give log q of their samples.
"""

from __future__ import annotations

import copy
import math
from typing import Sequence

import torch
from torch import nn
from torch.distributions import Distribution, TransformedDistribution, constraints
from torch.distributions.transforms import Transform

from vaekit.distributions.posteriors import DEFAULT_LOGVAR_CLAMP, check_logvar_clamp, clamp_log_scale, diagonal_gaussian
from vaekit.errors import ConfigError

__all__ = ["FlowTransform", "ReverseTransform", "FlowDistribution", "AmortisedFlowPosterior", "check_flow_steps", "vector_norm"]


def check_flow_steps(flow_steps: int) -> int:
    """``flow_steps`` as a positive int, or a ``ConfigError`` saying so."""
    try:
        valid = not isinstance(flow_steps, bool) and int(flow_steps) == flow_steps and flow_steps >= 1
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ConfigError(f"flow_steps must be a positive integer, got {flow_steps!r}")
    return int(flow_steps)


def vector_norm(x: torch.Tensor) -> torch.Tensor:
    """‖x‖ over the last dimension without overflow: m · ‖x / m‖ with m = max_i |x_i|.

    ``torch.linalg.vector_norm`` squares the entries first, so it returns inf once they pass
    ~10¹⁹ in float32; this form is finite whenever ‖x‖ is. Shape (…).
    """
    m = x.detach().abs().amax(-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
    return m.squeeze(-1) * torch.linalg.vector_norm(x / m, dim=-1)


class FlowTransform(Transform):
    r"""Base of vaekit's flow steps: a bijection of R^D (event dim 1) with an exact log-det.

    Subclasses implement ``_call_and_ladj(x) -> (y, log|det ∂y/∂x|)`` (shapes (…, D) and
    (…)), and ``_inverse`` where a closed form exists (planar and radial steps have none).
    The log-det computed on the forward pass is kept with the output, so
    ``log_abs_det_jacobian(x, y)`` right after ``y = t(x)`` costs nothing, and for any other
    pair it is recomputed from x (exact either way). Parameters are per-example tensors
    with batch shape (B,) that broadcast over leading sample dimensions: x may be (B, D)
    or (S, B, D).
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, cache_size: int = 1):
        super().__init__(cache_size=cache_size)
        self._cached_ladj: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def _call_and_ladj(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        y, ladj = self._call_and_ladj(x)
        self._cached_ladj = (x, y, ladj)
        return y

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(
            f"{type(self).__name__} has no closed-form inverse, so log q(z|x) is available only for z drawn from "
            "this distribution: use q.rsample_and_log_prob(shape) (vaekit.distributions.sample_with_log_prob)"
        )

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        cached = self._cached_ladj
        if cached is not None and cached[0] is x and cached[1] is y:
            return cached[2]
        return self._call_and_ladj(x)[1]

    def with_cache(self, cache_size: int = 1) -> "FlowTransform":
        if self._cache_size == cache_size:
            return self
        new = copy.copy(self)
        Transform.__init__(new, cache_size=cache_size)
        new._cached_ladj = None
        return new


class ReverseTransform(Transform):
    """Reverses the order of the last dimension, z ↦ (z_D, …, z_1); log|det| = 0.

    Placed between autoregressive steps so each variable is conditioned on the others in turn.

    Example:
        >>> ReverseTransform()(torch.tensor([1.0, 2.0, 3.0]))
        tensor([3., 2., 1.])
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, cache_size: int = 0):
        super().__init__(cache_size=cache_size)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return x.flip(-1)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y.flip(-1)

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[:-1])


class FlowDistribution(TransformedDistribution):
    r"""q_K(z|x): a base distribution q_0 pushed through flow steps f_1, …, f_K.

        log q_K(z_K|x) = log q_0(z_0|x) − Σ_k log |det ∂f_k/∂z_{k−1}|

    A ``TransformedDistribution`` (so ``rsample``, ``sample``, ``batch_shape``,
    ``event_shape`` and ``transforms`` behave as in torch) that also returns a sample with
    its log-density in one forward pass. ``log_prob(z)`` inverts the transforms: it is exact
    for the sample most recently drawn (torch's transform cache) and for flows with an
    inverse (IAF); planar and radial steps have no closed-form inverse and raise
    ``NotImplementedError`` for any other z — use :meth:`rsample_and_log_prob`.

    Arguments:
        base_dist: q_0, batch shape (B,), event shape (D,).
        transforms: the flow steps, each a ``Transform`` on real vectors of size D.
        split_base_kl: whether the ELBO may take KL(q_0 ‖ p) in closed form and estimate only
            the flow's part (:func:`vaekit.distributions.sample_and_kl`). Right for flows
            that keep z_0 in z_K (planar, radial: z_K = z_0 + residual terms); wrong for a
            flow that can gate z_0 out (IAF), where it adds noise that grows as σ_0².

    Example:
        >>> from torch.distributions import Independent, Normal
        >>> base = Independent(Normal(torch.zeros(2, 3), torch.ones(2, 3)), 1)
        >>> q = FlowDistribution(base, [ReverseTransform()])
        >>> z, log_q = q.rsample_and_log_prob((5,))
        >>> z.shape, log_q.shape
        (torch.Size([5, 2, 3]), torch.Size([5, 2]))
    """

    split_base_kl: bool = True  # also the value of instances torch makes without __init__ (expand)

    def __init__(self, base_dist: Distribution, transforms: list[Transform], validate_args: bool | None = False,
                 split_base_kl: bool = True):
        super().__init__(base_dist, transforms, validate_args=validate_args)
        self.split_base_kl = split_base_kl

    def push_forward(self, z0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z_K, log q_K(z_K|x)) for given base points z_0, shapes (…, B, D) and (…, B)."""
        log_q = self.base_dist.log_prob(z0)
        z = z0
        for t in self.transforms:
            y = t(z)
            log_q = log_q - t.log_abs_det_jacobian(z, y)
            z = y
        return z, log_q

    def rsample_and_log_prob(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size()) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised sample z_K and log q_K(z_K|x), shapes (*sample_shape, B, D) and (*sample_shape, B)."""
        return self.push_forward(self.base_dist.rsample(torch.Size(sample_shape)))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        r"""log q_K(value|x) by inverting the steps (torch's ``TransformedDistribution.log_prob``), shape (…, B).

        An inverse can be ill-conditioned: an IAF step whose gate sits near its floor amplifies
        rounding errors by 1/σ_k per coordinate, and a solved z_0 can leave the float range, where
        inf − inf and 0·inf give NaN. For a finite ``value`` and a finite base q_0 such a point is
        reported as lying, in floating point, outside the support: log q = −inf, never NaN (a
        NaN input or NaN parameters still give NaN). :meth:`rsample_and_log_prob` needs no
        inverse and stays finite.
        """
        log_q = super().log_prob(value)
        lost = torch.isnan(log_q) & torch.isfinite(value).all(-1)
        lost = lost & torch.isfinite(self.base_dist.mean).all(-1) & torch.isfinite(self.base_dist.stddev).all(-1)
        return log_q.masked_fill(lost, -math.inf)


class AmortisedFlowPosterior(nn.Module):
    """A diagonal Gaussian q_0(z|x) and K flow steps whose parameters all come from one linear
    layer on the encoder features ("the parameters of the flow are outputs of the inference
    network", Rezende & Mohamed 2015, §4). Subclasses say how many numbers a step takes
    (:meth:`step_size`) and build a step's transform from them (:meth:`step`). The base's
    log σ² is clamped to ``logvar_clamp`` (:func:`vaekit.distributions.posteriors.clamp_log_scale`).
    """

    def __init__(self, in_features: int, latent_dim: int, flow_steps: int,
                 logvar_clamp: Sequence[float] | None = DEFAULT_LOGVAR_CLAMP):
        super().__init__()
        self.latent_dim, self.flow_steps = latent_dim, check_flow_steps(flow_steps)
        self.logvar_clamp = check_logvar_clamp(logvar_clamp)
        self.net = nn.Linear(in_features, 2 * latent_dim + self.flow_steps * self.step_size(latent_dim))

    def step_size(self, latent_dim: int) -> int:
        raise NotImplementedError

    def step(self, parameters: torch.Tensor) -> Transform:
        raise NotImplementedError

    def forward(self, h: torch.Tensor) -> Distribution:
        d = self.latent_dim
        out = self.net(h)
        steps = out[..., 2 * d :].unflatten(-1, (self.flow_steps, self.step_size(d))).unbind(-2)
        base = diagonal_gaussian(out[..., :d], clamp_log_scale(out[..., d : 2 * d], self.logvar_clamp))
        return FlowDistribution(base, [self.step(p) for p in steps])
