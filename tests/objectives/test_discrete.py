"""The Gumbel-softmax temperature schedule of vaekit.objectives.discrete against its closed form and its docstring."""

import doctest
import math
import sys

import pytest

import vaekit.objectives  # noqa: F401  (the package's __init__ imports the module)
from vaekit.objectives.discrete import TemperatureSchedule


def test_the_schedule_is_the_clipped_exponential_and_its_docstring_example_shows_its_value():
    """τ_t = max(τ_min, τ_0 exp(−r t)) by hand, and the module's doctests (the example once showed exp(−1) below τ_min = 0.5)."""
    schedule = TemperatureSchedule(1.0, 0.5, 1e-3)
    for step in (0, 100, 693, 1000, 10**9):
        assert schedule(step) == pytest.approx(max(0.5, math.exp(-1e-3 * step)), rel=1e-15)
    assert schedule(1000) == 0.5  # exp(−1) < τ_min
    results = doctest.testmod(sys.modules["vaekit.objectives.discrete"])
    assert results.attempted >= 1 and results.failed == 0
