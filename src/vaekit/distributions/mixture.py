r"""Gaussian mixtures over z: the structured VAE's prior, its conjugate posterior and their joint KL.

The generative model of the GMM-SVAE (Johnson et al. 2016, the GMM example) puts a
mixture of K Gaussians under z:

    p(k) = π_k = softmax(ℓ)_k,   p(z|k) = N(z; μ_k, diag σ_k²),   p(z) = Σ_k π_k N(z; μ_k, diag σ_k²).

A recognition network gives a Gaussian *potential* ψ(z; x) = N(z; m(x), diag v(x)) that
stands in for the likelihood; since it is conjugate to every component, the posterior of
the surrogate model p(k) p(z|k) ψ(z; x) over (k, z) is a mixture in closed form:

    q(k|x) ∝ π_k N(m; μ_k, diag(σ_k² + v)),   q(z|k, x) = N(z; a_k, diag b_k),
    η(q(z|k,x)) = η(N(μ_k, σ_k²)) + η(ψ)       (natural parameters add: b_k⁻¹ = σ_k⁻² + v⁻¹,
                                                 a_k / b_k = μ_k / σ_k² + m / v)

This module holds those pieces as small pure functions and one distribution class:

* :class:`GaussianMixture`, a ``MixtureSameFamily`` of diagonal Gaussians (``log_prob`` is
  logsumexp_k [log π_k + log N(z; μ_k, σ_k²)], ``sample``, ``mean``) that also draws
  ``rsample`` (pathwise given the drawn component); :func:`diagonal_mixture_log_prob`, its
  log-density by two matrix products when one set of components serves every z (the
  VampPrior's case);
* :class:`GaussianMixturePrior`, the module with the learned π, μ_k, σ_k;
* :func:`natural_parameters`, :func:`mean_parameters`, :func:`gaussian_product` (the
  conjugate update of one component), :func:`conjugate_mixture_posterior` (all of them);
* :func:`kl_joint_mixture`, KL(q(k, z|x) ‖ p(k, z)) in closed form.

References:
    Composing graphical models with neural networks for structured representations and
    fast inference (Johnson, Duvenaud, Wiltschko, Datta & Adams, NeurIPS 2016),
    arXiv:1603.06277.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions import Categorical, Distribution, Independent, MixtureSameFamily, Normal, kl_divergence

from vaekit.distributions.posteriors import DEFAULT_LOGVAR_CLAMP, clamp_log_scale

__all__ = [
    "GaussianMixture",
    "GaussianMixturePrior",
    "conjugate_mixture_posterior",
    "diagonal_mixture_log_prob",
    "floored_logsumexp",
    "gaussian_product",
    "kl_joint_mixture",
    "mean_parameters",
    "natural_parameters",
]


def natural_parameters(loc: torch.Tensor, variance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Natural parameters of N(loc, diag variance): η₁ = μ / v, η₂ = −1 / (2v), elementwise.

    log N(z; μ, v) = η₁ z + η₂ z² − A(η) with log-partition A(η) = −η₁² / (4η₂) − ½ log(−2η₂) + ½ log 2π;
    a product of Gaussian densities in z is the Gaussian whose natural parameters are the sum.
    """
    return loc / variance, -0.5 / variance


