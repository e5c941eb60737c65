r"""Categorical codes: N independent K-way categorical variables as concatenated one-hot rows.

The code z of a categorical VAE (Jang et al. 2017) is N one-hot vectors of length K,
flattened to one vector of N·K values, so it goes wherever a continuous code goes
(``model.decode(z)`` takes (B, N·K)). :class:`GumbelSoftmaxCategorical` is its
distribution:

* ``sample()`` draws exact one-hot codes, and ``log_prob`` of an exact code is the
  categorical log-probability Σ_n log π_{n,k_n};
* ``rsample()`` is the Gumbel-softmax (Concrete) relaxation at temperature τ,
  y_nk = softmax_k((log π_nk + g_nk)/τ) with g ~ Gumbel(0, 1), torch's
  ``RelaxedOneHotCategorical`` (optionally straight-through: the one-hot argmax forward,
  the relaxed gradient backward); at τ = 0 it is the exact draw;
* the KL between two of them is the categorical one, in closed form (registered).

References:
    Categorical Reparameterization with Gumbel-Softmax (Jang, Gu & Poole, ICLR 2017),
    arXiv:1611.01144. The Concrete Distribution: A Continuous Relaxation of Discrete Random
    Variables (Maddison, Mnih & Teh, ICLR 2017), arXiv:1611.00712.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Categorical, Distribution, RelaxedOneHotCategorical, constraints, register_kl

from vaekit.distributions.posteriors import DiagonalGaussianPosterior
from vaekit.distributions.product import ProductDistribution

__all__ = [
    "GumbelSoftmaxCategorical",
    "CategoricalPosterior",
    "UniformCategoricalPrior",
    "GaussianCategoricalPosterior",
    "kl_categorical_codes",
    "straight_through",
]


def straight_through(relaxed: torch.Tensor) -> torch.Tensor:
    r"""The straight-through Gumbel-softmax estimator (Jang et al. 2017, §2.2).

    Forward: the one-hot of argmax_k y_k for each row of ``relaxed`` (…, K); backward: the
    gradient of the relaxed y itself (z = hard − stop_gradient(y) + y).
    """
    hard = F.one_hot(relaxed.argmax(-1), relaxed.shape[-1]).to(relaxed.dtype)
    return hard - relaxed.detach() + relaxed


def _finite_or_zero(logits: torch.Tensor) -> torch.Tensor:
    """log π with −∞ (π = 0) replaced by 0, so that π log π = 0 there and its gradient is not NaN."""
    return torch.where(logits == -math.inf, torch.zeros_like(logits), logits)


class GumbelSoftmaxCategorical(Distribution):
    r"""N independent categorical variables with K classes, as flattened one-hot codes (event (N·K,)).

    With π_n = softmax(ℓ_n) the class probabilities of variable n (``logits`` ℓ of shape
    (*batch, N, K)):

        log q(z) = Σ_n Σ_k z_nk log π_nk = Σ_n log π_{n,k_n}   for an exact one-hot code z,
        E[z] = π (flattened),   H[q] = −Σ_n Σ_k π_nk log π_nk.

    ``sample`` draws exact one-hot codes. ``rsample`` draws the Gumbel-softmax relaxation
    y_nk = exp((ℓ_nk + g_nk)/τ) / Σ_j exp((ℓ_nj + g_nj)/τ), g ~ Gumbel(0, 1) i.i.d.
    (torch's ``RelaxedOneHotCategorical``), differentiable in ℓ; as τ → 0 it tends to the
    exact one-hot draw (the Gumbel-max trick), and τ = 0 returns that draw (no gradient).
    With ``straight_through`` the relaxed draw is replaced by its one-hot argmax in the
    forward pass while the gradient is the relaxed one. ``log_prob`` is the categorical
    log-probability above; given a relaxed (non one-hot) y it returns Σ z_nk log π_nk,
    which is *not* the Concrete density of y. Logits of −∞ (classes that cannot occur) are
    allowed: their terms z_nk log π_nk with z_nk = 0 and π_nk log π_nk count as 0, as in torch.

    Arguments:
        logits: unnormalised log-probabilities ℓ, shape (*batch_shape, N, K).
        temperature: τ ≥ 0 of ``rsample`` (0: exact draws).
        straight_through: one-hot forward, relaxed gradient (Jang et al. 2017, §2.2).

    References:
        Categorical Reparameterization with Gumbel-Softmax (Jang, Gu & Poole, ICLR 2017),
        arXiv:1611.01144.

    Example:
        >>> q = GumbelSoftmaxCategorical(torch.zeros(5, 2, 3), temperature=0.5)
        >>> q.batch_shape, q.event_shape
        (torch.Size([5]), torch.Size([6]))
        >>> q.sample().view(5, 2, 3).sum(-1)
        tensor([[1., 1.],
                [1., 1.],
                [1., 1.],
                [1., 1.],
                [1., 1.]])
    """

    arg_constraints = {"logits": constraints.real}
    support = constraints.independent(constraints.unit_interval, 1)
    has_rsample = True

    def __init__(self, logits: torch.Tensor, temperature: float = 0.0, straight_through: bool = False, validate_args: bool | None = False):
        if logits.dim() < 2:
            raise ValueError(f"logits must have shape (*batch, N, K), got {tuple(logits.shape)}")
        if not temperature >= 0:
            raise ValueError(f"temperature must be ≥ 0, got {temperature}")
        self.logits = logits - logits.logsumexp(-1, keepdim=True)
        self.num_variables, self.categories = int(logits.shape[-2]), int(logits.shape[-1])
        self.temperature, self.straight_through = float(temperature), bool(straight_through)
        super().__init__(logits.shape[:-2], torch.Size([self.num_variables * self.categories]), validate_args=validate_args)

    def rows(self, value: torch.Tensor) -> torch.Tensor:
        """``value`` (…, N·K) as its one-hot rows (…, N, K)."""
        return value.reshape(*value.shape[:-1], self.num_variables, self.categories)

    @property
    def probs(self) -> torch.Tensor:
        """π, shape (*batch_shape, N, K)."""
        return self.logits.exp()

    @property
    def mean(self) -> torch.Tensor:
        return self.probs.flatten(-2)

    @property
    def mode(self) -> torch.Tensor:
        return F.one_hot(self.logits.argmax(-1), self.categories).to(self.logits.dtype).flatten(-2)

    @property
    def variance(self) -> torch.Tensor:
        p = self.probs
        return (p * (1 - p)).flatten(-2)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            index = Categorical(logits=self.logits, validate_args=False).sample(torch.Size(sample_shape))
            return F.one_hot(index, self.categories).to(self.logits.dtype).flatten(-2)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size()) -> torch.Tensor:
        if self.temperature == 0:
            return self.sample(sample_shape)
        tau = torch.tensor(self.temperature, dtype=self.logits.dtype, device=self.logits.device)
        relaxed = RelaxedOneHotCategorical(tau, logits=self.logits, validate_args=False).rsample(torch.Size(sample_shape))
        if self.straight_through:
            relaxed = straight_through(relaxed)
        return relaxed.flatten(-2)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        rows = self.rows(value)  # 0 · log π = 0 also where log π = −∞
        return (rows * torch.where(rows == 0, torch.zeros_like(self.logits), self.logits)).sum((-2, -1))

    def entropy(self) -> torch.Tensor:
        return -(self.probs * _finite_or_zero(self.logits)).sum((-2, -1))


@register_kl(GumbelSoftmaxCategorical, GumbelSoftmaxCategorical)
def kl_categorical_codes(q: GumbelSoftmaxCategorical, p: GumbelSoftmaxCategorical) -> torch.Tensor:
    r"""KL(q ‖ p) = Σ_n Σ_k π_nk (log π_nk − log p_nk), closed form, per example.

    Against the uniform prior p_nk = 1/K it is Σ_n Σ_k π_nk (log π_nk + log K) =
    N log K − H[q], the KL of Jang et al. (2017). The temperatures play no part: this is the
    KL of the categorical variables, the one the relaxed ELBO uses.
    """
    if (q.num_variables, q.categories) != (p.num_variables, p.categories):
        raise NotImplementedError(f"codes of {q.num_variables}×{q.categories} and {p.num_variables}×{p.categories} categories")
    log_ratio = torch.where(q.logits == -math.inf, torch.zeros_like(q.logits), q.logits - p.logits)  # π_nk = 0: the term is 0
    return (q.probs * log_ratio).sum((-2, -1))


class CategoricalPosterior(nn.Module):
    r"""Categorical posterior head: q(z|x) = Π_n Cat(z_n; softmax(ℓ_n(x))), ℓ a linear map of the features.

    forward(h, temperature) returns a :class:`GumbelSoftmaxCategorical` with batch shape (B,)
    and event (N·K,) whose ``rsample`` is the Gumbel-softmax draw at that temperature (the
    model passes its annealed τ_t while training and 0, exact draws, in evaluation).

    Arguments:
        in_features: F, the size of the encoder features.
        num_variables: N, the number of categorical variables.
        categories: K ≥ 2, the classes of each.
        straight_through: one-hot forward, relaxed gradient.

    References:
        Categorical Reparameterization with Gumbel-Softmax (Jang, Gu & Poole, ICLR 2017),
        arXiv:1611.01144.

    Example:
        >>> q = CategoricalPosterior(8, num_variables=3, categories=4)(torch.zeros(2, 8), 0.5)
        >>> q.rsample().shape
        torch.Size([2, 12])
    """

    def __init__(self, in_features: int, num_variables: int, categories: int, straight_through: bool = False):
        super().__init__()
        if categories < 2 or num_variables < 1:
            raise ValueError(f"need num_variables ≥ 1 and categories ≥ 2, got {num_variables} and {categories}")
        self.num_variables, self.categories, self.straight_through = int(num_variables), int(categories), bool(straight_through)
        self.net = nn.Linear(in_features, self.num_variables * self.categories)

    def forward(self, h: torch.Tensor, temperature: float) -> GumbelSoftmaxCategorical:
        logits = self.net(h).view(*h.shape[:-1], self.num_variables, self.categories)
        return GumbelSoftmaxCategorical(logits, temperature, self.straight_through)


class UniformCategoricalPrior(nn.Module):
    r"""p(z) = Π_n Cat(z_n; 1/K): uniform one-hot codes, log p(z) = −N log K.

    ``sample`` gives exact one-hot codes (the distribution's temperature is 0).

    Example:
        >>> p = UniformCategoricalPrior(2, 4)()
        >>> round(float(p.log_prob(p.sample())), 4)  # −2 log 4
        -2.7726
    """

    def __init__(self, num_variables: int, categories: int):
        super().__init__()
        self.register_buffer("logits", torch.full((num_variables, categories), -math.log(categories)), persistent=False)

    def forward(self) -> GumbelSoftmaxCategorical:
        return GumbelSoftmaxCategorical(self.logits)


class GaussianCategoricalPosterior(nn.Module):
    r"""Joint-VAE posterior: q(z_c, c|x) = N(z_c; μ(x), diag σ(x)²) · Π_n Cat(c_n; softmax(ℓ_n(x))).

    forward(h, temperature) returns a :class:`~vaekit.distributions.product.ProductDistribution`
    whose code is [z_c, c] of size D + N·K: the diagonal Gaussian part is reparameterised,
    the categorical part Gumbel-softmax relaxed at ``temperature`` (exact at 0).

    Arguments:
        in_features: F, the size of the encoder features.
        latent_dim: D, the continuous code's size.
        num_variables: N, the number of categorical variables.
        categories: K ≥ 2, the classes of each.
        straight_through: one-hot forward, relaxed gradient for the categorical part.

    References:
        Learning Disentangled Joint Continuous and Discrete Representations (Dupont,
        NeurIPS 2018), arXiv:1804.00104.

    Example:
        >>> q = GaussianCategoricalPosterior(8, 2, 1, 3)(torch.zeros(4, 8), 0.67)
        >>> q.rsample().shape
        torch.Size([4, 5])
    """

    def __init__(self, in_features: int, latent_dim: int, num_variables: int, categories: int, straight_through: bool = False):
        super().__init__()
        self.continuous = DiagonalGaussianPosterior(in_features, latent_dim)
        self.discrete = CategoricalPosterior(in_features, num_variables, categories, straight_through)

    def forward(self, h: torch.Tensor, temperature: float) -> ProductDistribution:
        return ProductDistribution([self.continuous(h), self.discrete(h, temperature)])
