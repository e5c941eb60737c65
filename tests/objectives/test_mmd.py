"""The unbiased MMD² estimator and kernels against a brute-force double loop; its behaviour on equal and different distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vaekit.distributions import StandardNormalPrior
from vaekit.errors import ConfigError
from vaekit.objectives import MMDPenalty, PosteriorSample, kernel_matrix, mmd_unbiased


def rbf(a: np.ndarray, b: np.ndarray, c: float) -> float:
    return math.exp(-float(np.sum((a - b) ** 2)) / c)


def imq(a: np.ndarray, b: np.ndarray, c: float) -> float:
    return c / (c + float(np.sum((a - b) ** 2)))


def brute_force_mmd(x: np.ndarray, y: np.ndarray, k, c: float) -> float:
    """Gretton et al. (2012), Lemma 6, term by term."""
    n, m = len(x), len(y)
    sxx = sum(k(x[i], x[j], c) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    syy = sum(k(y[i], y[j], c) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    sxy = sum(k(x[i], y[j], c) for i in range(n) for j in range(m)) / (n * m)
    return sxx + syy - 2 * sxy


@pytest.mark.parametrize("kernel, k", [("rbf", rbf), ("imq", imq)])
@pytest.mark.parametrize("scale", [None, 0.7])
def test_mmd_matches_brute_force_double_loop(kernel, k, scale):
    g = np.random.default_rng(0)
    x, y = g.normal(size=(7, 3)), g.normal(0.5, 1.3, size=(5, 3))
    expected = brute_force_mmd(x, y, k, 2 * 3 if scale is None else scale)  # default C = 2·D
    got = mmd_unbiased(torch.from_numpy(x), torch.from_numpy(y), kernel, scale)
    assert float(got) == pytest.approx(expected, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("kernel, k", [("rbf", rbf), ("imq", imq)])
def test_kernel_matrix_entries(kernel, k):
    g = np.random.default_rng(1)
    a, b = g.normal(size=(4, 2)), g.normal(size=(3, 2))
    expected = np.array([[k(a[i], b[j], 1.9) for j in range(3)] for i in range(4)])
    np.testing.assert_allclose(kernel_matrix(torch.from_numpy(a), torch.from_numpy(b), kernel, 1.9).numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("kernel", ["rbf", "imq"])
def test_unbiased_on_equal_distributions_and_positive_on_different(kernel):
    g = torch.Generator().manual_seed(0)
    same = torch.stack([mmd_unbiased(torch.randn(16, 2, generator=g), torch.randn(16, 2, generator=g), kernel) for _ in range(400)])
    # E[MMD²_u] = 0 when P = Q: the mean is within 4 standard errors of 0 (and single draws go negative)
    assert abs(float(same.mean())) < 4 * float(same.std() / math.sqrt(len(same)))
    assert float(same.min()) < 0
    shifted = torch.stack(
        [mmd_unbiased(torch.randn(64, 2, generator=g), torch.randn(64, 2, generator=g) + 1.5, kernel) for _ in range(20)]
    )
    assert float(shifted.min()) > 0 and float(shifted.mean()) > 5 * float(same.std())


@settings(deadline=None, max_examples=25)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 9), m=st.integers(2, 9), d=st.integers(1, 4), kernel=st.sampled_from(["rbf", "imq"]))
def test_mmd_is_symmetric_permutation_and_translation_invariant(seed, n, m, d, kernel):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, d, generator=g, dtype=torch.float64), 2 * torch.randn(m, d, generator=g, dtype=torch.float64)
    value = mmd_unbiased(x, y, kernel)
    shift = torch.randn(d, generator=g, dtype=torch.float64)
    torch.testing.assert_close(mmd_unbiased(y, x, kernel), value)
    torch.testing.assert_close(mmd_unbiased(x[torch.randperm(n, generator=g)], y, kernel), value)
    torch.testing.assert_close(mmd_unbiased(x + shift, y + shift, kernel), value)


def test_mmd_of_fewer_than_two_points_is_zero_and_shapes_are_checked():
    assert float(mmd_unbiased(torch.randn(1, 3), torch.randn(5, 3))) == 0.0
    with pytest.raises(ValueError):
        mmd_unbiased(torch.randn(4, 3), torch.randn(4, 2))
    with pytest.raises(ConfigError):
        MMDPenalty(kernel="laplace")
    with pytest.raises(ConfigError):
        MMDPenalty(scale=-1.0)


def test_mmd_penalty_compares_codes_with_prior_draws_and_applies_its_weight():
    prior = StandardNormalPrior(3)()
    z = torch.randn(10, 3) + 1.0
    sample = PosteriorSample(x=torch.zeros(10, 1), q=prior, z=z, log_q=torch.zeros(10), prior=prior, kl=torch.zeros(10))
    torch.manual_seed(5)
    penalty, terms = MMDPenalty(weight=7.0, kernel="imq")(None, sample)
    torch.manual_seed(5)
    expected = mmd_unbiased(z, prior.rsample((10,)), "imq", 2.0 * 3)  # default C = 2·D·σ², σ² = 1
    torch.testing.assert_close(terms["mmd"], expected)
    torch.testing.assert_close(penalty, 7.0 * expected)
