"""The conditional variational autoencoder (Sohn et al. 2015; survey §2, "Conditional VAE").

Conditioning itself lives in :class:`~vaekit.models.model.LatentVariableModel`: the one-hot
label or conditioning vector y is appended to the encoder features and to z. This preset
is the VAE that *requires* it, so a missing ``num_classes`` / ``condition_dim`` is caught
when the model is created rather than when it is sampled.
"""

from __future__ import annotations

from vaekit.errors import ConfigError
from vaekit.models.model import LatentVariableModel
from vaekit.models.posterior_options import DEFAULT_FLOW_STEPS, document_posterior_options
from vaekit.models.registry import register
from vaekit.models.spec import ModelSpec
from vaekit.models.vae import vae

__all__ = ["conditional_vae"]


@register("conditional_vae", family="variational")
@document_posterior_options
def conditional_vae(
    spec: ModelSpec,
    *,
    posterior: str = "diagonal",
    flow_steps: int = DEFAULT_FLOW_STEPS,
    warmup_steps: int = 0,
    free_bits: float = 0.0,
) -> LatentVariableModel:
    r"""Conditional VAE: encoder and decoder see a label or conditioning vector y (Sohn et al. 2015).

    Trained on the conditional ELBO, with one reparameterised sample z ~ q(z|x, y):

        log p(x|y) ≥ E_q(z|x,y)[log p(x|z, y)] − KL(q(z|x, y) ‖ p(z)),   p(z) = N(0, I).

    y is a one-hot label (``num_classes=K``) or any real vector (``condition_dim=K``),
    appended to the encoder features and to z. Use ``encode(x, y)``, ``decode(z, y)``,
    ``loss(x, y)``, ``sample(n, y=label)``; ``vaekit.fit(model, (x, y))`` trains it. It is
    the ``vae`` preset (same options, posterior q(z|x, y) included) made to insist on y.

    References:
        Learning Structured Output Representation using Deep Conditional Generative
        Models (Sohn, Lee & Yan, NeurIPS 2015).

    Example:
        >>> model = vaekit.create("conditional_vae", input_shape=(1, 28, 28), num_classes=10)  # doctest: +SKIP
        >>> model.sample(8, y=3).shape  # doctest: +SKIP
        torch.Size([8, 1, 28, 28])

    Options:
        warmup_steps: KL weight raised linearly from 0 to 1 over this many steps (0: off).
        free_bits: nats per latent dimension not penalised by the KL (Kingma et al. 2016; 0: off).
    """
    if not spec.condition_size:
        raise ConfigError(
            "conditional_vae needs a condition: give num_classes=K (one-hot labels 0..K-1) "
            "or condition_dim=K (a real conditioning vector of size K)"
        )
    return vae(spec, posterior=posterior, flow_steps=flow_steps, warmup_steps=warmup_steps, free_bits=free_bits)
