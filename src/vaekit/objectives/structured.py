r"""The bound of the GMM structured VAE (Johnson et al. 2016): assignments k and codes z, both in q.

The model is p(k) p(z|k) p(x|z) with a Gaussian-mixture p(k) p(z|k); its posterior
q(k, z|x) = q(k|x) q(z|k, x) is the conjugate mixture of
:func:`vaekit.distributions.conjugate_mixture_posterior`. The bound includes the assignments:

    L(x) = E_{q(k,z|x)}[log p(x|z)] − KL(q(k, z|x) ‖ p(k) p(z|k)) ≤ log p(x).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

import torch

from vaekit.distributions.mixture import GaussianMixture, kl_joint_mixture
from vaekit.errors import ConfigError
from vaekit.objectives.importance import importance_terms_at
from vaekit.objectives.schedules import linear_warmup

if TYPE_CHECKING:  # pragma: no cover
    from vaekit.models.model import LatentVariableModel

__all__ = ["StructuredELBO", "component_reconstruction"]


def component_reconstruction(
    model: "LatentVariableModel", x: torch.Tensor, q: GaussianMixture, y: torch.Tensor | None = None
) -> torch.Tensor:
    r"""log p(x|z_k) at one reparameterised draw z_k ~ q(z|k, x) per component, shape (B, K).

    Σ_k q(k|x) log p(x|z_k) is an unbiased estimate of E_{q(k,z|x)}[log p(x|z)] with the sum
    over k exact (Rao-Blackwellised): gradients reach q(k|x) through its weights without a
    score-function estimator, and the components through z_k = a_k + √b_k ε. The decoder runs
    on all K·B codes at once, in the shared decoding pass of
    :func:`vaekit.objectives.importance.importance_terms_at` (its prior ratio is not used).
    """
    z = q.component_distribution.rsample().transpose(0, 1)  # (K, B, D): draw k of example b from q(z|k, x_b)
    log_px, _ = importance_terms_at(model, x, z, z.new_zeros(z.shape[:2]), y)  # (K, B)
    return log_px.transpose(0, 1)


class StructuredELBO:
    r"""Negative SVAE bound with a Gaussian-mixture prior and the exact conjugate mixture posterior.

        L(x) = Σ_k q(k|x) E_{q(z|k,x)}[log p(x|z)] − KL(q(k|x) ‖ π) − Σ_k q(k|x) KL(q(z|k,x) ‖ N(μ_k, σ_k²))

    (Johnson et al. 2016, the SVAE objective at the optimal local factor, for the
    GMM). The KL of the joint over (k, z) is in closed form (:func:`kl_joint_mixture`); the
    reconstruction takes one reparameterised draw per component, weighted by q(k|x)
    (:func:`component_reconstruction`): K decoder passes per example. The loss minimised,
    averaged over the batch, is −Σ_k q(k|x) log p(x|z_k) + w_t · KL, w_t = min(1, t / warmup_steps).

    Arguments:
        warmup_steps: KL warm-up length in optimisation steps (0: none).

    Terms returned (batch means): ``loss``, ``reconstruction``, ``kl`` (the joint KL),
    ``elbo`` (the unweighted bound, nats), ``kl_assignment`` (KL(q(k|x) ‖ π)), ``kl_code``
    (Σ_k q(k|x) KL(q(z|k,x) ‖ p(z|k))).

    For the conjugate posterior the joint KL *is* the KL of the marginals, KL(q(z|x) ‖ p(z)):
    q(k|z, x) ∝ p(k) p(z|k) ψ(z; x) ∝ p(k|z), so the term E_{q(z|x)}[KL(q(k|z,x) ‖ p(k|z))]
    that separates them is 0, and the bound is the ordinary ELBO of the mixture q(z|x) with
    its KL in closed form (``vaekit.evaluate`` estimates the same bound with one draw of z).

    References:
        Composing graphical models with neural networks for structured representations and
        fast inference (Johnson, Duvenaud, Wiltschko, Datta & Adams, NeurIPS 2016),
        arXiv:1603.06277.
    """

    def __init__(self, warmup_steps: int = 0):
        if warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be ≥ 0, got {warmup_steps}")
        self.warmup_steps = warmup_steps

    def __call__(self, model: "LatentVariableModel", x: torch.Tensor, y: torch.Tensor | None = None) -> Mapping[str, torch.Tensor]:
        q = model.encode(x, y)
        if not isinstance(q, GaussianMixture):
            raise ConfigError(f"StructuredELBO needs a model whose encode returns a GaussianMixture posterior, got {type(q).__name__}")
        kl, kl_assignment, kl_code = kl_joint_mixture(q, model.prior())
        log_px = component_reconstruction(model, x, q, y)
        reconstruction = -(q.probs * log_px).sum(-1)
        loss = reconstruction.mean() + linear_warmup(model.step, self.warmup_steps) * kl.mean()
        return {
            "loss": loss,
            "reconstruction": reconstruction.mean(),
            "kl": kl.mean(),
            "elbo": -(reconstruction + kl).mean(),
            "kl_assignment": kl_assignment.mean(),
            "kl_code": kl_code.mean(),
        }
