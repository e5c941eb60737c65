"""Weight schedules: functions of the optimisation step, pure and cheap (no tensors)."""

from __future__ import annotations

__all__ = ["linear_warmup"]


def linear_warmup(step: int, warmup_steps: int) -> float:
    """min(1, step / warmup_steps); 1 when ``warmup_steps`` is 0 (KL warm-up, Bowman et al. 2016)."""
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, step / warmup_steps)
