"""Products of independent distributions over concatenated codes: z = [z_1, …, z_m], q(z) = Π_i q_i(z_i).

Joint-VAE's posterior is one: a diagonal Gaussian over the continuous code times
categoricals over the discrete one (Dupont 2018). :class:`ProductDistribution` does the
bookkeeping once (samples are concatenated, log-densities and entropies add up, the KL of
two products is the sum of the parts' KLs), so any parts with 1-D events compose.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.distributions import Distribution, constraints, kl_divergence, register_kl

from vaekit.distributions.sampling import sample_with_log_prob

__all__ = ["ProductDistribution", "ProductPrior", "kl_parts", "kl_product"]


class ProductDistribution(Distribution):
    r"""Independent parts over the pieces of one vector: q(z) = Π_i q_i(z_i), z = [z_1, …, z_m].

    Every part has the same batch shape and a 1-D event (D_i,); the product's event is
    (Σ_i D_i,), the parts' codes concatenated along the last axis in order. Then

        log q(z) = Σ_i log q_i(z_i),   H[q] = Σ_i H[q_i],   E[z] = [E z_1, …, E z_m],

    ``rsample``/``sample`` concatenate the parts' draws, and the KL between two products
    with parts of matching sizes is Σ_i KL(q_i ‖ p_i) (registered; each part's KL is its own
    closed form, and the sum raises ``NotImplementedError`` when one part has none, so
    :func:`vaekit.distributions.sample_and_kl` falls back to the Monte-Carlo estimate).

    Arguments:
        parts: the factors q_1, …, q_m.

    Example:
        >>> from torch.distributions import Independent, Normal
        >>> q = ProductDistribution([Independent(Normal(torch.zeros(5, 2), 1.0), 1), Independent(Normal(torch.zeros(5, 3), 1.0), 1)])
        >>> q.event_shape, q.rsample().shape
        (torch.Size([5]), torch.Size([5, 5]))
    """

    arg_constraints: dict = {}
    support = constraints.real_vector

    def __init__(self, parts: Sequence[Distribution], validate_args: bool | None = False):
        parts = tuple(parts)
        if not parts:
            raise ValueError("ProductDistribution needs at least one part")
        if any(len(p.event_shape) != 1 for p in parts):
            raise ValueError(f"every part needs a 1-D event, got event shapes {[tuple(p.event_shape) for p in parts]}")
        if len({p.batch_shape for p in parts}) != 1:
            raise ValueError(f"every part needs the same batch shape, got {[tuple(p.batch_shape) for p in parts]}")
        self.parts = parts
        self.sizes = tuple(int(p.event_shape[0]) for p in parts)
        super().__init__(parts[0].batch_shape, torch.Size([sum(self.sizes)]), validate_args=validate_args)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, self.parts))})"

    @property
    def has_rsample(self) -> bool:  # type: ignore[override]
        return all(p.has_rsample for p in self.parts)

    def split(self, value: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The parts' pieces z_1, …, z_m of ``value`` (…, Σ D_i)."""
        return torch.split(value, self.sizes, dim=-1)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size()) -> torch.Tensor:
        return torch.cat([p.rsample(sample_shape) for p in self.parts], dim=-1)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([p.sample(sample_shape) for p in self.parts], dim=-1)

    def rsample_and_log_prob(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size()) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised draw and its log q, each part through :func:`sample_with_log_prob` (flows give both in one pass)."""
        draws = [sample_with_log_prob(p, sample_shape) for p in self.parts]
        return torch.cat([z for z, _ in draws], dim=-1), sum(log_q for _, log_q in draws)  # type: ignore[return-value]

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return sum(p.log_prob(v) for p, v in zip(self.parts, self.split(value)))  # type: ignore[return-value]

    def entropy(self) -> torch.Tensor:
        return sum(p.entropy() for p in self.parts)  # type: ignore[return-value]

    @property
    def mean(self) -> torch.Tensor:
        return torch.cat([p.mean for p in self.parts], dim=-1)

    @property
    def variance(self) -> torch.Tensor:
        return torch.cat([p.variance for p in self.parts], dim=-1)


def kl_parts(q: ProductDistribution, p: ProductDistribution) -> list[torch.Tensor]:
    """[KL(q_1 ‖ p_1), …, KL(q_m ‖ p_m)], each per example (batch shape); ``NotImplementedError``
    when the products do not have parts of the same sizes or a part has no closed form."""
    if q.sizes != p.sizes:
        raise NotImplementedError(f"products with parts of sizes {q.sizes} and {p.sizes}")
    return [kl_divergence(qi, pi) for qi, pi in zip(q.parts, p.parts)]


@register_kl(ProductDistribution, ProductDistribution)
def kl_product(q: ProductDistribution, p: ProductDistribution) -> torch.Tensor:
    r"""KL(Π_i q_i ‖ Π_i p_i) = Σ_i KL(q_i ‖ p_i) (the log-ratio is a sum of independent terms)."""
    return sum(kl_parts(q, p))  # type: ignore[return-value]


class ProductPrior(nn.Module):
    """p(z) = Π_i p_i(z_i): the priors' distributions as one :class:`ProductDistribution`.

    Arguments:
        priors: prior modules (forward takes no input and returns a distribution with a 1-D event).

    Example:
        >>> from vaekit.distributions import StandardNormalPrior
        >>> ProductPrior(StandardNormalPrior(2), StandardNormalPrior(3))().sample((4,)).shape
        torch.Size([4, 5])
    """

    def __init__(self, *priors: nn.Module):
        super().__init__()
        self.parts = nn.ModuleList(priors)

    def forward(self) -> ProductDistribution:
        return ProductDistribution([prior() for prior in self.parts])
