"""Importance-sampled estimates of log p(x) (Burda et al. 2016, Appendix; Rezende et al. 2014)."""

from __future__ import annotations

import math
from typing import Any, TYPE_CHECKING

import torch

from vaekit.data import check_data
from vaekit.errors import ConfigError
from vaekit.objectives import Autoencoding, log_importance_weights

if TYPE_CHECKING:  # pragma: no cover
    from vaekit.models import LatentVariableModel

__all__ = ["log_likelihood", "check_model_input", "has_likelihood", "MAX_CODES_PER_CHUNK", "PRECISIONS", "examples_per_chunk"]

MAX_CODES_PER_CHUNK = 16_384
"""Upper bound on the number of latent codes drawn, and decoded, at once: memory stays bounded for any K.

A chunk's codes (16 examples × K = 1000 by default, so each example is encoded once) are
decoded in tiles of at most :func:`vaekit.objectives.importance.decode_block` codes (512 per thread)."""

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}
"""Decoder precisions of :func:`log_likelihood`: the dtype its decoder pass runs in (None: the model's)."""


def check_model_input(model: "LatentVariableModel", x: Any) -> torch.Tensor:
    """``x`` as a tensor the model can score (numpy arrays and other real dtypes are converted);
    refuses data it cannot: wrong shape, NaN/inf, or values its likelihood cannot take."""
    if not isinstance(x, torch.Tensor) or x.dtype != next(model.parameters()).dtype:
        x = model.as_tensor(x, "x")
    model.check_input(x)
    check_data(x, input_shape=model.input_shape, likelihood=model.config.get("likelihood"), name="x")
    return x


def has_likelihood(model: "LatentVariableModel") -> bool:
    """Whether ``model`` has an ELBO and a log p(x) to estimate: a prior p(z) and a likelihood-based objective.

    Deterministic autoencoders have no prior. Wasserstein autoencoders (``wae_mmd``, ``swae``)
    have one but an :class:`~vaekit.objectives.Autoencoding` objective (a reconstruction cost
    plus a penalty on q(z)): their decoder's noise model is never fitted and their default
    point-mass q(z|x) has no density to importance-sample with, so they have neither.
    """
    return model.prior_module is not None and not isinstance(model.objective, Autoencoding)


def examples_per_chunk(num_samples: int) -> int:
    """Examples scored together by default: as many as fill one chunk with all K of their codes (at least 1).

    Each example is then encoded once and its K codes drawn in as few chunks as
    :data:`MAX_CODES_PER_CHUNK` allows (K = 1000: 16 examples, 16 000 codes, one chunk).
    """
    return max(1, MAX_CODES_PER_CHUNK // num_samples)


@torch.no_grad()
def log_likelihood(
    model: "LatentVariableModel",
    x: torch.Tensor,
    num_samples: int = 1000,
    *,
    y: torch.Tensor | None = None,
    batch_size: int | None = None,
    precision: str = "fp32",
    progress: bool = False,
) -> torch.Tensor:
    r"""Importance-sampled log p(x) in nats, one value per example, shape (B,).

        log p(x) ≈ log (1/K) Σ_{k=1}^{K} p(x, z_k) / q(z_k|x),   z_k ~ q(z|x),

    a stochastic lower bound whose expectation rises to log p(x) as K grows (it is the
    K-sample IWAE bound). The K samples are drawn in chunks and combined with a running
    logsumexp, so memory is bounded by ``MAX_CODES_PER_CHUNK`` decoded codes whatever K.

    Most of the cost is the decoder's: each example is encoded once per chunk, its K codes are
    decoded example by example in cache-sized tiles, log q(z|x) of a diagonal Gaussian comes
    from ε, and log p(x|z_k) is scored without copying x, in fused sums
    (:func:`vaekit.distributions.likelihoods.log_prob_repeated`). ``benchmarks/loglik_speed.py``
    times it against the bare decoder on the same codes.

    Arguments:
        model: a model with a prior and a probabilistic decoder.
        x: data, shape (B, *input_shape).
        num_samples: K, the number of importance samples (1000–5000 for reported numbers).
        y: labels or conditioning vectors for conditional models.
        batch_size: examples evaluated together (default :func:`examples_per_chunk`: as many
            as fill one chunk of ``MAX_CODES_PER_CHUNK`` codes; at most that many).
        precision: "fp32" (default), or "bf16" to run the decoder pass under bfloat16
            autocast; sampling, log q(z|x), log p(z), the scoring of x and the logsumexp stay
            in the model's precision. Faster only where bf16 matrix products are (GPUs, CPUs
            with AMX); ``benchmarks/loglik_speed.py --bf16`` measures its speed and its error
            against fp32 on the same codes.
        progress: show a progress bar.

    Example:
        >>> ll = log_likelihood(model, x_test, num_samples=1000)  # doctest: +SKIP
        >>> float(ll.mean())                                        # doctest: +SKIP
        -235.1
    """
    if num_samples < 1:
        raise ConfigError(f"num_samples must be ≥ 1, got {num_samples}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ConfigError(f"batch_size must be a positive number of examples, got {batch_size!r}; omit it to fill one chunk of codes")
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}, got {precision!r}; fp32 is the default")
    if model.prior_module is None:
        raise ConfigError("log_likelihood needs a model with a prior p(z); deterministic autoencoders have none")
    if not has_likelihood(model):
        raise ConfigError(f"log_likelihood needs a model trained on a bound of log p(x); {model.config.get('model', 'this model')} is trained "
                          "on a reconstruction cost plus a penalty on q(z) and defines no log p(x): compare it by its reconstruction error")
    x = check_model_input(model, x)
    if y is not None:  # labels or vectors as numpy arrays or lists too, as encode takes them
        y = model.labels_per_example(y, x.shape[0])
    lower = {} if PRECISIONS[precision] is None else {"decoder_dtype": PRECISIONS[precision]}
    batch_size = min(batch_size or examples_per_chunk(num_samples), MAX_CODES_PER_CHUNK)
    was_training = model.training
    model.eval()
    device = model.device
    results = []
    batches = range(0, x.shape[0], batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc=f"log p(x), K={num_samples}", unit="batch", leave=False)
    try:
        for start in batches:
            xb = x[start : start + batch_size].to(device)
            yb = None if y is None else y[start : start + batch_size].to(device)
            chunk = max(1, min(num_samples, MAX_CODES_PER_CHUNK // xb.shape[0]))
            total = torch.full((xb.shape[0],), -math.inf, device=device)
            for done in range(0, num_samples, chunk):
                k = min(chunk, num_samples - done)
                total = torch.logaddexp(total, torch.logsumexp(log_importance_weights(model, xb, k, yb, **lower), dim=0))
            results.append(total - math.log(num_samples))
    finally:
        model.train(was_training)
    return torch.cat(results).cpu()
