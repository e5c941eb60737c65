"""Importance weights log p(x, z_k) − log q(z_k|x), the basis of IWAE and of log p(x) estimates."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import torch

from vaekit.distributions import sample_with_log_prob
from vaekit.distributions.likelihoods import log_prob_repeated
from vaekit.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from vaekit.models.model import LatentVariableModel

__all__ = ["importance_terms", "importance_terms_at", "log_importance_weights"]


def importance_terms(
    model: "LatentVariableModel", x: torch.Tensor, num_samples: int, y: torch.Tensor | None = None, *, decoder_dtype: torch.dtype | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The two parts of each importance weight, z_k ~ q(z|x): log p(x|z_k) and
    log p(z_k) − log q(z_k|x), each of shape (K, B).

    Their batch means are the reconstruction and (minus) the Monte-Carlo KL that
    importance-weighted objectives report. Reparameterised, so gradients flow through
    every term. The decoder runs once on all K·B codes.

    A model whose proposal is not q(z|x) alone (e.g. the auxiliary model's q(a|x) q(z|a,x))
    defines ``model.importance_terms(x, num_samples, y)``, and that is used instead
    (at the model's own precision: ``decoder_dtype`` is refused there).

    Arguments:
        decoder_dtype: run the decoder pass in this lower precision (``torch.bfloat16``) under
            autocast; sampling, log q, log p(z) and the scoring of x stay in the model's precision.
    """
    custom = getattr(model, "importance_terms", None)
    if custom is not None:
        if decoder_dtype is not None:
            raise ConfigError(f"{model.config.get('model', 'this model')} draws its own importance samples and scores them at its own "
                              "precision; evaluate it with precision=\"fp32\"")
        return custom(x, num_samples, y)
    q = model.encode(x, y)
    z, log_q = sample_with_log_prob(q, (num_samples,))  # (K, B, D), (K, B)
    return importance_terms_at(model, x, z, log_q, y, decoder_dtype=decoder_dtype)


def importance_terms_at(
    model: "LatentVariableModel",
    x: torch.Tensor,
    z: torch.Tensor,
    log_q: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    decoder_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""log p(x|z_k) and log p(z_k) − log q(z_k|x), each (K, B), at given draws z (K, B, D) with log q (K, B).

    The decoder runs once on all K·B codes, ordered example by example (the K codes of x_b are
    consecutive), and :func:`~vaekit.distributions.likelihoods.log_prob_repeated` scores
    each x_b against its K decoded distributions without copying x K times.
    :func:`importance_terms` draws z from q(z|x); a model with its own proposal draws (e.g.
    exact one-hot codes for categorical latents) calls this.

    Arguments:
        decoder_dtype: as in :func:`importance_terms`.
    """
    k, b = z.shape[:2]
    flat_z = z.transpose(0, 1).reshape(b * k, *z.shape[2:])  # (B·K, D), example-major
    flat_y = None if y is None else y.repeat_interleave(k, dim=0)
    lower = contextlib.nullcontext() if decoder_dtype is None else torch.autocast(flat_z.device.type, dtype=decoder_dtype)
    with lower:
        px = model.decode(flat_z, flat_y)
    log_px_z = log_prob_repeated(px, x, k).t()  # (K, B)
    return log_px_z, model.prior().log_prob(z) - log_q


def log_importance_weights(
    model: "LatentVariableModel", x: torch.Tensor, num_samples: int, y: torch.Tensor | None = None, *, decoder_dtype: torch.dtype | None = None
) -> torch.Tensor:
    r"""log w_k = log p(x|z_k) + log p(z_k) − log q(z_k|x), z_k ~ q(z|x), shape (K, B).

    log (1/K) Σ_k w_k is the importance-weighted bound (Burda et al. 2016) and, for large
    K, a consistent estimate of log p(x). The sum of :func:`importance_terms`
    (``decoder_dtype`` as there).
    """
    log_px_z, log_prior_ratio = importance_terms(model, x, num_samples, y, decoder_dtype=decoder_dtype)
    return log_px_z + log_prior_ratio
