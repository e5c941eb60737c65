"""The auxiliary deep generative model, unsupervised form (Maaløe et al. 2016; survey §2, "Auxiliary Deep VAE").

An auxiliary variable a enriches the posterior without touching the model of x:

    generative   p(z) p(x|z) p(a|x,z)          inference   q(a|x) q(z|a,x)

so q(z|x) = ∫ q(a|x) q(z|a,x) da is a continuous mixture of Gaussians (q(z|a,x) is
nonlinear in a). The marginal has no closed form, which decides the design:

* :meth:`AuxiliaryLatentVariableModel.encode` ``(x, y, a=None)`` returns q(z|a,x); with no
  ``a`` it plugs in a = E[a|x], giving the *one* Gaussian ``transform``, ``reconstruct`` and
  the applications use as the code of x. It is not the marginal q(z|x).
* The bound and ``log p(x)`` use the joint proposal q(a,z|x):
  :meth:`~AuxiliaryLatentVariableModel.joint_log_densities` draws (a_k, z_k) and evaluates
  all five densities, and ``importance_terms`` (found by
  :func:`vaekit.objectives.importance_terms`, hence by ``vaekit.log_likelihood``)
  turns them into log w_k = log p(x, a_k, z_k) − log q(a_k, z_k | x).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn
from torch.distributions import Distribution

from vaekit.distributions import DiagonalGaussianPosterior, StandardNormalPrior, sample_and_kl, sample_with_log_prob
from vaekit.errors import ConfigError, DataError
from vaekit.models.model import LatentVariableModel
from vaekit.models.posterior_options import DEFAULT_FLOW_STEPS, document_posterior_options, posterior_build_options
from vaekit.models.registry import register
from vaekit.models.spec import ModelSpec
from vaekit.nn import MLPEncoder
from vaekit.objectives.auxiliary import AUXILIARY_TERMS, AuxiliaryELBO, auxiliary_log_weights

__all__ = ["AuxiliaryLatentVariableModel", "auxiliary_vae"]


def _repeat(t: torch.Tensor | None, k: int) -> torch.Tensor | None:
    """(B, ...) -> (K·B, ...), sample-major: row k·B + b is t[b]."""
    if t is None:
        return None
    return t.unsqueeze(0).expand(k, *t.shape).reshape(k * t.shape[0], *t.shape[1:])


class AuxiliaryLatentVariableModel(LatentVariableModel):
    r"""A :class:`LatentVariableModel` with an auxiliary variable a: q(a|x) q(z|a,x) and p(a|x,z).

    Arguments:
        aux_dim: size of a.
        aux_posterior: head mapping the encoder features (B, F [+ condition]) to q(a|x).
        posterior: head mapping [features, a] (B, F [+ condition] + aux_dim) to q(z|a,x).
        aux_encoder: body mapping x to features (B, G) for the generative p(a|x,z).
        aux_likelihood: head mapping [aux features, z (, condition)] to p(a|x,z).
        **parts: the rest of :class:`LatentVariableModel` (encoder, decoder, likelihood,
            prior, objective, conditioning, config).

    Conditional models (``num_classes`` / ``condition_dim``) condition every factor on y.

    References:
        Auxiliary Deep Generative Models (Maaløe, Sønderby, Sønderby & Winther, ICML 2016),
        arXiv:1602.05473.

    Example:
        >>> model = vaekit.create("auxiliary_vae", input_shape=(1, 8, 8), latent_dim=2, aux_dim=2)  # doctest: +SKIP
        >>> model.joint_log_densities(torch.rand(5, 1, 8, 8), 3)["log_pa_xz"].shape  # doctest: +SKIP
        torch.Size([3, 5])
    """

    def __init__(self, *, aux_dim: int, aux_posterior: nn.Module, aux_encoder: nn.Module, aux_likelihood: nn.Module, **parts: Any):
        super().__init__(**parts)
        self.aux_dim = aux_dim
        self.aux_posterior = aux_posterior
        self.aux_encoder = aux_encoder
        self.aux_likelihood = aux_likelihood

    # -- the inference model --------------------------------------------------------------
    def encode_auxiliary(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Distribution:
        """q(a|x): batch shape (B,), event shape (aux_dim,)."""
        return self.aux_posterior(self.features(x, y))

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None, a: torch.Tensor | None = None) -> Distribution:
        """q(z|a,x) at the given a (B, aux_dim); without ``a``, at a = E[a|x].

        ``encode(x)`` is therefore one Gaussian (for the diagonal posterior) standing in
        for the marginal mixture q(z|x): use it for codes and reconstructions; the bound
        and ``log p(x)`` use the joint q(a|x) q(z|a,x) instead.
        """
        h = self.features(x, y)
        if a is None:
            a = self.aux_posterior(h).mean
        elif a.shape != (x.shape[0], self.aux_dim):
            raise DataError(f"a must have shape ({x.shape[0]}, {self.aux_dim}), got {tuple(a.shape)}")
        return self.posterior(torch.cat([h, a], dim=-1))

    # -- the generative model of a ----------------------------------------------------------
    def decode_auxiliary(self, x: torch.Tensor, z: torch.Tensor, y: torch.Tensor | None = None) -> Distribution:
        """p(a|x,z): batch shape (B,), event shape (aux_dim,)."""
        self.check_input(x)
        return self.aux_likelihood(self._aux_features(self.run_body(self.aux_encoder, x), z, self.condition(y, x.shape[0])))

    @staticmethod
    def _aux_features(g: torch.Tensor, z: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        return torch.cat([g, z] if c is None else [g, z, c], dim=-1)

    # -- joint draws --------------------------------------------------------------------
    def joint_log_densities(self, x: torch.Tensor, num_samples: int = 1, y: torch.Tensor | None = None) -> Mapping[str, torch.Tensor]:
        r"""Draw (a_k, z_k) ~ q(a|x) q(z|a_k,x), k = 1..K, and evaluate every density there.

        Returns ``log_px_z``, ``log_pa_xz``, ``log_pz``, ``log_qa_x``, ``log_qz_ax``, each
        (K, B), and ``kl_z``: KL(q(z|a_k,x) ‖ p(z)) given a_k, in closed form where there is
        one (:func:`vaekit.distributions.sample_and_kl`), for the bound. Reparameterised:
        gradients reach every network. The encoder bodies run once per example, the heads and
        the decoder once per draw.
        """
        k, b = num_samples, x.shape[0]
        h = self.features(x, y)  # (B, F [+ C]), checks x and y
        c = self.condition(y, b)
        a, log_qa = sample_with_log_prob(self.aux_posterior(h), (k,))  # (K, B, A), (K, B)
        a = a.reshape(k * b, self.aux_dim)
        q_z, p_z = self.posterior(torch.cat([_repeat(h, k), a], dim=-1)), self.prior()
        z, log_qz, kl_z = sample_and_kl(q_z, p_z)  # (K·B, D), (K·B,) or None, (K·B,)
        if log_qz is None:
            log_qz = q_z.log_prob(z)
        log_px = self.decode(z, _repeat(y, k)).log_prob(_repeat(x, k))
        log_pz = p_z.log_prob(z)
        p_a = self.aux_likelihood(self._aux_features(_repeat(self.run_body(self.aux_encoder, x), k), z, _repeat(c, k)))
        log_pa = p_a.log_prob(a)
        values = (log_px, log_pa, log_pz, log_qa, log_qz, kl_z)
        return {name: v.reshape(k, b) for name, v in zip((*AUXILIARY_TERMS, "kl_z"), values)}

    def importance_terms(self, x: torch.Tensor, num_samples: int, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        r"""log p(x|z_k) and log p(a_k|x,z_k) + log p(z_k) − log q(a_k|x) − log q(z_k|a_k,x), each (K, B).

        Found by :func:`vaekit.objectives.importance_terms` (hence by ``log_likelihood`` and
        IWAE-type bounds): the joint proposal q(a,z|x) makes log (1/K) Σ_k w_k a consistent
        estimate of log p(x), since ∫ p(a|x,z) da = 1.
        """
        d = self.joint_log_densities(x, num_samples, y)
        return d["log_px_z"], auxiliary_log_weights(d) - d["log_px_z"]

    def log_importance_weights(self, x: torch.Tensor, num_samples: int, y: torch.Tensor | None = None) -> torch.Tensor:
        r"""log w_k = log p(x|z_k) + log p(a_k|x,z_k) + log p(z_k) − log q(a_k|x) − log q(z_k|a_k,x), (K, B)."""
        return sum(self.importance_terms(x, num_samples, y))


@register("auxiliary_vae", family="variational")
@document_posterior_options
def auxiliary_vae(
    spec: ModelSpec,
    *,
    posterior: str = "diagonal",
    flow_steps: int = DEFAULT_FLOW_STEPS,
    aux_dim: int = 16,
    warmup_steps: int = 0,
) -> LatentVariableModel:
    r"""Auxiliary deep generative model (ADGM, unsupervised): auxiliary a with q(a|x) q(z|a,x) and p(a|x,z).

    Generative p(z) p(x|z) p(a|x,z), inference q(a|x) q(z|a,x); trained on the bound

        log p(x) ≥ E_q[log p(x|z) + log p(a|x,z) + log p(z) − log q(a|x) − log q(z|a,x)]

    with one reparameterised draw of (a, z). ``vaekit.log_likelihood`` importance-samples
    with the joint proposal: log (1/K) Σ_k p(x, a_k, z_k) / (q(a_k|x) q(z_k|a_k,x)).

    Networks: q(a|x) is a diagonal Gaussian head on the encoder features; q(z|a,x) is the
    ``posterior`` head (any family ``vae`` takes) after one ReLU layer (the last of
    ``hidden_dims``) on [features, a], so the marginal q(z|x) is a non-Gaussian mixture;
    p(a|x,z) is a diagonal Gaussian head after one ReLU layer on [features of x from a
    second encoder body, z]. ``encode(x)`` returns q(z|x, a=E[a|x]) (codes and
    reconstructions), not the marginal.

    References:
        Auxiliary Deep Generative Models (Maaløe, Sønderby, Sønderby & Winther, ICML 2016),
        arXiv:1602.05473.

    Options:
        aux_dim: size of the auxiliary variable a.
        warmup_steps: weight of the KL part raised linearly from 0 to 1 over this many steps (0: off).
    """
    if aux_dim <= 0:
        raise ConfigError(f"aux_dim must be a positive integer (the size of a), got {aux_dim}")
    encoder = spec.encoder()
    features = encoder.out_features + spec.condition_size
    hidden = spec.hidden_dims[-1:]
    z_body = MLPEncoder(features + aux_dim, hidden)
    aux_encoder = spec.encoder()
    a_body = MLPEncoder(aux_encoder.out_features + spec.latent_dim + spec.condition_size, hidden)
    likelihood = spec.likelihood_head()
    z_head = posterior_build_options(posterior, flow_steps)
    return AuxiliaryLatentVariableModel(
        aux_dim=aux_dim,
        aux_posterior=DiagonalGaussianPosterior(features, aux_dim, logvar_clamp=spec.logvar_clamp),
        aux_encoder=aux_encoder,
        aux_likelihood=nn.Sequential(a_body, DiagonalGaussianPosterior(a_body.out_features, aux_dim, logvar_clamp=spec.logvar_clamp)),
        input_shape=spec.input_shape,
        latent_dim=spec.latent_dim,
        encoder=encoder,
        posterior=nn.Sequential(z_body, spec.posterior_head(posterior, z_body.out_features, **z_head["posterior_options"])),
        decoder=spec.decoder(likelihood.num_parameters),
        likelihood=likelihood,
        prior=StandardNormalPrior(spec.latent_dim),
        objective=AuxiliaryELBO(warmup_steps=warmup_steps),
        num_classes=spec.num_classes,
        condition_dim=spec.condition_dim,
    )
