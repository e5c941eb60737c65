"""Likelihood heads p(x|z): map a decoder's raw output to a distribution over x.

A head declares ``num_parameters`` (P), the number of raw values the decoder must give
per observed value; its forward takes the decoder output, shaped (B, P·C, H, W) or
(B, P·M), and returns a distribution whose event shape is the input shape, so
``log_prob(x)`` is one number per example: log p(x|z) summed over every pixel or feature.

:func:`log_prob_repeated` scores each example under R decoded codes at once (importance
sampling, ``vaekit.log_likelihood``) without copying x R times, with fused sums for the
Bernoulli and Gaussian heads: the same values as ``log_prob`` in fewer passes over memory.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Bernoulli, Distribution, Independent, Normal

from vaekit.distributions.discretized_logistic import DiscretizedLogistic

__all__ = [
    "LikelihoodHead",
    "BernoulliLikelihood",
    "GaussianLikelihood",
    "DiscretizedLogisticLikelihood",
    "LIKELIHOODS",
    "make_likelihood",
    "bernoulli_log_prob",
    "normal_log_prob",
    "log_prob_repeated",
]


class LikelihoodHead(nn.Module):
    """Base of the likelihood heads: splits the decoder output into P parameter tensors."""

    num_parameters: int = 1

    def __init__(self, input_shape: Sequence[int]):
        super().__init__()
        self.input_shape = tuple(input_shape)

    def split(self, raw: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.num_parameters == 1:
            return (raw.reshape(raw.shape[0], *self.input_shape),)
        return raw.reshape(raw.shape[0], self.num_parameters, *self.input_shape).unbind(1)

    def wrap(self, d: Distribution) -> Distribution:
        return Independent(d, len(self.input_shape), validate_args=False)


class BernoulliLikelihood(LikelihoodHead):
    r"""p(x|z) = Π_j Bernoulli(x_j; sigmoid(ℓ_j)) with logits ℓ from the decoder.

    For binary data this is a probability; for grey levels in [0, 1] its log_prob is the
    negative binary cross-entropy (the usual, unnormalised, choice; see
    ``DiscretizedLogisticLikelihood`` for a proper likelihood of 8-bit data).
    """

    def forward(self, raw: torch.Tensor) -> Distribution:
        (logits,) = self.split(raw)
        return self.wrap(Bernoulli(logits=logits, validate_args=False))


class GaussianLikelihood(LikelihoodHead):
    r"""p(x|z) = N(x; μ(z), σ² I) with σ fixed or learned (one scalar for all outputs).

    With a fixed σ, −log p(x|z) = ‖x − μ‖² / (2σ²) + M log(σ√(2π)): least squares
    (survey §1.3). A learned σ (``scale="learned"``) is the calibrated decoder of
    Rybkin et al. (2021, arXiv:2006.13202); it starts at ``init_scale`` and is kept ≥ ``min_scale``.
    """

    def __init__(self, input_shape: Sequence[int], scale: float | str = "learned", init_scale: float = 0.1, min_scale: float = 1e-3):
        super().__init__(input_shape)
        self.min_scale = min_scale
        if scale == "learned":
            self.log_scale = nn.Parameter(torch.tensor(math.log(init_scale)))
        else:
            self.register_buffer("log_scale", torch.tensor(math.log(float(scale))), persistent=False)

    def forward(self, raw: torch.Tensor) -> Distribution:
        (loc,) = self.split(raw)
        scale = self.log_scale.exp().clamp_min(self.min_scale).expand_as(loc)
        return self.wrap(Normal(loc, scale, validate_args=False))


class DiscretizedLogisticLikelihood(LikelihoodHead):
    """p(x|z) = Π_j DiscretizedLogistic(x_j; μ_j, s_j) for 8-bit data scaled to [0, 1].

    The decoder gives μ and log s per value; log s is kept ≥ −7 as in PixelCNN++.
    """

    num_parameters = 2

    def __init__(self, input_shape: Sequence[int], num_bins: int = 256):
        super().__init__(input_shape)
        self.num_bins = num_bins

    def forward(self, raw: torch.Tensor) -> Distribution:
        loc, log_scale = self.split(raw)
        return self.wrap(DiscretizedLogistic(loc, log_scale.clamp_min(-7.0).exp(), self.num_bins))


LIKELIHOODS: dict[str, type[LikelihoodHead]] = {
    "bernoulli": BernoulliLikelihood,
    "gaussian": GaussianLikelihood,
    "logistic": DiscretizedLogisticLikelihood,
}


def make_likelihood(name: str, input_shape: Sequence[int], scale: float | str = "learned") -> LikelihoodHead:
    """Build the likelihood head called ``name`` ("bernoulli", "gaussian" or "logistic")."""
    if name == "gaussian":
        return GaussianLikelihood(input_shape, scale=scale)
    return LIKELIHOODS[name](input_shape)


def _sum_event(values: torch.Tensor, event_dims: int) -> torch.Tensor:
    return values.sum(dim=tuple(range(-event_dims, 0))) if event_dims else values


PRODUCT_GROUP = 112
"""Values of σ(|ℓ|) ∈ [½, 1) multiplied together before one log: their product is ≥ 2⁻¹¹², a normal
float32 (the smallest is 2⁻¹²⁶), and 784 = 7 · 112 pixels of a 28×28 image take 7 logs."""


def bernoulli_log_prob(logits: torch.Tensor, x: torch.Tensor, event_dims: int, overwrite: bool = False) -> torch.Tensor:
    r"""Σ_j log Bernoulli(x_j; sigmoid(ℓ_j)) over the last ``event_dims`` dimensions, x broadcast against ℓ.

    The value of ``Independent(Bernoulli(logits=ℓ), event_dims).log_prob(x)`` (torch takes
    −BCE(ℓ, x) = log σ(ℓ) − (1 − x) ℓ per value, then the sum), in fewer passes over memory.
    With gradients it is −Σ_j [softplus(ℓ_j) − x_j ℓ_j], whose terms are ≥ 0 for x_j ∈ [0, 1]
    (the sum does not cancel). Without, the per-value logarithm is avoided:

        softplus(ℓ) − x ℓ = ½ (|ℓ| + (1 − 2x) ℓ) − log σ(|ℓ|),
        Σ_j log σ(|ℓ_j|) = Σ_groups log Π_{j ∈ group} σ(|ℓ_j|),

    with groups of :data:`PRODUCT_GROUP` values: one sigmoid per value and one log per group
    instead of an exp and a log1p per value (torch's softplus costs about five exps). The
    first part is two matrix-vector products, Σ_j |ℓ_j| and Σ_j (1 − 2x_j) ℓ_j (one vector
    per example). The rest in place on |ℓ| (abs, sigmoid, grouped product): five passes over
    ℓ in all, three of them reads (``benchmarks/loglik_speed.py --breakdown``).
    Rounding each factor to float32 costs at most 6·10⁻⁸ nats per value; the result agrees
    with torch's to 10⁻⁵ relative (tests/eval/test_log_likelihood_fast.py).

    Arguments:
        logits: ℓ, shape (*batch, *event).
        x: the data, broadcastable to ℓ's shape.
        event_dims: the number of trailing dimensions summed over.
        overwrite: without gradients, work in ℓ's own memory (its values are lost): the
            caller's scratch, as for decoded logits scored once. Spares an array the size of
            ℓ, and with it a fresh round of page faults and of cache misses.
    """
    if torch.is_grad_enabled() and (logits.requires_grad or x.requires_grad):
        terms = F.softplus(logits)  # its backward reads ℓ, not this output: updating it in place is safe
        return -_sum_event(terms.addcmul_(logits, x, value=-1.0), event_dims)
    logits = logits.flatten(-event_dims) if event_dims else logits.unsqueeze(-1)
    x = x.flatten(-event_dims) if event_dims else x.unsqueeze(-1)
    signed = _signed_sum(logits, 1.0 - 2.0 * x)
    in_place = overwrite and logits.is_contiguous() and not logits.requires_grad  # never an expanded view or a parameter
    magnitude = logits.abs_() if in_place else logits.abs()
    twice_linear = _signed_sum(magnitude, None) + signed  # Σ |ℓ| + (1 − 2x) ℓ = 2 Σ [relu(ℓ) − x ℓ]
    log_sigmoid = _sum_log_grouped(magnitude.sigmoid_())  # Σ log σ(|ℓ|) = −Σ log(1 + e^{−|ℓ|})
    return log_sigmoid - 0.5 * twice_linear  # shapes broadcast: x may have more batch dimensions than ℓ


def _signed_sum(logits: torch.Tensor, signs: torch.Tensor | None) -> torch.Tensor:
    """Σ_j s_j ℓ_j over the last dimension (s = 1 when ``signs`` is None), s broadcast against ℓ: a
    matrix-vector product (one per example when s is one row per example, x against its R codes),
    no (…, M) product array. A single vector goes through ``mv``, faster than a batched product of one."""
    size = logits.shape[-1]
    if signs is None or (signs.numel() == size and signs.dim() <= logits.dim() and signs.dtype == logits.dtype):
        vector = logits.new_ones(size) if signs is None else signs.reshape(size)
        rows = logits.reshape(-1, size)
        if rows.stride(-1) == 1:
            return torch.mv(rows, vector).view(logits.shape[:-1])
    if (signs is not None and signs.dim() == logits.dim() >= 2 and signs.shape[-2] == 1 and signs.shape[:-2] == logits.shape[:-2]
            and signs.dtype == logits.dtype):
        return torch.matmul(logits, signs.transpose(-1, -2)).squeeze(-1)
    return (logits * signs).sum(-1) if signs is not None else logits.sum(-1)


def _sum_log_grouped(values: torch.Tensor) -> torch.Tensor:
    """Σ log v over the last dimension for v ∈ [½, 1]: one log per :data:`PRODUCT_GROUP` values (their product),
    or per as many as keep the product a normal number of a narrower type (14 in float16)."""
    size = values.shape[-1]
    group = min(PRODUCT_GROUP, int(-math.log2(torch.finfo(values.dtype).tiny)))
    whole = size - size % group
    total = values[..., :whole].unflatten(-1, (whole // group, group)).prod(-1).log_().sum(-1)
    if whole < size:
        total += values[..., whole:].prod(-1).log_()
    return total


def normal_log_prob(loc: torch.Tensor, scale: torch.Tensor, x: torch.Tensor, event_dims: int) -> torch.Tensor:
    r"""Σ_j log N(x_j; μ_j, σ_j²) over the last ``event_dims`` dimensions, x broadcast against μ.

    The value of ``Independent(Normal(μ, σ), event_dims).log_prob(x)``. When σ is one value
    expanded over every output (:class:`GaussianLikelihood`), the sum is taken before scaling:

        −‖x − μ‖² / (2σ²) − M (log σ + ½ log 2π),   M values per example,

    two passes over the data (a difference and a sum of squares) instead of torch's
    elementwise σ², log σ and division.
    """
    if scale.dim() and all(s == 0 for s in scale.stride()):  # one σ, expanded
        sigma = scale[(0,) * scale.dim()]
        squares = _sum_event((loc - x).square_(), event_dims)
        count = math.prod(torch.broadcast_shapes(loc.shape, x.shape)[-event_dims:]) if event_dims else 1  # values summed per example
        return -squares / (2 * sigma.square()) - count * (sigma.log() + 0.5 * math.log(2 * math.pi))
    return _sum_event(Normal(loc, scale, validate_args=False).log_prob(x), event_dims)


def _regroup(t: torch.Tensor, repeats: int) -> torch.Tensor:
    """(B·R, …) → (B, R, …): the R consecutive rows of each example."""
    return t.reshape(t.shape[0] // repeats, repeats, *t.shape[1:])


def _at_precision(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Parameters from a lower-precision decoder pass (bf16) in the data's precision for scoring."""
    return t if t.dtype == x.dtype else t.to(torch.promote_types(t.dtype, x.dtype))


def log_prob_repeated(px: Distribution, x: torch.Tensor, repeats: int, overwrite: bool = False) -> torch.Tensor:
    r"""log p_{b,r}(x_b) for a p(x|z) over B·R codes in which rows b·R … b·R + R − 1 belong to x_b; shape (B, R).

    The scores of importance sampling: example b under each of its R codes z_{b,r}. Equal to
    ``px.log_prob(x.repeat_interleave(R, 0)).view(B, R)``, but x is broadcast over the R codes
    instead of copied, and the heads of this module (exactly ``Independent`` of torch's
    ``Bernoulli`` or ``Normal``, or of :class:`DiscretizedLogistic`) take fused sums
    (:func:`bernoulli_log_prob`, :func:`normal_log_prob`). Parameters from a bf16 decoder
    pass are scored in x's precision. Any other distribution, subclasses included, is scored
    by its own ``log_prob`` on x repeated.

    Arguments:
        px: p(x|z) with batch shape (B·R,) and event shape ``x.shape[1:]``.
        x: the data, shape (B, *event_shape).
        repeats: R, the codes per example.
        overwrite: let :func:`bernoulli_log_prob` work in px's logits (they are lost): for a
            p(x|z) decoded to be scored once, without gradients.

    Example:
        >>> px = BernoulliLikelihood((3,))(torch.zeros(4, 3))  # B = 2 examples, R = 2 codes each
        >>> log_prob_repeated(px, torch.ones(2, 3), 2)
        tensor([[-2.0794, -2.0794],
                [-2.0794, -2.0794]])
    """
    event_dims = x.dim() - 1
    base = px.base_dist if type(px) is Independent and px.reinterpreted_batch_ndims == event_dims else None
    xr = x.unsqueeze(1)  # (B, 1, *event): broadcast over the R codes
    if type(base) is Bernoulli:  # torch scores a Bernoulli by its logits too
        return bernoulli_log_prob(_regroup(_at_precision(base.logits, x), repeats), xr, event_dims, overwrite)
    if type(base) is Normal:
        loc, scale = (_at_precision(t, x) for t in (base.loc, base.scale))
        return normal_log_prob(_regroup(loc, repeats), _regroup(scale, repeats), xr, event_dims)
    if type(base) is DiscretizedLogistic:
        loc, scale = (_regroup(_at_precision(t, x), repeats) for t in (base.loc, base.scale))
        return _sum_event(DiscretizedLogistic(loc, scale, base.num_bins).log_prob(xr), event_dims)
    return px.log_prob(x.repeat_interleave(repeats, dim=0)).view(x.shape[0], repeats)
