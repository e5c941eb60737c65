"""The sliced Wasserstein distance against scipy, linear programming and quadrature over the circle; invariances, gradients, the penalty."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import linprog
from scipy.stats import wasserstein_distance

from vaekit.distributions import PointMass, StandardNormalPrior
from vaekit.errors import ConfigError
from vaekit.objectives import PosteriorSample, SlicedWassersteinPenalty, random_directions, sliced_wasserstein, wasserstein_1d


def transport_cost(u: np.ndarray, v: np.ndarray, p: float) -> float:
    """W_p^p between two empirical measures on the line, by solving the optimal-transport linear program."""
    n, m = len(u), len(v)
    cost = np.abs(u[:, None] - v[None, :]) ** p
    rows = np.kron(np.eye(n), np.ones((1, m)))  # Σ_j π_ij = 1/n
    cols = np.kron(np.ones((1, n)), np.eye(m))  # Σ_i π_ij = 1/m
    marginals = np.r_[np.full(n, 1 / n), np.full(m, 1 / m)]
    result = linprog(cost.ravel(), A_eq=np.vstack([rows, cols]), b_eq=marginals, bounds=(0, None), method="highs")
    assert result.status == 0
    return float(result.fun)


def per_direction(a: np.ndarray, b: np.ndarray, angles: np.ndarray, p: int) -> np.ndarray:
    """W_p^p of the projections of two equal-size 2-D samples on the directions (cos φ, sin φ)."""
    theta = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    pa, pb = np.sort(a @ theta.T, axis=0), np.sort(b @ theta.T, axis=0)
    return np.mean(np.abs(pa - pb) ** p, axis=0)


@pytest.mark.parametrize("n, m", [(17, 17), (9, 14), (1, 5), (30, 7)])
def test_one_dimension_p1_is_scipys_wasserstein_distance(n, m):
    g = np.random.default_rng(n * 100 + m)
    u, v = g.normal(size=n), g.gamma(2.0, size=m)
    expected = wasserstein_distance(u, v)
    got = sliced_wasserstein(torch.from_numpy(u)[:, None], torch.from_numpy(v)[:, None], num_projections=3, p=1)
    assert float(got) == pytest.approx(expected, rel=1e-12, abs=1e-12)  # D = 1: exact whatever the directions


@pytest.mark.parametrize("n", [2, 16, 101])
def test_one_dimension_p2_is_the_mean_squared_difference_of_sorted_samples(n):
    g = np.random.default_rng(n)
    u, v = g.normal(size=n), 2.0 * g.normal(size=n) + 0.5
    expected = np.mean((np.sort(u) - np.sort(v)) ** 2)
    got = sliced_wasserstein(torch.from_numpy(u)[:, None], torch.from_numpy(v)[:, None], num_projections=4, p=2)
    assert float(got) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("p", [1, 1.5, 2, 3])
@pytest.mark.parametrize("n, m", [(6, 6), (5, 8), (7, 3)])
def test_one_dimensional_distance_is_the_optimal_transport_cost(p, n, m):
    g = np.random.default_rng(7 * n + m)
    u, v = g.normal(size=n), g.normal(1.0, 2.0, size=m)
    got = wasserstein_1d(torch.from_numpy(u), torch.from_numpy(v), p)
    assert float(got) == pytest.approx(transport_cost(u, v, p), rel=1e-7, abs=1e-9)


def test_one_dimensional_distance_batches_over_leading_axes():
    g = torch.Generator().manual_seed(0)
    u, v = torch.randn(3, 4, 10, generator=g, dtype=torch.float64), torch.randn(3, 4, 6, generator=g, dtype=torch.float64)
    got = wasserstein_1d(u, v, 1)
    assert got.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            assert float(got[i, j]) == pytest.approx(wasserstein_distance(u[i, j].numpy(), v[i, j].numpy()), rel=1e-12)


@pytest.mark.parametrize("p", [1, 2])
def test_converges_to_quadrature_over_the_circle_in_two_dimensions(p):
    g = np.random.default_rng(p)
    a = g.normal(size=(40, 2))
    b = g.normal(size=(40, 2)) @ np.array([[2.0, 0.5], [0.0, 0.5]]) + np.array([1.0, -0.5])
    # SW over S¹: θ and −θ give the same 1-D distance, so integrate φ over [0, π) (midpoint rule, 20 000 nodes)
    nodes = (np.arange(20_000) + 0.5) * math.pi / 20_000
    values = per_direction(a, b, nodes, p)
    exact = values.mean()
    num = 20_000
    estimate = sliced_wasserstein(torch.from_numpy(a), torch.from_numpy(b), num, p, generator=torch.Generator().manual_seed(3))
    standard_error = values.std() / math.sqrt(num)
    assert abs(float(estimate) - exact) < 4 * standard_error
    assert standard_error < 0.02 * exact  # the check is sharp: well below the size of the value
    few = sliced_wasserstein(torch.from_numpy(a), torch.from_numpy(b), 5, p, generator=torch.Generator().manual_seed(3))
    assert abs(float(few) - exact) > abs(float(estimate) - exact)  # the estimate improves with L


def test_given_directions_are_used_and_normalised():
    g = np.random.default_rng(4)
    a, b = g.normal(size=(12, 2)), g.normal(size=(12, 2)) + 1
    angles = np.array([0.1, 1.0, 2.5])
    directions = 3.0 * torch.from_numpy(np.stack([np.cos(angles), np.sin(angles)], axis=1))  # not unit length
    got = sliced_wasserstein(torch.from_numpy(a), torch.from_numpy(b), p=2, projections=directions)
    assert float(got) == pytest.approx(per_direction(a, b, angles, 2).mean(), rel=1e-12)


def test_random_directions_are_uniform_on_the_sphere():
    theta = random_directions(20_000, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(theta.norm(dim=1), torch.ones(20_000, dtype=torch.float64))
    # uniform on S²: mean 0 and second moment I/3 (each within a few standard errors)
    assert theta.mean(0).abs().max() < 4 * math.sqrt(1 / 3 / 20_000)
    torch.testing.assert_close(theta.T @ theta / 20_000, torch.eye(3, dtype=torch.float64) / 3, atol=0.015, rtol=0)
    # Archimedes: the height of a uniform point on S² is uniform on [−1, 1]
    assert abs(float((theta[:, 2] > 0.5).double().mean()) - 0.25) < 0.015


def test_zero_for_identical_sets_and_positive_otherwise():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(32, 5, generator=g)
    assert float(sliced_wasserstein(a, a)) == 0.0
    assert float(sliced_wasserstein(a, a[torch.randperm(32, generator=g)])) == 0.0  # a set: the order does not matter
    assert float(sliced_wasserstein(a, a + 0.1)) > 0


def test_rotation_invariance():
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(50, 3, generator=g, dtype=torch.float64), 1.5 * torch.randn(50, 3, generator=g, dtype=torch.float64) + 0.3
    rotation, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    theta = random_directions(7, 3, generator=g, dtype=torch.float64)
    # exactly, with the directions rotated along: ⟨Rθ, Ra⟩ = ⟨θ, a⟩
    torch.testing.assert_close(sliced_wasserstein(a @ rotation.T, b @ rotation.T, projections=theta @ rotation.T),
                               sliced_wasserstein(a, b, projections=theta))
    # in expectation, with independent random directions: within the Monte-Carlo error
    num = 20_000
    values = wasserstein_1d((a @ random_directions(num, 3, generator=g, dtype=torch.float64).T).T,
                            (b @ random_directions(num, 3, generator=g, dtype=torch.float64).T).T)
    standard_error = float(values.std()) / math.sqrt(num)
    first = sliced_wasserstein(a, b, num, generator=torch.Generator().manual_seed(10))
    rotated = sliced_wasserstein(a @ rotation.T, b @ rotation.T, num, generator=torch.Generator().manual_seed(11))
    assert abs(float(first - rotated)) < 4 * math.sqrt(2) * standard_error


def test_rotating_one_sample_only_changes_the_distance():
    g = torch.Generator().manual_seed(5)
    a = torch.randn(64, 2, generator=g, dtype=torch.float64) * torch.tensor([3.0, 0.2], dtype=torch.float64)
    quarter = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64)
    assert float(sliced_wasserstein(a, a @ quarter.T, 2000, generator=g)) > 1.0  # an elongated cloud turned by 90°


@pytest.mark.parametrize("p", [1, 2])
def test_gradients_match_finite_differences_and_descend(p):
    g = torch.Generator().manual_seed(6)
    a = torch.randn(9, 3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(9, 3, generator=g, dtype=torch.float64) + 1.0
    theta = random_directions(4, 3, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: sliced_wasserstein(t, b, p=p, projections=theta), (a,))
    value = sliced_wasserstein(a, b, p=p, projections=theta)
    (grad,) = torch.autograd.grad(value, a)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    with torch.no_grad():
        assert sliced_wasserstein(a - 0.05 * grad, b, p=p, projections=theta) < value


def test_bad_arguments_are_refused():
    a = torch.randn(4, 2)
    with pytest.raises(ValueError, match="same D"):
        sliced_wasserstein(a, torch.randn(4, 3))
    with pytest.raises(ValueError, match="same D"):
        sliced_wasserstein(a, torch.randn(4))
    with pytest.raises(ConfigError, match="num_projections"):
        sliced_wasserstein(a, a, num_projections=0)
    with pytest.raises(ConfigError, match="≥ 1"):
        sliced_wasserstein(a, a, p=0.5)
    with pytest.raises(ValueError, match="projections"):
        sliced_wasserstein(a, a, projections=torch.randn(3, 5))
    with pytest.raises(ValueError, match=r"nonzero finite directions; rows \[1\]"):  # was a silent NaN
        sliced_wasserstein(a, a, projections=torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]]))


def posterior_sample(z: torch.Tensor) -> PosteriorSample:
    prior = StandardNormalPrior(z.shape[1])()
    return PosteriorSample(x=torch.zeros(z.shape[0], 1), q=PointMass(z), z=z, prior=prior, kl=None)


@pytest.mark.parametrize("p", [1, 2])
def test_penalty_is_weight_times_sw_against_prior_draws_and_fresh_directions(p):
    z = torch.randn(20, 3, generator=torch.Generator().manual_seed(8))
    penalty = SlicedWassersteinPenalty(weight=2.5, num_projections=6, p=p)
    torch.manual_seed(0)
    value, terms = penalty(None, posterior_sample(z))
    # the same random inputs, in the penalty's order: B prior draws, then L directions
    torch.manual_seed(0)
    prior_draws = StandardNormalPrior(3)().rsample((20,)).numpy()
    theta = torch.randn(6, 3).numpy()
    theta /= np.linalg.norm(theta, axis=1, keepdims=True)
    za, zb = z.numpy() @ theta.T, prior_draws @ theta.T
    expected = np.mean([np.mean(np.abs(np.sort(za[:, l]) - np.sort(zb[:, l])) ** p) for l in range(6)])
    assert set(terms) == {"sliced_wasserstein"}
    assert float(terms["sliced_wasserstein"]) == pytest.approx(expected, rel=1e-5)
    assert float(value) == pytest.approx(2.5 * expected, rel=1e-5)
    other, _ = penalty(None, posterior_sample(z))
    assert float(other) != float(value)  # fresh draws every call


@pytest.mark.parametrize("options, message", [
    ({"weight": -1.0}, "weight"), ({"weight": math.inf}, "weight"), ({"p": 3}, "p must be 1"), ({"p": 1.5}, "p must be 1"),
    ({"num_projections": 0}, "num_projections"), ({"num_projections": 2.5}, "num_projections"),
])
def test_penalty_options_out_of_range_are_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        SlicedWassersteinPenalty(**options)
