"""The bound and the importance weights of a model with an auxiliary variable a (Maaløe et al. 2016).

The generative model p(z) p(x|z) p(a|x,z) and the inference model q(a|x) q(z|a,x) give
five log-densities at a joint draw (a, z) ~ q(a|x) q(z|a,x). A model provides them as a
mapping (``model.joint_log_densities(x, K, y)``, each entry of shape (K, B)) under the
names in :data:`AUXILIARY_TERMS`; this module turns them into the bound and the weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

import torch

from vaekit.errors import ConfigError
from vaekit.objectives.schedules import linear_warmup

if TYPE_CHECKING:  # pragma: no cover
    from vaekit.models.auxiliary import AuxiliaryLatentVariableModel

__all__ = ["AUXILIARY_TERMS", "AuxiliaryELBO", "auxiliary_log_weights", "auxiliary_kl", "auxiliary_kl_given_a"]

AUXILIARY_TERMS = ("log_px_z", "log_pa_xz", "log_pz", "log_qa_x", "log_qz_ax")
"""log p(x|z), log p(a|x,z), log p(z), log q(a|x), log q(z|a,x): the five terms of the weight."""


def auxiliary_kl(terms: Mapping[str, torch.Tensor]) -> torch.Tensor:
    r"""The single-sample KL of the joint: log q(a|x) + log q(z|a,x) − log p(z) − log p(a|x,z)."""
    return terms["log_qa_x"] + terms["log_qz_ax"] - terms["log_pz"] - terms["log_pa_xz"]


def auxiliary_kl_given_a(terms: Mapping[str, torch.Tensor]) -> torch.Tensor:
    r"""The same KL with its z part integrated out given a:

        log q(a|x) − log p(a|x,z) + KL(q(z|a,x) ‖ p(z)),

    unbiased because E_{q(z|a,x)}[log q(z|a,x) − log p(z)] = KL(q(z|a,x) ‖ p(z)) (``kl_z``,
    closed form for Gaussian q(z|a,x)), and free of that part's sampling noise, the noise that
    costs a VAE trained on the one-sample KL estimate 1–2 nats (README, "estimator choices").
    """
    return terms["log_qa_x"] - terms["log_pa_xz"] + terms["kl_z"]


def auxiliary_log_weights(terms: Mapping[str, torch.Tensor]) -> torch.Tensor:
    r"""log w = log p(x|z) + log p(a|x,z) + log p(z) − log q(a|x) − log q(z|a,x), same shape as the terms.

    With (a_k, z_k) ~ q(a|x) q(z|a,x), log (1/K) Σ_k w_k estimates log p(x) without bias in
    w (E_q[w] = ∫∫ p(x|z) p(z) p(a|x,z) da dz = p(x), since ∫ p(a|x,z) da = 1), and its
    expectation is a lower bound on log p(x) that rises with K (Burda et al. 2016).
    """
    return terms["log_px_z"] - auxiliary_kl(terms)


class AuxiliaryELBO:
    r"""Negative bound of the auxiliary deep generative model, one reparameterised draw of (a, z).

        log p(x) ≥ E_{q(a|x) q(z|a,x)}[ log p(x|z) + log p(a|x,z) + log p(z)
                                         − log q(a|x) − log q(z|a,x) ]

    (Maaløe et al. 2016, the unsupervised bound). The auxiliary a leaves the generative
    model of x unchanged (a is generated after x) while the marginal
    q(z|x) = ∫ q(a|x) q(z|a,x) da, a continuous mixture, can be far from Gaussian.
    The loss minimised is −log p(x|z) + w_t · KL, w_t = min(1, t / warmup_steps), with KL
    estimated at one draw of a as log q(a|x) − log p(a|x,z) + KL(q(z|a,x) ‖ p(z)), the z part
    in closed form given a (:func:`auxiliary_kl_given_a`).

    Arguments:
        warmup_steps: KL warm-up length in optimisation steps (0: none).

    Terms returned (batch means): ``loss``, ``reconstruction`` (−log p(x|z)), ``kl``
    (the z-and-a part above), ``elbo`` (the unweighted bound, in nats).

    References:
        Auxiliary Deep Generative Models (Maaløe, Sønderby, Sønderby & Winther, ICML 2016),
        arXiv:1602.05473.
    """

    def __init__(self, warmup_steps: int = 0):
        if warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be ≥ 0, got {warmup_steps}")
        self.warmup_steps = warmup_steps

    def __call__(self, model: "AuxiliaryLatentVariableModel", x: torch.Tensor, y: torch.Tensor | None = None) -> Mapping[str, torch.Tensor]:
        terms = {k: v[0] for k, v in model.joint_log_densities(x, 1, y).items()}
        reconstruction = -terms["log_px_z"]
        kl = auxiliary_kl_given_a(terms)
        loss = reconstruction.mean() + linear_warmup(model.step, self.warmup_steps) * kl.mean()
        return {
            "loss": loss,
            "reconstruction": reconstruction.mean(),
            "kl": kl.mean(),
            "elbo": -(reconstruction + kl).mean(),
        }
