"""The time-to-quality recipe behind ``fit(fast=True)`` and ``vaekit train --fast``.

Samples per second is not what a user waits for; a good model is. ``fast`` takes the
settings of a run (``epochs`` at ``batch_size`` with Adam at ``lr``) and trains a model at
least as good in well under half the wall time:

* **fewer epochs** (× :data:`EPOCH_SCALE`) at **twice the learning rate** (× :data:`LR_SCALE`),
  **warmed up linearly** over the first :data:`LR_WARMUP_EPOCHS` epoch (Goyal et al. 2017,
  arXiv:1706.02677) and **decayed to zero along a cosine** (Loshchilov & Hutter 2017,
  arXiv:1608.03983): the high rate covers ground early, the decay ends on a low-noise
  minimum instead of wherever a constant rate happens to be;
* **a KL warm-up** over the first :data:`KL_WARMUP_FRACTION` of those epochs, for objectives
  with a KL weight and no warm-up of their own (Bowman et al. 2016, arXiv:1511.06349;
  Sønderby et al. 2016, arXiv:1602.02282): the decoder learns to use the code before the KL
  term pulls the posterior to the prior, so more latent units stay active;
* **the same batch size**: a larger batch gives more samples per second but fewer steps, and
  this model is short of steps, not of samples (measured below);
* **compiled steps** where ``torch.compile`` can run, and **bf16 bodies** where the hardware
  runs them fast (:mod:`vaekit.train.precision`); fp32 and eager otherwise, silently: the
  recipe stands without either.

Measured on the reference run (``configs/fashion_mnist_vae.yaml``: 60 epochs at batch 128,
Adam 1e-3; log p(x) with K = 1000 on the first 2 000 test images, one seed, two CPU threads
shared with other jobs): the reference −234.09 nats; 25 epochs at batch 128, lr 2e-3, cosine:
−234.61; the same with a 5-epoch KL warm-up: −233.41; 30 epochs at batch 256 (lr 1.4e-3):
−235.74; 30 epochs at batch 512 (lr 2e-3): −237.62. The side-by-side run of the README's
"Time to quality" is ``benchmarks/fast_recipe.py``.
"""

from __future__ import annotations

import math

import torch

from vaekit.errors import ConfigError
from vaekit.train.precision import check_compile, resolve_precision

__all__ = ["FastSettings", "fast_settings", "EPOCH_SCALE", "LR_SCALE", "LR_WARMUP_EPOCHS", "KL_WARMUP_FRACTION"]

EPOCH_SCALE = 0.4
LR_SCALE = 2.0
LR_WARMUP_EPOCHS = 1.0
KL_WARMUP_FRACTION = 0.2


class FastSettings(dict):
    """The settings :func:`fast_settings` chooses: ``epochs``, ``batch_size``, ``lr``, ``schedule``,
    ``lr_warmup_epochs``, ``warmup_epochs`` (KL warm-up; None: the model's own), ``precision``, ``compile``."""


def fast_settings(epochs: int, batch_size: int, lr: float, device: torch.device, *, precision: str = "fp32",
                  compile: bool = False, kl_warmup: bool = True) -> FastSettings:
    """The fast recipe for a run given as ``epochs`` at ``batch_size`` with learning rate ``lr`` on ``device``.

    Arguments:
        precision, compile: what the caller asked for; the recipe adds bf16 and compilation where they run
            (fast), and never removes what was asked.
        kl_warmup: whether to add a KL warm-up (False when the model has no KL weight or one was given).
    """
    fast_epochs = max(1, math.ceil(epochs * EPOCH_SCALE))
    dtype, _ = resolve_precision("bf16" if precision == "fp32" else precision, device)
    if not compile:
        try:
            check_compile(device)
            compile = True
        except ConfigError:
            compile = False
    return FastSettings(
        epochs=fast_epochs, batch_size=batch_size, lr=lr * LR_SCALE, schedule="cosine",
        lr_warmup_epochs=min(LR_WARMUP_EPOCHS, fast_epochs / 2),
        warmup_epochs=max(1, round(KL_WARMUP_FRACTION * fast_epochs)) if kl_warmup and fast_epochs > 1 else None,
        precision="fp32" if dtype is None else "bf16", compile=compile,
    )
