"""The time-to-quality recipe behind ``fit(fast=True)`` and ``vaekit train --fast``.

Samples per second is not what a user waits for; a good model is. ``fast`` takes the
settings of a run (``epochs`` at ``batch_size`` with Adam at ``lr``) and trains a model of
the same quality in about half the wall time:

* **a larger batch** (× :data:`BATCH_SCALE`, less when that would leave fewer than
  :data:`MIN_STEPS_PER_EPOCH` steps per epoch: a small data set needs its steps more than its
  throughput): more samples per second from the same matmuls (1.4–1.6× on two CPU cores for
  the reference MLP);
* **the learning rate scaled by √(batch ratio)** (the square-root rule that suits Adam;
  Malladi et al. 2022, arXiv:2205.10287), **warmed up linearly** over the first
  :data:`LR_WARMUP_EPOCHS` epoch (Goyal et al. 2017, arXiv:1706.02677) and **decayed to zero
  along a cosine** (Loshchilov & Hutter 2017, arXiv:1608.03983): the decay buys back the
  steps a larger batch gives up, and ends on a low-noise minimum instead of wherever a
  constant rate happens to be;
* **fewer epochs** (× :data:`EPOCH_SCALE`);
* **bf16 bodies** where the hardware runs them fast (:mod:`vaekit.train.precision`; fp32 otherwise,
  silently: the recipe stands in fp32 too).

Measured on the reference run (``configs/fashion_mnist_vae.yaml``): see the README's
"Time to quality" and ``benchmarks/fast_recipe.py``.
"""

from __future__ import annotations

import math

import torch

from vaekit.train.precision import resolve_precision

__all__ = ["fast_settings", "BATCH_SCALE", "EPOCH_SCALE", "LR_WARMUP_EPOCHS", "MIN_STEPS_PER_EPOCH"]

BATCH_SCALE = 4
MIN_STEPS_PER_EPOCH = 100
EPOCH_SCALE = 0.5
LR_WARMUP_EPOCHS = 1.0


def fast_settings(epochs: int, batch_size: int, lr: float, device: torch.device, precision: str = "fp32",
                  num_examples: int | None = None) -> tuple[int, int, float, str, float, str]:
    """``(epochs, batch_size, lr, schedule, lr_warmup_epochs, precision)`` of the fast recipe for a run given as
    ``epochs`` at ``batch_size`` with learning rate ``lr`` on ``device``, over ``num_examples`` per epoch (None: many)."""
    scale = BATCH_SCALE
    while scale > 1 and num_examples is not None and num_examples / (batch_size * scale) < MIN_STEPS_PER_EPOCH:
        scale //= 2
    fast_epochs = max(1, math.ceil(epochs * EPOCH_SCALE))
    warmup = min(LR_WARMUP_EPOCHS, fast_epochs / 2)
    dtype, _ = resolve_precision("bf16", device) if precision == "fp32" else resolve_precision(precision, device)
    return (fast_epochs, batch_size * scale, lr * math.sqrt(scale), "cosine", warmup,
            "fp32" if dtype is None else "bf16")
