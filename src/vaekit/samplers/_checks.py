"""Checks of sampler hyper-parameters: one line naming the argument, what it takes and what it got."""

from __future__ import annotations

import math
from typing import Any, Sequence

from vaekit.errors import ConfigError

__all__ = ["check_int", "check_float", "check_choice", "check_int_tuple"]


def check_int(value: Any, name: str, low: int) -> int:
    """``value`` must be an integer ≥ ``low`` (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be an integer ≥ {low}, got {value!r}")
    return value


def check_float(value: Any, name: str, low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> float:
    """``value`` must be a finite real number in the interval from ``low`` to ``high`` (ends open as told)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ConfigError(f"{name} must be a number in {interval}, got {value!r}")
    return float(value)


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """``value`` must be one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_int_tuple(value: Any, name: str) -> tuple[int, ...]:
    """``value`` must be a non-empty sequence of positive integers, e.g. (64, 64)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ConfigError(f"{name} must be a sequence of positive integers like (64, 64), got {value!r}")
    items = tuple(value)
    if not items or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in items):
        raise ConfigError(f"{name} must be a non-empty sequence of positive integers like (64, 64), got {value!r}")
    return items
