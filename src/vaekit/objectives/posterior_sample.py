"""What a regulariser of the ELBO reads: one reparameterised pass of a batch through a model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol

import torch
from torch.distributions import Distribution

if TYPE_CHECKING:  # pragma: no cover
    from vaekit.models.model import LatentVariableModel

__all__ = ["PosteriorSample", "Regulariser", "Reconstruction"]


@dataclass(frozen=True)
class PosteriorSample:
    """One reparameterised pass of a batch through a model, what regularisers read.

    Attributes:
        x: the batch (B, *input_shape).
        q: q(z|x), batch shape (B,), event shape (D,).
        z: one reparameterised draw z ~ q(z|x), shape (B, D).
        prior: p(z).
        kl: KL(q(z|x) ‖ p(z)) per example (closed form, else the one-sample estimate), shape (B,);
            None from objectives without a KL (the Wasserstein autoencoders' ``Autoencoding``).
        log_q: log q(z|x) at that draw, shape (B,), when the pass computed it (flows, or a KL
            without closed form); None otherwise (``q.log_prob(z)`` gives it).
    """

    x: torch.Tensor
    q: Distribution
    z: torch.Tensor
    prior: Distribution
    kl: torch.Tensor | None
    log_q: torch.Tensor | None = None


class Regulariser(Protocol):
    """``regulariser(model, sample) -> (penalty, terms)``: the scalar added to the loss (its
    weights applied) and named batch-mean terms to report (each before its weight)."""

    def __call__(self, model: "LatentVariableModel", sample: PosteriorSample) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...


Reconstruction = Callable[[Distribution, torch.Tensor], torch.Tensor]
"""``cost(p(x|z), x) -> (B,)``: a reconstruction cost replacing −log p(x|z) (e.g. log-cosh)."""
