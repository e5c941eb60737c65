"""The variational autoencoder (survey §2)."""

from __future__ import annotations

from vaekit.models.model import LatentVariableModel
from vaekit.models.posterior_options import (
    DEFAULT_FLOW_STEPS, document_gaussian_posterior_options, document_posterior_options, posterior_build_options,
)
from vaekit.models.registry import register
from vaekit.models.spec import ModelSpec
from vaekit.objectives import ELBO

__all__ = ["vae", "vamp_vae"]


@register("vae", family="variational")
@document_posterior_options
def vae(
    spec: ModelSpec,
    *,
    posterior: str = "diagonal",
    flow_steps: int = DEFAULT_FLOW_STEPS,
    warmup_steps: int = 0,
    free_bits: float = 0.0,
) -> LatentVariableModel:
    """Variational autoencoder trained on the reparameterised ELBO (AEVB; survey §2.3–2.9).

    loss = −log p(x|z) + β_t · KL(q(z|x) ‖ p(z)), z = g(φ, x, ε), with β_t rising from 0 to 1
    over ``warmup_steps`` (KL warm-up) and optional free bits (survey §2.10).

    References:
        Auto-Encoding Variational Bayes (Kingma & Welling, 2014), arXiv:1312.6114.

    Options:
        warmup_steps: KL weight raised linearly from 0 to 1 over this many steps (0: off).
        free_bits: nats per latent dimension not penalised by the KL (Kingma et al. 2016; 0: off).
    """
    objective = ELBO(beta=1.0, warmup_steps=warmup_steps, free_bits=free_bits)
    return spec.build(objective, **posterior_build_options(posterior, flow_steps))


@register("vamp_vae", family="variational")
@document_gaussian_posterior_options
def vamp_vae(spec: ModelSpec, *, posterior: str = "diagonal", warmup_steps: int = 0) -> LatentVariableModel:
    """VAE with a VampPrior: p(z) = (1/K) Σ_k q(z|u_k) over K learned pseudo-inputs (``vae`` with ``prior="vamp"``).

    loss = −log p(x|z) + β_t · [log q(z|x) − log p(z)] at one reparameterised z (the KL to a
    mixture has no closed form), log p(z) a logsumexp over the K components, each the model's
    own posterior at a pseudo-input u_k learned with the rest (``pseudo_inputs`` = K, a shared
    option, default 500; :class:`vaekit.distributions.VampPrior`).

    References:
        VAE with a VampPrior (Tomczak & Welling, AISTATS 2018), arXiv:1705.07120.

    Options:
        warmup_steps: KL weight raised linearly from 0 to 1 over this many steps (0: off; or ``fit(warmup_epochs=)``).
    """
    spec.prior = "vamp"
    return spec.build(ELBO(beta=1.0, warmup_steps=warmup_steps), **posterior_build_options(posterior, DEFAULT_FLOW_STEPS))
