r"""The structured VAE with a Gaussian-mixture prior (Johnson et al. 2016, the GMM-SVAE; survey §2.12).

Generative model p(k) p(z|k) p(x|z): a mixture of K Gaussians under z, a neural decoder.
The recognition network does not output q(z|x) itself but a Gaussian potential
ψ(z; x) = N(z; m(x), diag v(x)) (natural parameters η = (m/v, −1/(2v))), which conjugate,
closed-form inference combines with the prior:

    q(k|x) ∝ π_k N(m; μ_k, diag(σ_k² + v)),   q(z|k, x) ∝ N(z; μ_k, σ_k²) ψ(z; x)

(:func:`vaekit.distributions.conjugate_mixture_posterior`). :class:`StructuredLatentVariableModel`
is the one place that knows this:

* ``encode(x)`` returns q(z|x) = Σ_k q(k|x) q(z|k, x), a
  :class:`~vaekit.distributions.GaussianMixture` (``log_prob`` exact, ``mean`` the code of x),
  so ``vaekit.log_likelihood`` importance-samples from the exact mixture with
  log q(z|x) = logsumexp_k, and ``log p(z)`` is the prior mixture's (no special path needed);
* ``recognition_potential(x)`` is ψ; ``cluster_probabilities(x)`` is q(k|x), (B, K);
* ``sample(n)`` draws k ~ π, z ~ N(μ_k, σ_k²) and decodes; ``sample_component(k, n)`` keeps
  one component (per-component sample grids).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.distributions import Distribution

from vaekit.distributions.mixture import GaussianMixture, GaussianMixturePrior, conjugate_mixture_posterior
from vaekit.errors import ConfigError
from vaekit.models.model import LatentVariableModel
from vaekit.models.registry import register
from vaekit.models.spec import ModelSpec
from vaekit.objectives.structured import StructuredELBO

__all__ = ["StructuredLatentVariableModel", "structured_vae"]


class StructuredLatentVariableModel(LatentVariableModel):
    r"""A :class:`LatentVariableModel` whose q(z|x) is the conjugate update of a mixture prior by a recognition potential.

    ``posterior`` is the recognition head: it maps encoder features to the potential
    ψ(z; x) = N(z; m, diag v) (an ``Independent(Normal)``); ``prior`` is a
    :class:`~vaekit.distributions.GaussianMixturePrior`.

    Arguments:
        **parts: those of :class:`LatentVariableModel` (encoder, posterior, decoder,
            likelihood, prior, objective, conditioning, config).

    References:
        Composing graphical models with neural networks for structured representations and
        fast inference (Johnson, Duvenaud, Wiltschko, Datta & Adams, NeurIPS 2016),
        arXiv:1603.06277.

    Example:
        >>> model = vaekit.create("structured_vae", input_shape=(1, 8, 8), latent_dim=2, components=4)  # doctest: +SKIP
        >>> model.cluster_probabilities(torch.rand(5, 1, 8, 8)).shape  # doctest: +SKIP
        torch.Size([5, 4])
    """

    def __init__(self, **parts: Any):
        super().__init__(**parts)
        if not isinstance(self.prior_module, GaussianMixturePrior):
            raise ConfigError(f"a structured model needs a GaussianMixturePrior, got {type(self.prior_module).__name__}")

    @property
    def components(self) -> int:
        """K, the number of mixture components."""
        return self.prior_module.components

    def recognition_potential(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Distribution:
        """ψ(z; x) = N(z; m(x), diag v(x)), batch (B,), event (latent_dim,): the network's output before inference."""
        return self.posterior(self.features(x, y))

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> GaussianMixture:
        """q(z|x) = Σ_k q(k|x) q(z|k, x), the exact posterior of p(k) p(z|k) ψ(z; x); batch (B,), event (latent_dim,)."""
        return conjugate_mixture_posterior(self.prior(), self.recognition_potential(x, y))

    @torch.no_grad()
    def cluster_probabilities(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """q(k|x) ∝ π_k N(m(x); μ_k, diag(σ_k² + v(x))), shape (B, K); rows sum to 1. argmax is the cluster of x."""
        return self.encode(x, y).probs

    @torch.no_grad()
    def sample_component(self, component: int, n: int, y: torch.Tensor | None = None, mean: bool = True) -> torch.Tensor:
        """n draws z ~ N(μ_k, diag σ_k²) of component k = ``component`` decoded to data space (the decoder's mean,
        or a draw of x when ``mean=False``); ``y``: n labels or vectors for a conditional model."""
        k = self.components
        if isinstance(component, bool) or not isinstance(component, int) or not 0 <= component < k:
            raise ConfigError(f"component must be an integer in 0..{k - 1} (the model has components={k}), got {component!r}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"n must be a positive number of samples, got {n!r}")
        z = self.prior().component(component).sample((n,))
        px = self.decode(z, y)
        return px.mean if mean else px.sample()

    def extra_repr(self) -> str:
        return super().extra_repr() + f", components={self.components}"


@register("structured_vae", family="variational")
def structured_vae(spec: ModelSpec, *, components: int = 10, learn_weights: bool = True, warmup_steps: int = 500) -> LatentVariableModel:
    r"""Structured VAE (GMM-SVAE): a K-component Gaussian-mixture prior, conjugate inference from recognition potentials.

    Generative model: p(k) = π_k (softmax of learned logits, or uniform), p(z|k) =
    N(μ_k, diag σ_k²) (diagonal covariances, learned), p(x|z) the decoder. The recognition
    network (the encoder body and a diagonal Gaussian head) outputs a Gaussian potential
    ψ(z; x) = N(z; m, diag v), natural parameters η_ψ = (m/v, −1/(2v)); local inference is
    the exact conjugate posterior of p(k) p(z|k) ψ(z; x):

        q(k|x) ∝ π_k N(m; μ_k, diag(σ_k² + v)),   q(z|k,x) = N(a_k, diag b_k),   η(a_k, b_k) = η(μ_k, σ_k²) + η_ψ

    and training maximises the bound that includes the assignments,

        L(x) = Σ_k q(k|x) E_{q(z|k,x)}[log p(x|z)] − KL(q(k|x) ‖ π) − Σ_k q(k|x) KL(q(z|k,x) ‖ N(μ_k, σ_k²)),

    KLs in closed form, one reparameterised draw per component (K decoder passes per example).

    Choices, against the paper: Johnson et al. iterate mean-field updates of q(k) q(z), their
    recipe for any conjugate graphical model (and the only tractable one for their switching
    linear dynamical systems). For the GMM with one z per x the exact posterior of the surrogate
    model is a K-component mixture in closed form: the optimum over every q(k, z), which the
    factorised q(k) q(z) can only approximate (its q(z) is one Gaussian). It needs no
    iterations, is differentiable, and gives an exact q(z|x) = Σ_k q(k|x) q(z|k,x) to
    importance-sample log p(x) from. The global parameters (π, μ_k, σ_k) are point estimates trained by the
    optimiser with the networks, not natural-gradient SVI under conjugate priors.

    KL warm-up is on by default (500 steps). The conjugate KL falls monotonically as the
    potential's variance v grows (v → ∞ gives q = p and KL = 0) while the pull of m(x) on
    q(z|k,x) shrinks as 1/v: until the decoder uses z nothing resists, and the collapse is
    absorbing. Measured on the 8×8 digits (MLP 128, 60 epochs): without warm-up D = 4 collapsed
    within 100 steps for seeds 0 and 1 (log v ≈ 7, KL = 0, every x in one cluster), as did
    D = 10 from a sharper initial potential; with 200–500 warm-up steps none of 8 runs
    (D = 4 and 10, seeds 0–2) did.

    ``model.cluster_probabilities(x)`` is q(k|x), (B, K); ``model.sample_component(k, n)``
    decodes draws of component k; ``transform(x)`` is E_q[z|x] = Σ_k q(k|x) a_k. Terms:
    ``loss``, ``reconstruction``, ``kl``, ``elbo``, ``kl_assignment``, ``kl_code`` (see
    :class:`~vaekit.objectives.StructuredELBO`; for this posterior the joint KL equals
    KL(q(z|x) ‖ p(z)), so the bound is also the ordinary ELBO of the mixture q(z|x)).

    References:
        Composing graphical models with neural networks for structured representations and
        fast inference (Johnson, Duvenaud, Wiltschko, Datta & Adams, NeurIPS 2016),
        arXiv:1603.06277.

    Options:
        components: K ≥ 1, the number of Gaussian components of the prior (clusters).
        learn_weights: learn the mixture weights π (False: uniform 1/K).
        warmup_steps: KL weight raised linearly from 0 to 1 over this many steps (0: off; on by default, since without it the recognition potential can go flat, q = p, for good).
    """
    if isinstance(components, bool) or components < 1:
        raise ConfigError(f"components must be an integer ≥ 1 (K, the Gaussian components of the prior), got {components}; "
                          "e.g. components=10 (--components 10)")
    encoder = spec.encoder()
    likelihood = spec.likelihood_head()
    return StructuredLatentVariableModel(
        input_shape=spec.input_shape,
        latent_dim=spec.latent_dim,
        encoder=encoder,
        posterior=spec.posterior_head("diagonal", encoder.out_features + spec.condition_size),
        decoder=spec.decoder(likelihood.num_parameters),
        likelihood=likelihood,
        prior=GaussianMixturePrior(components, spec.latent_dim, learn_weights),
        objective=StructuredELBO(warmup_steps=warmup_steps),
        num_classes=spec.num_classes,
        condition_dim=spec.condition_dim,
    )
