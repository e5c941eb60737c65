"""The bound of a two-layer VAE: q(z₂|x) q(z₁|x, z₂) against p(z₂) p(z₁|z₂) p(x|z₁, z₂)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

import torch

from vaekit.distributions import sample_and_kl
from vaekit.errors import ConfigError
from vaekit.objectives.schedules import linear_warmup

if TYPE_CHECKING:  # pragma: no cover
    from vaekit.models.hierarchical import HierarchicalLatentVariableModel

__all__ = ["HierarchicalELBO"]


class HierarchicalELBO:
    r"""Negative ELBO of a two-stochastic-layer VAE, one reparameterised draw of (z₂, z₁).

        L(x) = E_q[ log p(x|z₁,z₂) + log p(z₁|z₂) + log p(z₂) − log q(z₁|x,z₂) − log q(z₂|x) ]
             = E_q[ log p(x|z₁,z₂) ] − E_{q(z₂|x)}[ KL(q(z₁|x,z₂) ‖ p(z₁|z₂)) ] − KL(q(z₂|x) ‖ p(z₂))

    with z₂ ~ q(z₂|x), z₁ ~ q(z₁|x, z₂). Given the drawn z₂, the KL of the bottom layer is
    between two diagonal Gaussians: closed form. The top KL is closed form against N(0, I)
    and the one-sample estimate log q(z₂|x) − log p(z₂) against the VampPrior
    (:func:`vaekit.distributions.sample_and_kl` decides). The loss minimised, averaged over the
    batch, is −log p(x|z₁,z₂) + w_t · (KL₁ + KL₂), w_t = min(1, t / warmup_steps).

    Arguments:
        warmup_steps: KL warm-up length in optimisation steps (0: none).

    Terms returned (batch means): ``loss``, ``reconstruction``, ``kl`` (KL₁ + KL₂), ``kl_z1``,
    ``kl_z2``, ``elbo``.

    References:
        VAE with a VampPrior (Tomczak & Welling, AISTATS 2018), §hierarchical, arXiv:1705.07120;
        Ladder Variational Autoencoders (Sønderby, Raiko, Maaløe, Sønderby & Winther, 2016),
        arXiv:1602.02282.
    """

    def __init__(self, warmup_steps: int = 0):
        if warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be ≥ 0, got {warmup_steps}")
        self.warmup_steps = warmup_steps

    def kl_weight(self, step: int) -> float:
        return linear_warmup(step, self.warmup_steps)

    def __call__(self, model: "HierarchicalLatentVariableModel", x: torch.Tensor, y: torch.Tensor | None = None) -> Mapping[str, torch.Tensor]:
        h = model.features(x, y)
        q2 = model.posterior(h)
        z2, _, kl2 = sample_and_kl(q2, model.prior_module())
        q1, p1 = model.bottom_posterior_at(h, z2), model.bottom_prior_at(z2)
        z1, _, kl1 = sample_and_kl(q1, p1)
        reconstruction = -model.decode(torch.cat([z1, z2], dim=-1), y).log_prob(x)
        kl = kl1 + kl2
        loss = reconstruction.mean() + self.kl_weight(model.step) * kl.mean()
        return {
            "loss": loss,
            "reconstruction": reconstruction.mean(),
            "kl": kl.mean(),
            "kl_z1": kl1.mean(),
            "kl_z2": kl2.mean(),
            "elbo": -(reconstruction + kl).mean(),
        }
