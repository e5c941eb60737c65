"""Likelihood heads p(x|z): map a decoder's raw output to a distribution over x.

A head declares ``num_parameters`` (P), the number of raw values the decoder must give
per observed value; its forward takes the decoder output, shaped (B, P·C, H, W) or
(B, P·M), and returns a distribution whose event shape is the input shape, so
``log_prob(x)`` is one number per example: log p(x|z) summed over every pixel or feature.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
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
]


class LikelihoodHead(nn.Module):
    """Base of the likelihood heads: splits the decoder output into P parameter tensors."""

    num_parameters: int = 1

    def __init__(self, input_shape: Sequence[int]):
        super().__init__()
        self.input_shape = tuple(input_shape)

    def split(self, raw: torch.Tensor) -> tuple[torch.Tensor, ...]:
        params = raw.reshape(raw.shape[0], self.num_parameters, *self.input_shape)
        return params.unbind(1)

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
