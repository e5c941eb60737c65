"""The KL capacity of Burgess et al.: the KL pulled toward a target C raised over training."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from vaekit.errors import ConfigError
from vaekit.objectives.posterior_sample import PosteriorSample
from vaekit.objectives.schedules import linear_warmup

if TYPE_CHECKING:  # pragma: no cover
    from vaekit.models.model import LatentVariableModel

__all__ = ["KLCapacity", "capacity_at"]


def capacity_at(step: int, capacity: float, capacity_steps: int) -> float:
    """C_t = C_max · min(1, t / capacity_steps) nats (C_max at once when ``capacity_steps`` is 0)."""
    return capacity * linear_warmup(step, capacity_steps)


class KLCapacity:
    r"""Controlled KL capacity: the penalty γ · |E_batch KL(q(z|x) ‖ p(z)) − C_t|.

    Used with a KL weight of 0, the loss is  −log p(x|z) + γ |KL − C_t|  with the target
    C_t = C_max · min(1, t / N) raised linearly from 0 to C_max nats over N optimisation
    steps (t = ``model.step``). Early on the code carries little information; the capacity
    grows so the factors that most reduce the reconstruction error are encoded first.
    The KL inside |·| is the batch mean, as in Burgess et al. (eq. 8).

    Arguments:
        capacity: C_max in nats (> 0).
        capacity_steps: N, the steps over which C grows from 0 to C_max (0: C_max at once).
        gamma: γ, the weight of the penalty (large: the KL tracks C closely).

    Terms returned: ``capacity`` (the current C_t, nats).

    References:
        Understanding disentangling in β-VAE (Burgess, Higgins, Pal, Matthey, Watters,
        Desjardins & Lerchner, 2018), arXiv:1804.03599.

    Example:
        >>> from vaekit.objectives import ELBO
        >>> objective = ELBO([KLCapacity(25.0, 100_000, gamma=1000.0)], beta=0.0)
    """

    def __init__(self, capacity: float, capacity_steps: int, gamma: float = 1000.0):
        if not 0 < capacity < math.inf:
            raise ConfigError(f"capacity must be > 0 nats and finite (0 or None turns it off), got {capacity}")
        if capacity_steps < 0:
            raise ConfigError(f"capacity_steps must be ≥ 0, got {capacity_steps}")
        if not 0 <= gamma < math.inf:
            raise ConfigError(f"gamma must be ≥ 0 and finite, got {gamma}")
        self.capacity, self.capacity_steps, self.gamma = float(capacity), int(capacity_steps), float(gamma)

    def __call__(self, model: "LatentVariableModel", sample: PosteriorSample) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = capacity_at(model.step, self.capacity, self.capacity_steps)
        kl = sample.kl.mean()
        return self.gamma * (kl - c).abs(), {"capacity": torch.tensor(c, dtype=kl.dtype, device=kl.device)}