def mean_parameters(eta1: torch.Tensor, eta2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""(μ, v) from natural parameters (η₁, η₂ < 0): v = −1 / (2η₂), μ = η₁ v. Inverse of :func:`natural_parameters`."""
    variance = -0.5 / eta2
    return eta1 * variance, variance


def gaussian_product(
    prior_loc: torch.Tensor, prior_variance: torch.Tensor, potential_loc: torch.Tensor, potential_variance: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""The conjugate update of a diagonal Gaussian prior by a diagonal Gaussian potential.

        N(z; μ, diag s) · N(z; m, diag v) = N(m; μ, diag(s + v)) · N(z; a, diag b),
        η(a, b) = η(μ, s) + η(m, v)   (b = (1/s + 1/v)⁻¹, a = b (μ/s + m/v))

    Arguments (broadcast together, last axis D): the prior's mean μ and variance s, the
    potential's mean m and variance v.

    Returns ``(log_normaliser, loc, variance)``: log N(m; μ, diag(s + v)) = log ∫ N(z; μ, s)
    N(z; m, v) dz summed over D (shape ``(…)``), and the posterior mean a and variance b
    (shape ``(…, D)``).
    """
    eta1, eta2 = natural_parameters(prior_loc, prior_variance)
    psi1, psi2 = natural_parameters(potential_loc, potential_variance)
    loc, variance = mean_parameters(eta1 + psi1, eta2 + psi2)
    log_normaliser = Normal(prior_loc, (prior_variance + potential_variance).sqrt(), validate_args=False).log_prob(potential_loc).sum(-1)
    return log_normaliser, loc, variance


EXP_FLOOR = -80.0
"""Terms of a log-sum-exp more than 80 nats below its largest are raised to it (:func:`floored_logsumexp`)."""


def floored_logsumexp(values: torch.Tensor, dim: int) -> torch.Tensor:
    r"""log Σ_k e^{v_k} along ``dim``, as m + log Σ_k exp(max(v_k − m, −80)) with m = max_k v_k.

    ``torch.logsumexp`` computes the same without the floor, and its exp of a value below
    float32's underflow (≈ −87) runs about 100× slower on CPUs than any other (measured: 10 ms
    against 1.0 s for 10⁷ values). Far-away components of a mixture put almost all of its terms
    there. The floor changes the sum by at most n·e⁻⁸⁰ ≈ n·2·10⁻³⁵ relative to its largest term
    (n the number of terms), far below float64's resolution, and takes those terms' gradients
    (each below e⁻⁸⁰ of the largest one's) to 0.
    """
    peak = values.amax(dim, keepdim=True).detach()
    shift = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
    total = (values - shift).clamp_min(EXP_FLOOR).exp().sum(dim).log() + shift.squeeze(dim)
    return torch.where(peak.squeeze(dim) == -math.inf, peak.squeeze(dim), total)  # all terms −∞: −∞, as torch's


def diagonal_mixture_log_prob(value: torch.Tensor, logits: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    r"""log Σ_k w_k N(z; μ_k, diag σ_k²) for any number of z against one set of K components.

    With λ_k = σ_k⁻² the quadratic form of component k expands into matrix products,

        Q_k(z) = Σ_d λ_kd (z_d − μ_kd)² = (z∘z)·λ_k − 2 z·(λ_k∘μ_k) + μ_k·(λ_k∘μ_k),
        log p(z) = logsumexp_k [log w_k − ½ Q_k(z) − Σ_d log σ_kd] − (D/2) log 2π,

    so N draws cost one (N, 2D) × (2D, K) product instead of a dozen passes over an (N, K, D)
    tensor and its gradient (a ``vamp_vae`` training step with N = 100, K = 500, D = 40 runs
    2.2× faster, 6–7× at N = 500: ``benchmarks/vamp_prior_speed.py``). The three terms of Q_k can be large next to their sum
    (λ up to e⁶ with the recipe's log-variance clamp, more without it), so log w_k − ½ Q_k(z) −
    Σ_d log σ_kd is formed in float64 (one product of [z∘z, z] with [−½λ_k, λ_k∘μ_k] and a row,
    no further pass over the (N, K) array in float64), capped where Q_k < 0 (it is a sum of
    squares), and its log-sum-exp taken in the dtype torch's mixture would return (that of
    ``value`` and the parameters promoted together: float32 for float32 throughout).

    The expansion's rounding error is a few float64 ulps of Σ_d λ_kd (z_d² + μ_kd²): measured
    against torch's mixture in float64 (K = 50, D = 40, means of size 3, float32 parameters), at
    most 10⁻⁴ nats for σ ≥ e⁻¹⁰ ≈ 5·10⁻⁵, 0.02 nats at σ = e⁻¹²·⁵ and 2 nats at σ = e⁻¹⁵, the
    narrowest the default log-variance clamp allows. Components that narrow are a collapsed
    model (trained posteriors have σ ≳ 10⁻³); recomputing such terms directly would need a
    data-dependent branch, a host synchronisation every call on a GPU, so it is not done.

    Arguments:
        value: z, shape (*sample, D).
        logits: unnormalised log-weights, shape (K,).
        loc, scale: μ_k and σ_k > 0, shape (K, D).

    Returns:
        log p(z), shape (*sample,).
    """
    dim = loc.shape[-1]
    dtype = torch.promote_types(torch.promote_types(value.dtype, logits.dtype), torch.promote_types(loc.dtype, scale.dtype))
    z = value.reshape(-1, dim).to(torch.float64)
    loc, scale = loc.to(torch.float64), scale.to(torch.float64)
    precision = scale.pow(-2)  # λ, (K, D)
    weighted_loc = precision * loc  # λ∘μ
    log_weights = torch.log_softmax(logits.to(torch.float64), -1) - scale.log().sum(-1)  # log w_k − Σ_d log σ_kd
    # log w_k − Σ log σ_k − ½ Q_k(z) as one (N, 2D) × (2D, K) product plus a row: one pass over the (N, K) result
    log_joint = torch.addmm(log_weights - 0.5 * (weighted_loc * loc).sum(-1), torch.cat([z * z, z], dim=-1),
                            torch.cat([-0.5 * precision, weighted_loc], dim=-1).T)
    # Q_k ≥ 0, so the term is at most log w_k − Σ log σ_k; the log-sum-exp of values formed in float64 is taken in the result's dtype
    log_joint = torch.minimum(log_joint, log_weights).to(dtype)
    log_prob = floored_logsumexp(log_joint, -1) - 0.5 * dim * math.log(2 * math.pi)
    return log_prob.reshape(value.shape[:-1])


class GaussianMixture(MixtureSameFamily):
    r"""A mixture of K diagonal Gaussians over z ∈ ℝᴰ (torch's ``MixtureSameFamily``, event (D,)).

        q(z) = Σ_k w_k N(z; μ_k, diag σ_k²),   w = softmax(logits),
        log q(z) = logsumexp_k [log w_k + log N(z; μ_k, diag σ_k²)],   E[z] = Σ_k w_k μ_k.

    Read as a joint distribution over (component k, z), its parts are
    ``mixture_distribution`` (Categorical w) and ``component_distribution`` (batch (…, K),
    event (D,)); :meth:`component` is one of them.

    ``rsample`` draws k ~ Categorical(w), then z = μ_k + σ_k ε, ε ~ N(0, I): pathwise in the
    component means and scales given k, with no gradient through the weights w (a draw of k
    has none). Objectives that need the weights' gradient sum over the components instead
    (``vaekit.objectives.StructuredELBO``); ``log_prob``, ``sample`` and estimates made
    without gradients (``vaekit.log_likelihood``, ``vaekit.evaluate``) are exact.

    Arguments:
        logits: unnormalised log-weights, shape (*batch, K).
        loc: component means μ_k, shape (*batch, K, D).
        scale: component standard deviations σ_k > 0, shape (*batch, K, D).

    Example:
        >>> q = GaussianMixture(torch.zeros(5, 3), torch.randn(5, 3, 2), torch.ones(5, 3, 2))
        >>> q.batch_shape, q.event_shape, q.rsample((4,)).shape
        (torch.Size([5]), torch.Size([2]), torch.Size([4, 5, 2]))
    """

    has_rsample = True

    def __init__(self, logits: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor, validate_args: bool | None = False):
        mixture = Categorical(logits=logits, validate_args=False)
        components = Independent(Normal(loc, scale, validate_args=False), 1, validate_args=False)
        super().__init__(mixture, components, validate_args=validate_args)

    @property
    def logits(self) -> torch.Tensor:
        """log w_k, normalised, shape (*batch, K)."""
        return self.mixture_distribution.logits

    @property
    def probs(self) -> torch.Tensor:
        """w_k, shape (*batch, K)."""
        return self.mixture_distribution.probs

    @property
    def loc(self) -> torch.Tensor:
        """μ_k, shape (*batch, K, D)."""
        return self.component_distribution.base_dist.loc

    @property
    def scale(self) -> torch.Tensor:
        """σ_k, shape (*batch, K, D)."""
        return self.component_distribution.base_dist.scale

    @property
    def num_components(self) -> int:
        return int(self.logits.shape[-1])

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """log q(z), shape (*sample, *batch); by :func:`diagonal_mixture_log_prob` when the batch shape is ()."""
        if self.loc.dim() == 2 and value.dim() >= 1 and value.shape[-1] == self.loc.shape[-1]:
            return diagonal_mixture_log_prob(value, self.logits, self.loc, self.scale)
        return super().log_prob(value)

    def component(self, k: int) -> Distribution:
        """N(μ_k, diag σ_k²) as ``Independent(Normal)``, batch (*batch,), event (D,)."""
        return Independent(Normal(self.loc[..., k, :], self.scale[..., k, :], validate_args=False), 1, validate_args=False)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size()) -> torch.Tensor:
        """k ~ Categorical(w), z = μ_k + σ_k ε: shape (*sample_shape, *batch, D); see the class docstring."""
        shape = torch.Size(sample_shape)
        k = self.mixture_distribution.sample(shape)  # (*S, *B)
        d = self.event_shape[0]
        index = k[..., None, None].expand(*k.shape, 1, d)
        full = (*shape, *self.loc.shape)
        loc = self.loc.expand(full).gather(-2, index).squeeze(-2)
        scale = self.scale.expand(full).gather(-2, index).squeeze(-2)
        return loc + scale * torch.randn_like(loc)


class GaussianMixturePrior(nn.Module):
    r"""p(z) = Σ_k π_k N(z; μ_k, diag σ_k²), K components with learned means and scales (Johnson et al. 2016).

    A module whose forward takes no input and returns a :class:`GaussianMixture` with batch
    shape () and event shape (D,). π is softmax(ℓ) with learned logits ℓ (initially 0:
    uniform), or fixed at 1/K with ``learn_weights=False``. μ_k start as independent N(0, I)
    draws (torch's generator: identical means would receive identical gradients forever
    and never separate), log σ_k at 0; log σ_k² is clamped to ``DEFAULT_LOGVAR_CLAMP``.

    Arguments:
        components: K ≥ 1.
        latent_dim: D.
        learn_weights: learn π (True) or keep it uniform.

    References:
        Composing graphical models with neural networks for structured representations and
        fast inference (Johnson et al., NeurIPS 2016), arXiv:1603.06277.

    Example:
        >>> p = GaussianMixturePrior(10, 4)()
        >>> p.sample((3,)).shape, p.log_prob(torch.zeros(3, 4)).shape
        (torch.Size([3, 4]), torch.Size([3]))
    """

    def __init__(self, components: int, latent_dim: int, learn_weights: bool = True):
        super().__init__()
        self.components, self.latent_dim, self.learn_weights = int(components), int(latent_dim), bool(learn_weights)
        if self.learn_weights:
            self.logits = nn.Parameter(torch.zeros(self.components))
        else:
            self.register_buffer("logits", torch.zeros(self.components), persistent=False)
        self.loc = nn.Parameter(torch.randn(self.components, self.latent_dim))
        self.log_scale = nn.Parameter(torch.zeros(self.components, self.latent_dim))

    def forward(self) -> GaussianMixture:
        return GaussianMixture(self.logits, self.loc, clamp_log_scale(self.log_scale, DEFAULT_LOGVAR_CLAMP).exp())

    def extra_repr(self) -> str:
        return f"components={self.components}, latent_dim={self.latent_dim}, learn_weights={self.learn_weights}"


def conjugate_mixture_posterior(prior: GaussianMixture, potential: Distribution) -> GaussianMixture:
    r"""The exact posterior over (k, z) of p(k) p(z|k) ψ(z; x): the SVAE's local inference for the GMM prior.

        q(k|x) = π_k N(m; μ_k, diag(σ_k² + v)) / Σ_j π_j N(m; μ_j, diag(σ_j² + v)),
        q(z|k, x) = N(z; a_k, diag b_k),   η(a_k, b_k) = η(μ_k, σ_k²) + η(m, v)

    (:func:`gaussian_product` per component; q(z|x) = Σ_k q(k|x) q(z|k, x)). It is the optimum
    over every q(k, z) of the SVAE surrogate objective, where the likelihood is replaced by
    the recognition potential ψ (Johnson et al. 2016, the SVAE local step); the paper's mean-field family
    q(k) q(z) approximates it by fixed-point iterations, here none are needed.

    Arguments:
        prior: p(z) with batch shape () (K components, event (D,)).
        potential: ψ(z; x) = N(z; m, diag v) as ``Independent(Normal)``, batch (B,), event (D,).

    Returns a :class:`GaussianMixture` with batch shape (B,), K components.
    """
    base = potential.base_dist if isinstance(potential, Independent) else potential
    if not isinstance(base, Normal):
        raise TypeError(f"the recognition potential must be a diagonal Gaussian (Independent(Normal)), got {type(potential).__name__}")
    m, v = base.loc.unsqueeze(-2), base.scale.pow(2).unsqueeze(-2)  # (B, 1, D)
    log_normaliser, loc, variance = gaussian_product(prior.loc, prior.scale.pow(2), m, v)  # (B, K), (B, K, D)
    return GaussianMixture(prior.logits + log_normaliser, loc, variance.sqrt())


def kl_joint_mixture(q: GaussianMixture, p: GaussianMixture) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""KL(q(k, z) ‖ p(k, z)) of two K-component mixtures read as joints over (component, z), closed form.

        KL = Σ_k q_k [log q_k − log π_k] + Σ_k q_k KL(N(a_k, b_k) ‖ N(μ_k, σ_k²))
           = KL(q(k) ‖ p(k)) + E_{q(k)}[KL(q(z|k) ‖ p(z|k))]

    (the chain rule of the KL; component k of q is paired with component k of p). It bounds
    the KL of the marginals over z from above, KL(q(z) ‖ p(z)) ≤ KL(q(k, z) ‖ p(k, z)), the
    difference being E_{q(z)}[KL(q(k|z) ‖ p(k|z))] ≥ 0, which is 0 when q is the conjugate
    posterior of :func:`conjugate_mixture_posterior`: there q(k|z) ∝ π_k N(z; μ_k, σ_k²) ψ(z)
    ∝ p(k|z), so the closed form is also the exact KL of the marginal mixtures.

    Arguments:
        q: batch (B,) (or any batch broadcastable against ``p``), K components.
        p: the same K, batch () for a prior.

    Returns ``(kl, kl_assignment, kl_code)``, each of the broadcast batch shape:
    the total, KL(q(k) ‖ p(k)) and Σ_k q_k KL(q(z|k) ‖ p(z|k)).
    """
    kl_assignment = kl_divergence(q.mixture_distribution, p.mixture_distribution)
    kl_code = (q.probs * kl_divergence(q.component_distribution, p.component_distribution)).sum(-1)
    return kl_assignment + kl_code, kl_assignment, kl_code
