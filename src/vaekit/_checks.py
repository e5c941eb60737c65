"""Predicates on values users pass as settings (counts, rates, seeds), shared by the trainer and the samplers."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

__all__ = ["is_finite_number", "is_whole_number"]


def is_finite_number(value: Any) -> bool:
    """Whether ``value`` is a finite real number, not a bool: a Python or NumPy int or float."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and math.isfinite(value)


def is_whole_number(value: Any) -> bool:
    """Whether ``value`` is a finite whole number: an int, a NumPy integer, or a float such as 3.0 (not a bool)."""
    return is_finite_number(value) and int(value) == value
