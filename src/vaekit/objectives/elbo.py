"""The evidence lower bound and its variants with KL weights (survey §2.3–2.6, §2.10)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Mapping, Sequence

import torch
from torch.distributions import Distribution

from vaekit.distributions import kl_per_dimension, sample_and_kl
from vaekit.errors import ConfigError
from vaekit.objectives.posterior_sample import PosteriorSample, Reconstruction, Regulariser
from vaekit.objectives.schedules import linear_warmup

if TYPE_CHECKING:  # pragma: no cover
    from vaekit.models.model import LatentVariableModel

__all__ = ["ELBO", "free_bits_kl"]


def free_bits_kl(q: Distribution, p: Distribution, kl: torch.Tensor, free_bits: float) -> torch.Tensor:
    r"""The KL term with free bits λ (Kingma et al. 2016, eq. 15): Σ_i max(λ, E_batch KL_i). Returns a scalar.

    KL_i are the per-coordinate terms of :func:`vaekit.distributions.kl_per_dimension`, which
    add up to the KL: the coordinates' own KLs for a diagonal Gaussian posterior, the chain-rule
    split KL_i = E_q[KL(q(z_i | z_<i) ‖ p(z_i))] for a full-covariance one (so its correlations
    are paid for, and with nothing clipped the term is the KL). A posterior with no such split
    (flows; a non-Gaussian prior) is clipped as one group: max(λ·D, E_batch KL), with ``kl``
    the ELBO's own estimate (B,). A coordinate (or group) below λ nats gets no gradient
    pushing it lower, which fights posterior collapse (survey §2.10). As λ → 0 the term
    tends to the ELBO's E_batch KL (for a flow, to max(0, ·) of its one-sample estimate,
    whose batch mean can fall below 0).

    References:
        Improved Variational Inference with Inverse Autoregressive Flow (Kingma, Salimans,
        Jozefowicz, Chen, Sutskever & Welling, 2016), eq. 15, arXiv:1606.04934.
    """
    try:
        per_dim = kl_per_dimension(q, p).mean(0)
    except NotImplementedError:
        return kl.mean().clamp_min(free_bits * q.event_shape[-1])
    return per_dim.clamp_min(free_bits).sum()


class ELBO:
    r"""Negative ELBO with a (scheduled) KL weight, estimated with one reparameterised sample,
    plus optional regularisers of that sample.

    L(x) = E_q[log p(x|z)] − KL(q(z|x) ‖ p(z))                 (survey §2.4)

    The loss minimised, averaged over the batch, is

        loss = c(x, z) + β_t · KL(q(z|x) ‖ p(z)) + Σ_r R_r(q, z, p)

    with z = g(φ, x, ε) (the AEVB estimator, survey §2.6, Algorithm 1), c(x, z) = −log p(x|z)
    unless a ``reconstruction`` cost is given, β_t = β · min(1, t / warmup_steps) and R_r each
    regulariser's weighted penalty (β-VAE capacity, total correlation, MMD, DIP, …: they
    compose here instead of copying the ELBO). The KL is analytic when torch (or vaekit)
    registers a closed form, otherwise the single-sample estimate log q(z|x) − log p(z);
    with ``free_bits`` λ it is Σ_i max(λ, E_batch KL_i) over per-coordinate terms that add up
    to the KL, or max(λ·D, E_batch KL) where q has none (:func:`free_bits_kl`; Kingma et al. 2016).

    Arguments:
        regularisers: callables ``(model, PosteriorSample) -> (penalty, terms)``.
        beta: KL weight β (0 when a regulariser replaces the KL, e.g. capacity or β-TC).
        warmup_steps: KL warm-up length in optimisation steps (0: none).
        free_bits: nats per latent dimension not penalised by the KL (0: none).
        reconstruction: ``cost(p(x|z), x) -> (B,)`` used instead of −log p(x|z).

    Terms returned (batch means): ``loss``, ``reconstruction``, ``kl``, ``elbo`` (only when the
    reconstruction is −log p(x|z)), and each regulariser's own terms.

    References:
        Auto-Encoding Variational Bayes (Kingma & Welling, 2014), arXiv:1312.6114.

    Example:
        >>> from vaekit.objectives import MMDPenalty
        >>> objective = ELBO([MMDPenalty(weight=10.0)], beta=0.5)
    """

    def __init__(
        self,
        regularisers: Sequence[Regulariser] = (),
        *,
        beta: float = 1.0,
        warmup_steps: int = 0,
        free_bits: float = 0.0,
        reconstruction: Reconstruction | None = None,
    ):
        if not 0 <= beta < math.inf:
            raise ConfigError(f"beta must be ≥ 0 and finite, got {beta}")
        if not 0 <= warmup_steps < math.inf:
            raise ConfigError(f"warmup_steps must be ≥ 0 and finite, got {warmup_steps}")
        if not 0 <= free_bits < math.inf:
            raise ConfigError(f"free_bits must be a finite number ≥ 0 (nats per latent dimension; 0: off), got {free_bits}")
        self.beta, self.warmup_steps, self.free_bits = beta, warmup_steps, free_bits
        self.regularisers = tuple(regularisers)
        self.reconstruction = reconstruction

    def kl_weight(self, step: int) -> float:
        return self.beta * linear_warmup(step, self.warmup_steps)

    def __call__(self, model: "LatentVariableModel", x: torch.Tensor, y: torch.Tensor | None = None) -> Mapping[str, torch.Tensor]:
        q = model.encode(x, y)
        p = model.prior()
        z, log_q, kl = sample_and_kl(q, p)  # closed form where there is one; see sample_and_kl
        px = model.decode(z, y)
        cost = -px.log_prob(x) if self.reconstruction is None else self.reconstruction(px, x)
        reconstruction, kl_mean = cost.mean(), kl.mean()
        kl_loss = free_bits_kl(q, p, kl, self.free_bits) if self.free_bits > 0 else kl_mean
        loss = reconstruction + self.kl_weight(model.step) * kl_loss
        terms = {"reconstruction": reconstruction, "kl": kl_mean}
        if self.reconstruction is None:
            terms["elbo"] = -(reconstruction + kl_mean)
        sample = PosteriorSample(x=x, q=q, z=z, log_q=log_q, prior=p, kl=kl)
        for regulariser in self.regularisers:
            penalty, named = regulariser(model, sample)
            loss = loss + penalty
            terms.update(named)
        return {"loss": loss, **terms}
