"""Stable log cosh against the naive formula, at extreme arguments, and its tanh derivative."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Independent, Normal

from vaekit.errors import ConfigError
from vaekit.objectives import LogCoshReconstruction, log_cosh


def test_matches_naive_formula_where_it_is_finite():
    t = np.linspace(-300.0, 300.0, 2001)
    np.testing.assert_allclose(log_cosh(torch.from_numpy(t)).numpy(), np.log(np.cosh(t)), rtol=1e-12, atol=1e-12)


@settings(deadline=None, max_examples=25)
@given(t=st.floats(-700.0, 700.0))
def test_matches_naive_formula_property(t):
    assert float(log_cosh(torch.tensor(t, dtype=torch.float64))) == pytest.approx(math.log(math.cosh(t)), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_far_from_zero(dtype):
    t = torch.tensor([-1e4, 1e4, 1e30], dtype=dtype)
    assert torch.isinf(torch.log(torch.cosh(t))).all()  # the naive form overflows here
    value = log_cosh(t)
    assert torch.isfinite(value).all()
    torch.testing.assert_close(value, t.abs() - math.log(2.0))


def test_gradient_is_tanh():
    t = torch.tensor([-1e4, -20.0, -1.3, -1e-3, 0.0, 1e-3, 0.7, 5.0, 1e4], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(log_cosh(t).sum(), t)
    torch.testing.assert_close(grad, torch.tanh(t.detach()), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_accurate_near_zero_where_the_overflow_safe_form_cancels(dtype):
    """log cosh t against its series t²/2 − t⁴/12 + t⁶/45 − 17t⁸/2520 for |t| ≤ 10⁻², and its
    gradient against tanh, to a few ulps (|t| + log1p(e^{−2|t|}) − log 2 lost it all in float32)."""
    t = torch.tensor([-1e-2, -1e-4, -1e-7, 1e-15, 1e-6, 1e-3, 1e-2], dtype=dtype, requires_grad=True)
    value = log_cosh(t)
    (grad,) = torch.autograd.grad(value.sum(), t)
    exact = t.detach().double()
    series = exact**2 / 2 - exact**4 / 12 + exact**6 / 45 - 17 * exact**8 / 2520
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(value.double(), series, rtol=8 * eps, atol=0)
    torch.testing.assert_close(grad.double(), torch.tanh(exact), rtol=8 * eps, atol=0)


def test_reconstruction_cost_uses_the_decoder_mean():
    g = np.random.default_rng(0)
    x, mean = g.uniform(size=(3, 1, 4, 4)), g.uniform(size=(3, 1, 4, 4))
    px = Independent(Normal(torch.from_numpy(mean), 1.0), 3)
    a = 7.0
    expected = (np.log(np.cosh(a * (x - mean))) / a).reshape(3, -1).sum(1)
    np.testing.assert_allclose(LogCoshReconstruction(a)(px, torch.from_numpy(x)).numpy(), expected, rtol=1e-12)
    # ≈ (a/2)·r² for small residuals
    small = 1e-3 * torch.ones(2, 5, dtype=torch.float64)
    px = Independent(Normal(torch.zeros(2, 5, dtype=torch.float64), 1.0), 1)
    torch.testing.assert_close(LogCoshReconstruction(a)(px, small), torch.full((2,), 5 * a / 2 * 1e-6, dtype=torch.float64), rtol=1e-5, atol=0)
    with pytest.raises(ConfigError):
        LogCoshReconstruction(0.0)
