"""Importance weights log p(x, z_k) − log q(z_k|x), the basis of IWAE and of log p(x) estimates."""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING

import torch
from torch.distributions import Distribution, Independent, Normal

from vaekit.distributions import sample_with_log_prob
from vaekit.distributions.likelihoods import log_prob_repeated
from vaekit.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from vaekit.models.model import LatentVariableModel

__all__ = ["importance_terms", "importance_terms_at", "log_importance_weights", "diagonal_gaussian_draws", "decode_block"]

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)

DECODE_BLOCK = 512
"""Codes decoded per decoder call and per intra-op thread when scoring importance samples
(:func:`decode_block`): small enough that a thread's share of the decoded parameters (512 × 784
values, 1.6 MiB) is still in its core's cache when log p(x|z) reads it, large enough that the
decoder's matrix products run at full speed per code (``benchmarks/loglik_speed.py --blocks``)."""


def importance_terms(
    model: "LatentVariableModel", x: torch.Tensor, num_samples: int, y: torch.Tensor | None = None, *, decoder_dtype: torch.dtype | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The two parts of each importance weight, z_k ~ q(z|x): log p(x|z_k) and
    log p(z_k) − log q(z_k|x), each of shape (K, B).

    Their batch means are the reconstruction and (minus) the Monte-Carlo KL that
    importance-weighted objectives report. Reparameterised, so gradients flow through
    every term. The K·B codes are decoded in tiles of at most :func:`decode_block` codes.

    A diagonal Gaussian q(z|x) is sampled by :func:`diagonal_gaussian_draws` (log q from ε,
    survey §2.8); any other by :func:`~vaekit.distributions.sample_with_log_prob`. A model whose proposal
    is not q(z|x) alone (e.g. the auxiliary model's q(a|x) q(z|a,x)) defines
    ``model.importance_terms(x, num_samples, y)``, and that is used instead (at the model's
    own precision: ``decoder_dtype`` is refused there).

    Arguments:
        model: a model with a prior and a probabilistic decoder.
        x: data, shape (B, *input_shape).
        num_samples: K.
        y: labels or conditioning vectors for conditional models.
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
    if _is_diagonal_gaussian(q):
        z, log_q = diagonal_gaussian_draws(q, num_samples)  # (B, K, D), (B, K): example-major, as decoded
        log_px_z, log_prior_ratio = _example_major_terms(model, x, z, log_q, y, decoder_dtype)
        return log_px_z.t(), log_prior_ratio.t()
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

    The codes are decoded example by example (the K codes of x_b are consecutive) in tiles of
    at most :func:`decode_block` codes, and :func:`~vaekit.distributions.likelihoods.log_prob_repeated`
    scores each x_b against its decoded distributions without copying x K times.
    :func:`importance_terms` draws z from q(z|x); a model with its own proposal draws (e.g.
    exact one-hot codes for categorical latents) calls this.

    Arguments:
        decoder_dtype: as in :func:`importance_terms`.
    """
    log_px_z, log_prior_ratio = _example_major_terms(model, x, z.transpose(0, 1), log_q.t(), y, decoder_dtype)
    return log_px_z.t(), log_prior_ratio.t()


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


def diagonal_gaussian_draws(q: Distribution, num_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    r"""K reparameterised draws z = μ + σ ⊙ ε, ε ~ N(0, I), from a diagonal Gaussian with log q(z) taken from ε.

        log q(z) = Σ_i [log N(ε_i; 0, 1) − log σ_i] = −½ ‖ε‖² − Σ_i log σ_i − (D/2) log 2π

    (survey §2.8): the same value as ``q.log_prob(z)``, without recovering (z − μ)/σ, and the
    same function of (ε, μ, σ), so the same gradients. Draws are example-major: shapes
    (B, K, D) and (B, K).

    Arguments:
        q: ``Independent(Normal(μ, σ), 1)`` with batch shape (B,) and event shape (D,).
        num_samples: K.
    """
    loc, scale = q.base_dist.loc, q.base_dist.scale
    eps = torch.randn(loc.shape[0], num_samples, loc.shape[1], dtype=loc.dtype, device=loc.device)
    z = torch.addcmul(loc.unsqueeze(1), eps, scale.unsqueeze(1))
    log_q = -0.5 * torch.linalg.vector_norm(eps, dim=-1).square() - (scale.log().sum(-1) + loc.shape[1] * HALF_LOG_2PI).unsqueeze(1)
    return z, log_q


ACCELERATOR_DECODE_BLOCK = 16_384
"""Codes per decoder call on a GPU: no core's cache to stay within, and every call launches
kernels, so a whole chunk of codes (``vaekit.eval.likelihood.MAX_CODES_PER_CHUNK``) goes at once."""


def decode_block(device: torch.device | None = None) -> int:
    """Codes per decoder call: on the CPU :data:`DECODE_BLOCK` for each of torch's intra-op threads
    (fewer, larger calls with more threads, each thread's share the same); on any other ``device``,
    :data:`ACCELERATOR_DECODE_BLOCK`."""
    if device is not None and torch.device(device).type != "cpu":
        return ACCELERATOR_DECODE_BLOCK
    return DECODE_BLOCK * max(1, torch.get_num_threads())


def _is_diagonal_gaussian(q: Distribution, batch_dims: int = 1) -> bool:
    """Whether q is exactly ``Independent(Normal(μ, σ), 1)`` (no subclass) with ``batch_dims`` batch dimensions."""
    return (type(q) is Independent and type(q.base_dist) is Normal and q.reinterpreted_batch_ndims == 1
            and q.base_dist.loc.dim() == batch_dims + 1 and q.base_dist.loc.shape == q.base_dist.scale.shape)


def _prior_log_prob(model: "LatentVariableModel", z: torch.Tensor) -> torch.Tensor:
    """log p(z) for example-major draws z (B, K, D), shape (B, K).

    For a diagonal Gaussian prior −½ ‖(z − μ)/σ‖² − Σ_i log σ_i − (D/2) log 2π: torch's value,
    in one pass over z for N(0, I) and three otherwise instead of seven. Any other prior gets
    the draws sample-major, (K, B, D), as from ``q.rsample((K,))``."""
    p = model.prior()
    if not _is_diagonal_gaussian(p, batch_dims=0):
        return p.log_prob(z.transpose(0, 1)).t()
    loc, scale = p.base_dist.loc, p.base_dist.scale
    learned = torch.is_grad_enabled() and (loc.requires_grad or scale.requires_grad)  # z alone would drop their gradients
    standard = not learned and not torch.count_nonzero(loc) and bool(torch.all(scale == 1))
    distance = torch.linalg.vector_norm(z if standard else (z - loc) / scale, dim=-1)
    return -0.5 * distance.square() - (scale.log().sum(-1) + z.shape[-1] * HALF_LOG_2PI)


def _example_major_terms(
    model: "LatentVariableModel", x: torch.Tensor, z: torch.Tensor, log_q: torch.Tensor, y: torch.Tensor | None, decoder_dtype: torch.dtype | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(x_b|z_bk) and log p(z_bk) − log q(z_bk|x_b), each (B, K), for draws z (B, K, D) with log q (B, K).

    The codes are decoded and scored in tiles of at most :func:`decode_block` codes: several
    whole examples when K is small, a run of one example's draws otherwise.
    """
    b, k = z.shape[:2]
    block = decode_block(z.device)
    examples, draws = (max(1, block // k), k) if k < block else (1, block)
    lower = contextlib.nullcontext() if decoder_dtype is None else torch.autocast(z.device.type, dtype=decoder_dtype)
    overwrite = not torch.is_grad_enabled()  # each tile's decoded parameters are scored once, in place
    decode = getattr(model, "decode_unchecked", model.decode)  # the codes come from the model's own q(z|x)
    rows = []
    for first in range(0, b, examples):
        xs, ys = x[first : first + examples], None if y is None else y[first : first + examples]
        parts = []
        for start in range(0, k, draws):
            tile = z[first : first + examples, start : start + draws]
            n = tile.shape[1]
            with lower:
                px = decode(tile.reshape(-1, *z.shape[2:]), None if ys is None else ys.repeat_interleave(n, dim=0))
            parts.append(log_prob_repeated(px, xs, n, overwrite))
        rows.append(parts[0] if len(parts) == 1 else torch.cat(parts, dim=1))
    log_px_z = rows[0] if len(rows) == 1 else torch.cat(rows)
    return log_px_z, _prior_log_prob(model, z) - log_q
