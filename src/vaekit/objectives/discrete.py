"""Schedules and penalties of discrete-latent models: the Gumbel-softmax temperature, Joint-VAE's two capacities."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch.distributions import kl_divergence

from vaekit.distributions.categorical import GumbelSoftmaxCategorical
from vaekit.distributions.product import ProductDistribution
from vaekit.errors import ConfigError
from vaekit.objectives.beta import capacity_at
from vaekit.objectives.posterior_sample import PosteriorSample

if TYPE_CHECKING:  # pragma: no cover
    from vaekit.models.model import LatentVariableModel

__all__ = ["TemperatureSchedule", "annealed_temperature", "JointCapacity", "discrete_capacity_at"]


def annealed_temperature(step: int, temperature: float, min_temperature: float, anneal_rate: float) -> float:
    r"""τ_t = max(τ_min, τ_0 · exp(−r t)) (Jang et al. 2017, §4.1; they apply it every 1000 steps, here every step)."""
    return max(min_temperature, temperature * math.exp(-anneal_rate * step))


@dataclass(frozen=True)
class TemperatureSchedule:
    r"""The Gumbel-softmax temperature at optimisation step t: τ_t = max(τ_min, τ_0 · exp(−r t)).

    High temperatures give smooth, low-variance but biased relaxed samples; low ones are
    close to one-hot with high-variance gradients. Jang et al. anneal from τ_0 = 1 to
    τ_min = 0.5 with r ∈ {1e−5, 1e−4}; their released code uses r = 3·10⁻⁵ (τ_min is reached
    after ln 2 / r ≈ 23 000 steps), our default.

    Arguments:
        temperature: τ_0 > 0.
        min_temperature: τ_min, 0 < τ_min ≤ τ_0.
        anneal_rate: r ≥ 0 per step (0: τ_0 throughout).

    References:
        Categorical Reparameterization with Gumbel-Softmax (Jang, Gu & Poole, ICLR 2017),
        arXiv:1611.01144.

    Example:
        >>> TemperatureSchedule(1.0, 0.1, 1e-3)(1000)  # exp(−1), above τ_min
        0.36787944117144233
    """

    temperature: float = 1.0
    min_temperature: float = 0.5
    anneal_rate: float = 3e-5

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0 (the Gumbel-softmax τ_0), got {self.temperature}; try 1.0")
        if not self.min_temperature > 0:
            raise ConfigError(f"min_temperature must be > 0, got {self.min_temperature}; try 0.5")
        if self.min_temperature > self.temperature:
            raise ConfigError(f"min_temperature ({self.min_temperature}) must be ≤ temperature ({self.temperature}): "
                              "the temperature is annealed down from temperature to min_temperature")
        if not self.anneal_rate >= 0:
            raise ConfigError(f"anneal_rate must be ≥ 0 per step (0: a constant temperature), got {self.anneal_rate}")

    def __call__(self, step: int) -> float:
        return annealed_temperature(step, self.temperature, self.min_temperature, self.anneal_rate)


def discrete_capacity_at(step: int, capacity: float, capacity_steps: int, max_capacity: float) -> float:
    """C_disc(t) = min(C_max · min(1, t / capacity_steps), Σ_n log K_n): no more than the code can carry."""
    return min(capacity_at(step, capacity, capacity_steps), max_capacity)


class JointCapacity:
    r"""Joint-VAE's penalty: each KL pulled toward its own capacity (Dupont 2018, eq. 7).

        penalty = γ |KL(q(z|x) ‖ p(z)) − C_z(t)| + γ |KL(q(c|x) ‖ p(c)) − C_c(t)|

    with the continuous capacity C_z(t) = C_z,max · min(1, t/N) and the discrete one
    C_c(t) = min(C_c,max · min(1, t/N), Σ_n log K): the KL of N K-way categoricals to the
    uniform prior is at most N log K, and Dupont caps the target there so that the
    penalty does not push for an impossible KL. Both KLs are batch means of closed forms
    (the discrete one the categorical KL, whatever the temperature). Used with an ELBO whose
    KL weight is 0 (the capacities replace it): loss = −log p(x|z, c) + penalty.

    Arguments:
        capacity: C_z,max ≥ 0, nats of the continuous code.
        discrete_capacity: C_c,max ≥ 0, nats of the discrete code.
        capacity_steps: N ≥ 0, steps over which both capacities rise from 0.
        gamma: γ ≥ 0.

    Terms returned: ``kl_continuous``, ``kl_discrete`` (batch means, before γ), ``capacity``
    and ``discrete_capacity`` (C_z(t), C_c(t)).

    References:
        Learning Disentangled Joint Continuous and Discrete Representations (Dupont,
        NeurIPS 2018), arXiv:1804.00104.

    Example:
        >>> from vaekit.objectives import ELBO
        >>> objective = ELBO([JointCapacity(5.0, 5.0, 25_000, gamma=30.0)], beta=0.0)
    """

    def __init__(self, capacity: float, discrete_capacity: float, capacity_steps: int, gamma: float = 30.0):
        for name, value in (("capacity", capacity), ("discrete_capacity", discrete_capacity), ("gamma", gamma)):
            if not value >= 0:
                raise ConfigError(f"{name} must be ≥ 0, got {value}")
        if capacity_steps < 0:
            raise ConfigError(f"capacity_steps must be ≥ 0, got {capacity_steps}")
        self.capacity, self.discrete_capacity = float(capacity), float(discrete_capacity)
        self.capacity_steps, self.gamma = int(capacity_steps), float(gamma)

    @staticmethod
    def kls(q: ProductDistribution, p: ProductDistribution) -> tuple[torch.Tensor, torch.Tensor, float]:
        """KL of the continuous parts and of the categorical part (per example), and the latter's maximum N log K."""
        discrete = [isinstance(part, GumbelSoftmaxCategorical) for part in q.parts] if isinstance(q, ProductDistribution) else []
        if discrete != [False, True]:
            raise ConfigError("JointCapacity needs a posterior [continuous, categorical] (a GaussianCategoricalPosterior)")
        kl_c, kl_d = (kl_divergence(qi, pi) for qi, pi in zip(q.parts, p.parts))
        cat = q.parts[1]
        return kl_c, kl_d, cat.num_variables * math.log(cat.categories)

    def __call__(self, model: "LatentVariableModel", sample: PosteriorSample) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        kl_c, kl_d, max_discrete = self.kls(sample.q, sample.prior)  # type: ignore[arg-type]
        kl_c, kl_d = kl_c.mean(), kl_d.mean()
        c_cont = capacity_at(model.step, self.capacity, self.capacity_steps)
        c_disc = discrete_capacity_at(model.step, self.discrete_capacity, self.capacity_steps, max_discrete)
        penalty = self.gamma * ((kl_c - c_cont).abs() + (kl_d - c_disc).abs())
        targets = torch.tensor([c_cont, c_disc], dtype=kl_c.dtype, device=kl_c.device)
        return penalty, {"kl_continuous": kl_c, "kl_discrete": kl_d, "capacity": targets[0], "discrete_capacity": targets[1]}
