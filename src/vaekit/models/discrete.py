r"""VAE extensions II (survey §2.12): discrete latents, the categorical VAE and Joint-VAE.

Both presets are the VAE composition with a categorical code: N one-hot rows of K classes,
flattened to N·K values and decoded like any code. Training draws Gumbel-softmax
(relaxed) codes at an annealed temperature; everything that scores the model as the
discrete latent-variable model it is — ``vaekit.log_likelihood``, ``vaekit.evaluate``, the
validation loss — draws exact one-hot codes. :class:`DiscreteLatentVariableModel` is the
one place that knows this:

* ``model.temperature`` is τ_t = max(τ_min, τ_0 exp(−r t)) at ``model.step`` while
  training, and 0 (exact draws) in evaluation mode (``model.eval()``, as after
  ``vaekit.load`` and inside ``evaluate`` / validation);
* ``importance_terms`` proposes exact one-hot codes from q(c|x) with their exact
  categorical log q, so log (1/K) Σ_k p(x, z_k)/q(z_k|x) is a proper importance-sampling
  estimate of log p(x) = log Σ_c p(c) p(x|c).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from vaekit.distributions import StandardNormalPrior, sample_with_log_prob
from vaekit.distributions.categorical import CategoricalPosterior, GaussianCategoricalPosterior, UniformCategoricalPrior
from vaekit.distributions.product import ProductPrior
from vaekit.errors import ConfigError
from vaekit.models.model import LatentVariableModel, Objective
from vaekit.models.registry import register
from vaekit.models.spec import ModelSpec
from vaekit.objectives import ELBO
from vaekit.objectives.discrete import JointCapacity, TemperatureSchedule
from vaekit.objectives.importance import importance_terms_at

__all__ = ["DiscreteLatentVariableModel", "categorical_vae", "joint_vae"]


class DiscreteLatentVariableModel(LatentVariableModel):
    r"""A :class:`LatentVariableModel` whose code has Gumbel-softmax categorical parts.

    The posterior head takes ``(features, temperature)``; ``encode`` passes
    :attr:`temperature`. ``latent_dim`` is the size of the code the decoder takes
    (N·K, or D + N·K for Joint-VAE); ``discrete_shape`` is (N, K) and ``continuous_dim`` D.

    Arguments:
        schedule: the temperature schedule τ_t.
        discrete_shape: (N, K).
        continuous_dim: D, the size of the continuous part of the code (0: none).
        **parts: the rest of :class:`LatentVariableModel` (encoder, posterior, decoder,
            likelihood, prior, objective, conditioning, config).

    References:
        Categorical Reparameterization with Gumbel-Softmax (Jang, Gu & Poole, ICLR 2017),
        arXiv:1611.01144.
    """

    def __init__(self, *, schedule: TemperatureSchedule, discrete_shape: tuple[int, int], continuous_dim: int = 0, **parts: Any):
        super().__init__(**parts)
        self.schedule = schedule
        self.discrete_shape = tuple(discrete_shape)
        self.continuous_dim = int(continuous_dim)

    @property
    def temperature(self) -> float:
        """τ_t at ``step`` while training; 0 (exact one-hot draws) in evaluation mode."""
        return self.schedule(self.step) if self.training else 0.0

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.distributions.Distribution:
        """q(z|x) at the current temperature: batch shape (B,), event shape (latent_dim,)."""
        return self.posterior(self.features(x, y), self.temperature)

    def importance_terms(self, x: torch.Tensor, num_samples: int, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        r"""log p(x|z_k) and log p(z_k) − log q(z_k|x), each (K, B), at exact draws z_k ~ q(z|x).

        The categorical part of z_k is an exact one-hot code with its categorical log q
        (never a relaxed sample, whose density is not the categorical one), the continuous
        part (Joint-VAE) a reparameterised Gaussian draw, whatever the mode; found by
        :func:`vaekit.objectives.importance_terms`, hence by ``vaekit.log_likelihood``.
        """
        q = self.posterior(self.features(x, y), 0.0)
        z, log_q = sample_with_log_prob(q, (num_samples,))
        return importance_terms_at(self, x, z, log_q, y)

    def extra_repr(self) -> str:
        n, k = self.discrete_shape
        return super().extra_repr() + f", discrete_shape=({n}, {k}), continuous_dim={self.continuous_dim}"


def _check_discrete(name: str, value: int, what: str, low: int) -> int:
    if value < low:
        raise ConfigError(f"{name} must be an integer ≥ {low} ({what}), got {value}")
    return int(value)


def _build(
    spec: ModelSpec,
    objective: Objective,
    posterior: Callable[[int], nn.Module],
    prior: nn.Module,
    schedule: TemperatureSchedule,
    discrete_shape: tuple[int, int],
    continuous_dim: int = 0,
) -> DiscreteLatentVariableModel:
    """The spec's bodies and likelihood around a discrete posterior head (built by
    ``posterior(in_features)``) and prior; the decoder takes the D + N·K values of the code."""
    code_size = continuous_dim + discrete_shape[0] * discrete_shape[1]
    encoder = spec.encoder()
    likelihood = spec.likelihood_head()
    return DiscreteLatentVariableModel(
        schedule=schedule,
        discrete_shape=discrete_shape,
        continuous_dim=continuous_dim,
        input_shape=spec.input_shape,
        latent_dim=code_size,
        encoder=encoder,
        posterior=posterior(encoder.out_features + spec.condition_size),
        decoder=spec.decoder(likelihood.num_parameters, code_size + spec.condition_size),
        likelihood=likelihood,
        prior=prior,
        objective=objective,
        num_classes=spec.num_classes,
        condition_dim=spec.condition_dim,
    )


@register("categorical_vae", family="variational")
def categorical_vae(
    spec: ModelSpec,
    *,
    categories: int = 10,
    temperature: float = 1.0,
    min_temperature: float = 0.5,
    anneal_rate: float = 3e-5,
    straight_through: bool = False,
) -> LatentVariableModel:
    r"""Categorical VAE: latent_dim = N categorical latents of K classes each, Gumbel-softmax relaxed.

    Generative model p(c) = Π_n Cat(c_n; 1/K) (log p(c) = −N log K), p(x|c) the decoder
    applied to the N·K one-hot values of c. Posterior q(c|x) = Π_n Cat(c_n; π_n(x)). Loss

        loss = −log p(x|y) + KL(q(c|x) ‖ p(c)),   KL = Σ_n Σ_k π_nk (log π_nk + log K),

    y the Gumbel-softmax sample y_nk = softmax_k((log π_nk + g_nk)/τ_t), g ~ Gumbel(0, 1),
    at the temperature τ_t = max(τ_min, τ_0 exp(−r t)) of step t (straight-through: the
    one-hot argmax of y forward, y's gradient backward). This is Jang et al.'s relaxed
    objective, the categorical KL beside a relaxed reconstruction: it is not an exact
    bound on log p(x) (the relaxed sample is not a draw of c). In evaluation mode the model
    draws exact one-hot codes, so ``evaluate``'s ``elbo`` (and the validation loss) is the
    exact bound E_q[log p(x|c)] − KL ≤ log p(x), and ``vaekit.log_likelihood``
    importance-samples log Σ_c p(c) p(x|c) with exact draws from q(c|x).

    ``model.decode(z)`` takes (B, N·K) codes (``model.latent_dim`` = N·K); ``transform(x)``
    gives the posterior probabilities π (B, N·K) (``reconstruct`` decodes them);
    ``sample(n)`` decodes uniform one-hot codes. ``evaluate``'s ``active_units`` count the
    entries of π that vary over the data; ``kl_per_dimension`` is None (no Gaussian
    coordinates). Terms: ``loss``, ``reconstruction``, ``kl``, ``elbo``.

    References:
        Categorical Reparameterization with Gumbel-Softmax (Jang, Gu & Poole, ICLR 2017),
        arXiv:1611.01144. The Concrete Distribution (Maddison, Mnih & Teh, ICLR 2017),
        arXiv:1611.00712.

    Options:
        categories: K ≥ 2, the classes of each of the latent_dim categorical variables.
        temperature: τ_0 > 0, the Gumbel-softmax temperature at step 0.
        min_temperature: τ_min, 0 < τ_min ≤ temperature, the floor of the annealed temperature.
        anneal_rate: r ≥ 0 per step in τ_t = max(τ_min, τ_0 exp(−r t)) (Jang et al.'s code: 3e-5; 0: constant τ_0).
        straight_through: one-hot samples forward, relaxed gradients backward (Jang et al. §2.2).
    """
    n = spec.latent_dim
    k = _check_discrete("categories", categories, "classes per categorical variable", 2)
    schedule = TemperatureSchedule(temperature, min_temperature, anneal_rate)
    return _build(
        spec, ELBO(beta=1.0), lambda features: CategoricalPosterior(features, n, k, straight_through),
        UniformCategoricalPrior(n, k), schedule, (n, k),
    )


@register("joint_vae", family="variational")
def joint_vae(
    spec: ModelSpec,
    *,
    discrete_latents: int = 1,
    categories: int = 10,
    temperature: float = 0.67,
    min_temperature: float = 0.5,
    anneal_rate: float = 0.0,
    straight_through: bool = False,
    capacity: float = 5.0,
    discrete_capacity: float = 5.0,
    capacity_steps: int = 25_000,
    gamma: float = 30.0,
) -> LatentVariableModel:
    r"""Joint-VAE: latent_dim Gaussian and discrete_latents categorical latents, each KL with its own capacity.

    Posterior q(z, c|x) = N(z; μ(x), diag σ(x)²) · Π_n Cat(c_n; π_n(x)), prior
    N(0, I) · Π_n Cat(1/K); the decoder takes [z, c] of D + N·K values, c Gumbel-softmax
    relaxed while training (as in ``categorical_vae``). Loss (Dupont 2018, eq. 7):

        loss = −log p(x|z, c) + γ |KL(q(z|x) ‖ p(z)) − C_z(t)| + γ |KL(q(c|x) ‖ p(c)) − C_c(t)|

    C_z(t) = C_z · min(1, t/N) and C_c(t) = min(C_c · min(1, t/N), N log K): the discrete
    capacity never exceeds what N K-way variables can carry (Dupont's code caps it so).
    Defaults are Dupont's MNIST settings (τ = 0.67 fixed, C = 5 nats over 25 000 steps, γ = 30).
    ``vaekit.log_likelihood`` importance-samples over both parts (exact one-hot draws of
    c). ``sample(n)`` draws z ~ N(0, I) and c uniformly; ``transform(x)`` gives [μ, π].
    Terms: ``loss``, ``reconstruction``, ``kl`` (= ``kl_continuous`` + ``kl_discrete``),
    ``elbo``, ``kl_continuous``, ``kl_discrete``, ``capacity``, ``discrete_capacity``.

    References:
        Learning Disentangled Joint Continuous and Discrete Representations (Dupont,
        NeurIPS 2018), arXiv:1804.00104. Categorical Reparameterization with Gumbel-Softmax
        (Jang, Gu & Poole, ICLR 2017), arXiv:1611.01144.

    Options:
        discrete_latents: N ≥ 1, the number of categorical variables (latent_dim is the Gaussian part).
        categories: K ≥ 2, the classes of each categorical variable.
        temperature: τ_0 > 0, the Gumbel-softmax temperature (Dupont: 0.67).
        min_temperature: τ_min, 0 < τ_min ≤ temperature, the floor when the temperature is annealed.
        anneal_rate: r ≥ 0 per step in τ_t = max(τ_min, τ_0 exp(−r t)) (0: constant τ_0, as Dupont).
        straight_through: one-hot samples forward, relaxed gradients backward.
        capacity: C_z ≥ 0, the continuous KL's target in nats after capacity_steps.
        discrete_capacity: C_c ≥ 0, the discrete KL's target after capacity_steps, capped at discrete_latents · log(categories).
        capacity_steps: steps over which both targets rise linearly from 0.
        gamma: γ ≥ 0, the weight of each |KL − C|.
    """
    n = _check_discrete("discrete_latents", discrete_latents, "categorical variables", 1)
    k = _check_discrete("categories", categories, "classes per categorical variable", 2)
    d = spec.latent_dim
    schedule = TemperatureSchedule(temperature, min_temperature, anneal_rate)
    objective = ELBO([JointCapacity(capacity, discrete_capacity, capacity_steps, gamma)], beta=0.0)

    def posterior(features: int) -> GaussianCategoricalPosterior:
        head = GaussianCategoricalPosterior(features, d, n, k, straight_through)
        head.continuous.logvar_clamp = spec.logvar_clamp  # the shared option, as every Gaussian head takes it
        return head

    return _build(
        spec, objective, posterior,
        ProductPrior(StandardNormalPrior(d), UniformCategoricalPrior(n, k)), schedule, (n, k), continuous_dim=d,
    )
