"""The discretised logistic distribution for 8-bit data."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.distributions import Distribution, constraints

__all__ = ["DiscretizedLogistic", "log1mexp"]


def log1mexp(d: torch.Tensor) -> torch.Tensor:
    """log(1 − exp(−d)) for d > 0, accurate for small and large d (Mächler, 2012).

    The branch for large d is evaluated at max(d, log 2), so that for a d too small for it
    (exp(−d) = 1, log1p(−1) = −∞) its unused gradient is not 0 · ∞ = NaN.
    """
    return torch.where(d < math.log(2.0), torch.log(-torch.expm1(-d)), torch.log1p(-torch.exp(-d.clamp_min(math.log(2.0)))))


class DiscretizedLogistic(Distribution):
    r"""A logistic distribution discretised onto the grid {0, 1/(K−1), …, 1}.

    Each value x = k/(K−1) owns the bin [x − h, x + h] with h = 1/(2(K−1)); the two end
    bins extend to ∓∞ so the K probabilities sum to one:

        P(x) = F((x + h − μ)/s) − F((x − h − μ)/s),   F = sigmoid,

    with F(+∞) = 1 at x = 1 and F(−∞) = 0 at x = 0. The log-probability is computed
    without cancellation: for a > b, log(σ(a) − σ(b)) = log σ(a) + log σ(−b) + log(1 − e^{b−a}).
    A proper discrete distribution: log_prob is a log-probability in nats, comparable with
    Bernoulli log-likelihoods of the same data.

    References:
        PixelCNN++ (Salimans et al., 2017), arXiv:1701.05517;
        Improved Variational Inference with Inverse Autoregressive Flow (Kingma et al., 2016).

    Arguments:
        loc: location μ (any shape), in data units.
        scale: scale s > 0, same shape.
        num_bins: K, 256 for 8-bit data.

    Example:
        >>> d = DiscretizedLogistic(torch.tensor([0.5]), torch.tensor([0.1]))
        >>> grid = torch.linspace(0, 1, 256).unsqueeze(-1)
        >>> float(d.log_prob(grid).exp().sum())  # doctest: +ELLIPSIS
        1.0...
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.unit_interval
    has_rsample = False

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, num_bins: int = 256, validate_args: bool | None = False):
        self.loc, self.scale = torch.broadcast_tensors(loc, scale)
        self.num_bins = num_bins
        super().__init__(self.loc.shape, validate_args=validate_args)

    @property
    def half_width(self) -> float:
        return 0.5 / (self.num_bins - 1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        h = self.half_width
        centred = (value - self.loc) / self.scale
        a = centred + h / self.scale  # upper edge, standardised
        b = centred - h / self.scale  # lower edge, standardised
        interior = F.logsigmoid(a) + F.logsigmoid(-b) + log1mexp(2 * h / self.scale)
        lowest = F.logsigmoid(a)  # F(a) − F(−∞)
        highest = F.logsigmoid(-b)  # F(+∞) − F(b)
        return torch.where(value < h, lowest, torch.where(value > 1 - h, highest, interior))

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        """P(X ≤ value) for value on the grid."""
        upper = torch.where(value > 1 - self.half_width, torch.full_like(value, math.inf), value + self.half_width)
        return torch.sigmoid((upper - self.loc) / self.scale)

    @property
    def mean(self) -> torch.Tensor:
        # E[X] = Σ_{k=1}^{K-1} P(X ≥ k/(K−1)) / (K−1) = Σ_k (1 − F((k − ½)/(K−1))) / (K−1)
        thresholds = (torch.arange(1, self.num_bins, device=self.loc.device, dtype=self.loc.dtype) - 0.5) / (self.num_bins - 1)
        tail = torch.sigmoid((self.loc.unsqueeze(-1) - thresholds) / self.scale.unsqueeze(-1))
        return tail.sum(-1) / (self.num_bins - 1)

    @property
    def mode(self) -> torch.Tensor:
        """The most probable grid value: the interior value nearest μ or one of the two end bins.

        The logistic density is symmetric and unimodal, so among the interior bins (all of width
        2h) the one centred nearest μ has the most mass; the end bins reach to ∓∞ and win when
        the scale is not small (μ = 0.3, s = 1: P(0) = 0.43 against 0.002 for the bin at 0.3).
        """
        k = self.num_bins - 1
        interior = torch.round(self.loc * k).clamp(min(1, k), max(k - 1, 0)) / k
        candidates = torch.stack([torch.zeros_like(interior), interior, torch.ones_like(interior)])
        with torch.no_grad():
            best = self.log_prob(candidates).argmax(0, keepdim=True)
        return candidates.gather(0, best).squeeze(0)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            u = torch.rand(shape, device=self.loc.device, dtype=self.loc.dtype).clamp(1e-6, 1 - 1e-6)
            x = self.loc + self.scale * (torch.log(u) - torch.log1p(-u))
            return torch.round(x.clamp(0, 1) * (self.num_bins - 1)) / (self.num_bins - 1)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(DiscretizedLogistic, _instance)
        new.loc = self.loc.expand(batch_shape)
        new.scale = self.scale.expand(batch_shape)
        new.num_bins = self.num_bins
        super(DiscretizedLogistic, new).__init__(torch.Size(batch_shape), validate_args=False)
        return new
