"""Importance weights log p(x, z_k) − log q(z_k|x), the basis of IWAE and of log p(x) estimates."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from vaekit.distributions import sample_with_log_prob

if TYPE_CHECKING:  # pragma: no cover
    from vaekit.models.model import LatentVariableModel

__all__ = ["importance_terms", "importance_terms_at", "log_importance_weights"]


def importance_terms(model: "LatentVariableModel", x: torch.Tensor, num_samples: int, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The two parts of each importance weight, z_k ~ q(z|x): log p(x|z_k) and
    log p(z_k) − log q(z_k|x), each of shape (K, B).

    Their batch means are the reconstruction and (minus) the Monte-Carlo KL that
    importance-weighted objectives report. Reparameterised, so gradients flow through
    every term. The decoder runs once on all K·B codes.

    A model whose proposal is not q(z|x) alone (e.g. the auxiliary model's q(a|x) q(z|a,x))
    defines ``model.importance_terms(x, num_samples, y)``, and that is used instead.
    """
    custom = getattr(model, "importance_terms", None)
    if custom is not None:
        return custom(x, num_samples, y)
    q = model.encode(x, y)
    z, log_q = sample_with_log_prob(q, (num_samples,))  # (K, B, D), (K, B)
    return importance_terms_at(model, x, z, log_q, y)


def importance_terms_at(
    model: "LatentVariableModel", x: torch.Tensor, z: torch.Tensor, log_q: torch.Tensor, y: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""log p(x|z_k) and log p(z_k) − log q(z_k|x), each (K, B), at given draws z (K, B, D) with log q (K, B).

    The decoder runs once on all K·B codes. :func:`importance_terms` draws z from q(z|x); a
    model with its own proposal draws (e.g. exact one-hot codes for categorical latents) calls this.
    """
    k, b = z.shape[:2]
    flat_z = z.reshape(k * b, *z.shape[2:])
    flat_x = x.unsqueeze(0).expand(k, *x.shape).reshape(k * b, *x.shape[1:])
    flat_y = None if y is None else y.unsqueeze(0).expand(k, *y.shape).reshape(k * b, *y.shape[1:])
    log_px_z = model.decode(flat_z, flat_y).log_prob(flat_x).view(k, b)
    return log_px_z, model.prior().log_prob(z) - log_q


def log_importance_weights(model: "LatentVariableModel", x: torch.Tensor, num_samples: int, y: torch.Tensor | None = None) -> torch.Tensor:
    r"""log w_k = log p(x|z_k) + log p(z_k) − log q(z_k|x), z_k ~ q(z|x), shape (K, B).

    log (1/K) Σ_k w_k is the importance-weighted bound (Burda et al. 2016) and, for large
    K, a consistent estimate of log p(x). The sum of :func:`importance_terms`.
    """
    log_px_z, log_prior_ratio = importance_terms(model, x, num_samples, y)
    return log_px_z + log_prior_ratio
