r"""An exponential moving average of the weights: the model that ``fit(ema=β)`` validates, saves and returns.

After every optimiser step t the averaged copy θ̄ of the weights θ moves towards them:

    θ̄₀ = θ₀,    θ̄_t = β θ̄_{t−1} + (1 − β) θ_t.

Averaging the iterates of a noisy optimiser lowers the variance of the weights it ends with,
without lowering the learning rate that keeps it moving (Polyak & Juditsky, 1992); it typically
gains a few tenths of a nat of test log-likelihood once the bound has levelled off, and is how
NVAE (Vahdat & Kautz, 2020) and VDVAE (Child, 2021) evaluate their models. With 1/(1 − β) a
few hundred to a few thousand steps (β = 0.999: a window of about two epochs of 540 steps) it
follows training closely early on and smooths it later.

Every floating-point parameter and buffer is averaged (torch's ``get_ema_multi_avg_fn``, one
fused ``_foreach_lerp_`` per step); integer and boolean buffers (counters, flags) are copied.

References:
    Acceleration of stochastic approximation by averaging (Polyak & Juditsky, 1992).
    NVAE: A deep hierarchical variational autoencoder (Vahdat & Kautz, 2020), arXiv:2007.03898.
    Very deep VAEs generalize autoregressive models (Child, 2021), arXiv:2011.10650.
"""

from __future__ import annotations

import copy
import itertools
import math
import numbers
from typing import Any

import torch
from torch.optim.swa_utils import get_ema_multi_avg_fn

from vaekit.errors import ConfigError

__all__ = ["WeightAverage", "check_ema"]


def check_ema(ema: Any, name: str = "ema") -> float | None:
    """``ema`` as a decay β in (0, 1), None for no averaging, or a ``ConfigError`` that calls it ``name``."""
    if ema is None:
        return None
    valid = isinstance(ema, numbers.Real) and not isinstance(ema, bool) and math.isfinite(ema) and 0 < ema < 1
    if not valid:
        raise ConfigError(f"{name} must be a decay between 0 and 1 (e.g. 0.999: an average over about 1000 steps), or None for no "
                          f"averaging; got {ema!r}")
    return float(ema)


class WeightAverage:
    """A copy of ``model`` whose weights are the exponential moving average of ``model``'s, decay ``decay``.

    ``module`` is that copy: a full model (``loss``, ``sample``, ``save``) whose tensors do not
    require gradients; ``update()`` after each optimiser step moves it towards ``model``.

    Example:
        >>> average = WeightAverage(model, decay=0.999)  # doctest: +SKIP
        >>> loss.backward(); optimizer.step(); average.update()  # doctest: +SKIP
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        self.model, self.decay = model, decay
        self.module = copy.deepcopy(model).requires_grad_(False)
        self._lerp = get_ema_multi_avg_fn(decay)

    def _pairs(self) -> tuple[list[torch.Tensor], list[torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]]]:
        """(averaged floats, live floats, [(averaged, live) of the other tensors]), in the modules' order.

        Listed at each update: a module may replace a buffer rather than write into it."""
        averaged, live, copied = [], [], []
        ours = itertools.chain(self.module.parameters(), self.module.buffers())
        theirs = itertools.chain(self.model.parameters(), self.model.buffers())
        for a, b in zip(ours, theirs, strict=True):
            if a.is_floating_point():
                averaged.append(a)
                live.append(b.detach())
            else:
                copied.append((a, b))
        return averaged, live, copied

    @torch.no_grad()
    def update(self) -> None:
        """θ̄ ← β θ̄ + (1 − β) θ for every floating-point tensor; the others copied."""
        averaged, live, copied = self._pairs()
        if averaged:
            self._lerp(averaged, live, None)
        for a, b in copied:
            a.copy_(b)

    @torch.no_grad()
    def reset(self) -> None:
        """θ̄ ← θ: start the average again from the model's weights."""
        self.module.load_state_dict(self.model.state_dict())
        averaged, live, copied = self._pairs()  # non-persistent buffers too
        for a, b in itertools.chain(zip(averaged, live), copied):
            a.copy_(b)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)
