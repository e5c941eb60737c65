"""A VAE with two stochastic layers (Tomczak & Welling 2018, §hierarchical; cf. Ladder VAE, Sønderby et al. 2016).

    generative   p(z₂) p(z₁|z₂) p(x|z₁, z₂)          inference   q(z₂|x) q(z₁|x, z₂)

The code of x is the concatenation z = [z₁, z₂] (size ``latent_dim`` + ``top_latent_dim``):

* :meth:`HierarchicalLatentVariableModel.prior` is p(z₁, z₂) = p(z₂) p(z₁|z₂) and
  :meth:`~HierarchicalLatentVariableModel.encode` is q(z₁, z₂|x) = q(z₂|x) q(z₁|x, z₂), both a
  :class:`vaekit.distributions.ChainDistribution`: sampling is ancestral, the density the
  chain rule, and ``mean`` the code [E(z₁ | x, z₂ = E z₂), E z₂] that ``transform``,
  ``reconstruct`` and the applications use. ``decode(z)`` takes that concatenation, so
  ``sample`` draws z₂ ~ p(z₂), z₁ ~ p(z₁|z₂), x from p(x|z₁, z₂).
* ``vaekit.log_likelihood`` importance-samples both layers with no override: the generic
  :func:`vaekit.objectives.importance_terms` draws from ``encode(x)``, whose
  ``rsample_and_log_prob`` samples z₂ₖ ~ q(z₂|x), z₁ₖ ~ q(z₁|x, z₂ₖ) in one pass, and
  ``prior().log_prob`` gives log p(z₁ₖ|z₂ₖ) + log p(z₂ₖ): log w_k = log p(x|z₁ₖ,z₂ₖ) +
  log p(z₁ₖ|z₂ₖ) + log p(z₂ₖ) − log q(z₁ₖ|x,z₂ₖ) − log q(z₂ₖ|x).
* p(z₂) is the shared ``prior`` option: N(0, I) or the VampPrior on z₂, whose components are
  q(z₂|u_k) (the encoder and the top head at the pseudo-inputs).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn
from torch.distributions import Distribution

from vaekit.distributions import ChainDistribution, DiagonalGaussianPosterior
from vaekit.errors import ConfigError
from vaekit.models.model import LatentVariableModel
from vaekit.models.registry import register
from vaekit.models.spec import ModelSpec
from vaekit.nn import GatedDense
from vaekit.objectives import HierarchicalELBO, ImportanceWeightedBound

__all__ = ["HierarchicalLatentVariableModel", "hvae", "dense_body"]


def dense_body(in_features: int, sizes: Sequence[int], gated: bool) -> nn.Sequential:
    """Dense layers that act on the last dimension only (any leading shape): Linear-ReLU or :class:`GatedDense`."""
    layers: list[nn.Module] = []
    for a, b in zip([in_features, *sizes[:-1]], sizes):
        layers += [GatedDense(a, b)] if gated else [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers)


class HierarchicalLatentVariableModel(LatentVariableModel):
    r"""A :class:`LatentVariableModel` with two stochastic layers; its code is z = [z₁, z₂].

    Arguments:
        bottom_dim: D₁, the size of z₁ (``latent_dim`` is D₁ + D₂).
        encoder: body mapping x to features h (B, F).
        posterior: head mapping h to q(z₂|x) (batch (B,), event (D₂,)).
        bottom_posterior: module mapping [h, z₂] (…, F + D₂) to q(z₁|x, z₂).
        bottom_prior: module mapping z₂ (…, D₂) to p(z₁|z₂).
        prior: module returning p(z₂) (``StandardNormalPrior(D₂)`` or a ``VampPrior``).
        decoder: body mapping [z₁, z₂] (B, D₁ + D₂) to the likelihood's raw parameters.
        **parts: the rest of :class:`LatentVariableModel` (likelihood, objective, config, …).

    The networks of the two conditionals act on the last dimension, so K importance samples
    of z₂ (shape (K, B, D₂)) go through them at once.

    References:
        VAE with a VampPrior (Tomczak & Welling, AISTATS 2018), §hierarchical, arXiv:1705.07120;
        Ladder Variational Autoencoders (Sønderby, Raiko, Maaløe, Sønderby & Winther, NeurIPS 2016),
        arXiv:1602.02282.

    Example:
        >>> model = vaekit.create("hvae", input_shape=(1, 8, 8), latent_dim=4, top_latent_dim=2)  # doctest: +SKIP
        >>> model.encode(torch.rand(5, 1, 8, 8)).rsample().shape  # doctest: +SKIP
        torch.Size([5, 6])
    """

    def __init__(self, *, bottom_dim: int, bottom_posterior: nn.Module, bottom_prior: nn.Module, **parts: Any):
        super().__init__(**parts)
        self.bottom_dim = int(bottom_dim)
        self.bottom_posterior = bottom_posterior
        self.bottom_prior = bottom_prior

    @property
    def top_dim(self) -> int:
        return self.latent_dim - self.bottom_dim

    # -- the two conditionals -------------------------------------------------------------
    def bottom_posterior_at(self, h: torch.Tensor, z2: torch.Tensor) -> Distribution:
        """q(z₁|x, z₂) for features h (B, F) and z₂ (*S, B, D₂): batch shape (*S, B)."""
        return self.bottom_posterior(torch.cat([h.expand(*z2.shape[:-1], h.shape[-1]), z2], dim=-1))

    def bottom_prior_at(self, z2: torch.Tensor) -> Distribution:
        """p(z₁|z₂) for z₂ (…, D₂)."""
        return self.bottom_prior(z2)

    # -- the distributions over the code [z₁, z₂] -------------------------------------------
    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Distribution:
        """q(z₁, z₂|x) = q(z₂|x) q(z₁|x, z₂) over [z₁, z₂]: batch shape (B,), event shape (D₁ + D₂,)."""
        h = self.features(x, y)
        return ChainDistribution(self.posterior(h), lambda z2: self.bottom_posterior_at(h, z2), self.bottom_dim)

    def prior(self) -> Distribution:
        """p(z₁, z₂) = p(z₂) p(z₁|z₂) over [z₁, z₂]."""
        return ChainDistribution(self.prior_module(), self.bottom_prior_at, self.bottom_dim)


@register("hvae", family="variational")
def hvae(spec: ModelSpec, *, top_latent_dim: int = 16, warmup_steps: int = 0, num_samples: int = 1) -> LatentVariableModel:
    r"""Two-layer VAE: q(z₂|x) q(z₁|x, z₂), p(z₂) p(z₁|z₂) p(x|z₁, z₂), p(z₂) standard or VampPrior.

    Trained on the one-sample bound (:class:`vaekit.objectives.HierarchicalELBO`)

        E_q[log p(x|z₁,z₂)] − E_q[KL(q(z₁|x,z₂) ‖ p(z₁|z₂))] − KL(q(z₂|x) ‖ p(z₂)),

    the bottom KL in closed form given z₂; or, with ``num_samples`` = k > 1, on the k-sample
    importance-weighted bound over both layers (:class:`vaekit.objectives.ImportanceWeightedBound`,
    Burda et al. 2016), log (1/k) Σ_i p(x, z₁ⁱ, z₂ⁱ) / q(z₁ⁱ, z₂ⁱ|x) with (z₁ⁱ, z₂ⁱ) drawn
    ancestrally from q, which is tighter than the ELBO and rises to log p(x) with k. Networks: the ``arch`` encoder body gives h(x);
    q(z₂|x) is a diagonal Gaussian head on h; q(z₁|x, z₂) a diagonal Gaussian head after one
    dense layer (width ``hidden_dims[-1]``) on [h, z₂]; p(z₁|z₂) a diagonal Gaussian head after
    two dense layers on z₂; p(x|z₁, z₂) the ``arch`` decoder on [z₁, z₂]. Dense layers are
    gated with ``arch="gated_mlp"`` (as in the VampPrior code), Linear-ReLU otherwise; every
    Gaussian head takes ``logvar_clamp``. ``prior="vamp"`` puts the VampPrior on z₂
    (``pseudo_inputs`` = K). The code of x is [z₁, z₂] (``latent_dim`` + ``top_latent_dim``
    values); ``vaekit.log_likelihood`` importance-samples both layers.

    References:
        VAE with a VampPrior (Tomczak & Welling, AISTATS 2018), §hierarchical, arXiv:1705.07120;
        Ladder Variational Autoencoders (Sønderby et al., NeurIPS 2016), arXiv:1602.02282.

    Options:
        top_latent_dim: D₂, the size of the top layer z₂ (``latent_dim`` is D₁, the size of z₁).
        warmup_steps: KL weight raised linearly from 0 to 1 over this many steps (0: off; or ``fit(warmup_epochs=)``).
        num_samples: k, importance samples of the training bound (1: the ELBO; k > 1: the IWAE
            bound, which has no KL term to warm up).
    """
    if top_latent_dim <= 0:
        raise ConfigError(f"top_latent_dim must be a positive integer (the size of z2), got {top_latent_dim}")
    if isinstance(num_samples, bool) or int(num_samples) != num_samples or num_samples < 1:
        raise ConfigError(f"num_samples must be a positive integer (importance samples of the training bound; 1: the ELBO), got {num_samples!r}")
    if num_samples > 1 and warmup_steps:
        raise ConfigError("num_samples > 1 trains on the IWAE bound, which has no KL weight to warm up; drop warmup_steps "
                          "(or train with num_samples=1 first and continue on the IWAE bound)")
    if spec.condition_size:
        raise ConfigError("hvae is unconditional; drop num_classes/condition_dim (conditional_vae takes labels)")
    if not spec.hidden_dims:
        raise ConfigError("hvae needs at least one hidden_dims entry: its dense layers between z₁ and z₂ have width hidden_dims[-1]; "
                          "give e.g. hidden_dims=(300,) (--hidden-dims 300)")
    d1, d2, width, gated = spec.latent_dim, top_latent_dim, spec.hidden_dims[-1], spec.arch == "gated_mlp"
    encoder = spec.encoder()
    features = encoder.out_features
    top_head = DiagonalGaussianPosterior(features, d2, logvar_clamp=spec.logvar_clamp)
    q_body = dense_body(features + d2, (width,), gated)
    p_body = dense_body(d2, (width, width), gated)
    likelihood = spec.likelihood_head()
    return HierarchicalLatentVariableModel(
        bottom_dim=d1,
        bottom_posterior=nn.Sequential(q_body, DiagonalGaussianPosterior(width, d1, logvar_clamp=spec.logvar_clamp)),
        bottom_prior=nn.Sequential(p_body, DiagonalGaussianPosterior(width, d1, logvar_clamp=spec.logvar_clamp)),
        input_shape=spec.input_shape,
        latent_dim=d1 + d2,
        encoder=encoder,
        posterior=top_head,
        decoder=spec.decoder(likelihood.num_parameters, in_features=d1 + d2),
        likelihood=likelihood,
        prior=spec.prior_for(encoder, top_head, latent_dim=d2),
        objective=HierarchicalELBO(warmup_steps=warmup_steps) if num_samples == 1 else ImportanceWeightedBound(num_samples=int(num_samples)),
    )
