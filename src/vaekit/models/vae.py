"""The variational autoencoder (survey §2)."""

from __future__ import annotations

from vaekit.models.model import LatentVariableModel
from vaekit.models.posterior_options import DEFAULT_FLOW_STEPS, document_posterior_options, posterior_build_options
from vaekit.models.registry import register
from vaekit.models.spec import ModelSpec
from vaekit.objectives import ELBO

__all__ = ["vae"]


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
