"""Gaussian posteriors (survey §2.8, §2.9) against their formulas and torch.distributions."""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from vaekit.distributions import (
    DiagonalGaussianPosterior,
    FullCovarianceGaussianPosterior,
    StandardNormalPrior,
    kl_or_estimate,
    kl_per_dimension,
    scale_tril_from_parameters,
)

dims = st.integers(min_value=1, max_value=6)
seeds = st.integers(min_value=0, max_value=10_000)


@settings(max_examples=25, deadline=None)
@given(d=dims, seed=seeds)
def test_diagonal_log_prob_is_change_of_variables(d, seed):
    torch.manual_seed(seed)
    head = DiagonalGaussianPosterior(5, d)
    q = head(torch.randn(4, 5))
    eps = torch.randn(4, d)
    z = q.mean + q.stddev * eps  # z = μ + σ ⊙ ε
    expected = (Normal(0.0, 1.0).log_prob(eps) - q.stddev.log()).sum(-1)  # Σ log N(ε) − log σ
    torch.testing.assert_close(q.log_prob(z), expected, rtol=1e-5, atol=1e-5)
    assert q.batch_shape == (4,) and q.event_shape == (d,)


def test_scale_tril_layout():
    log_scale = torch.log(torch.tensor([1.0, 2.0, 3.0]))
    off = torch.tensor([4.0, 5.0, 6.0])
    expected = torch.tensor([[1.0, 0, 0], [4.0, 2.0, 0], [5.0, 6.0, 3.0]])
    torch.testing.assert_close(scale_tril_from_parameters(log_scale, off), expected)


@settings(max_examples=25, deadline=None)
@given(d=dims, seed=seeds)
def test_full_covariance_log_prob_matches_formula(d, seed):
    torch.manual_seed(seed)
    head = FullCovarianceGaussianPosterior(7, d)
    q = head(torch.randn(3, 7))
    L = q.scale_tril
    assert torch.all(L.triu(1) == 0) and torch.all(L.diagonal(dim1=-2, dim2=-1) > 0)
    eps = torch.randn(3, d)
    z = q.loc + (L @ eps.unsqueeze(-1)).squeeze(-1)  # z = μ + L ε
    expected = Normal(0.0, 1.0).log_prob(eps).sum(-1) - L.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    torch.testing.assert_close(q.log_prob(z), expected, rtol=1e-4, atol=1e-4)
    # and against an independently built torch distribution from the covariance matrix
    L64 = L.double()
    ref = MultivariateNormal(q.loc.double(), covariance_matrix=L64 @ L64.transpose(-1, -2))
    torch.testing.assert_close(q.log_prob(z).double(), ref.log_prob(z.double()), rtol=1e-4, atol=1e-3)


@settings(max_examples=25, deadline=None)
@given(d=dims, seed=seeds)
def test_registered_kl_full_covariance_vs_diagonal_matches_torch(d, seed):
    torch.manual_seed(seed)
    q = FullCovarianceGaussianPosterior(4, d)(torch.randn(3, 4))
    m, s = torch.randn(d), torch.rand(d) + 0.5
    p = torch.distributions.Independent(Normal(m, s), 1)
    expected = kl_divergence(q, MultivariateNormal(m, scale_tril=torch.diag(s)))
    torch.testing.assert_close(kl_divergence(q, p), expected, rtol=1e-4, atol=1e-4)


def test_kl_or_estimate_falls_back_to_monte_carlo():
    torch.manual_seed(0)
    q = torch.distributions.Independent(torch.distributions.Laplace(torch.zeros(2), torch.ones(2)), 1)
    p = StandardNormalPrior(2)()
    z = q.sample((200_000,))
    estimate = kl_or_estimate(q, p, z).mean()
    # KL(Laplace(0,1) ‖ N(0,1)) per dimension = −H(Laplace) + ½ log 2π + ½ E[z²] = −(1 + log 2) + ½ log 2π + 1
    exact = 2 * (-(1 + math.log(2)) + 0.5 * math.log(2 * math.pi) + 1.0)
    assert abs(float(estimate) - exact) < 0.02


def test_kl_per_dimension_sums_to_total_for_diagonal():
    torch.manual_seed(0)
    q = DiagonalGaussianPosterior(5, 4)(torch.randn(6, 5))
    p = StandardNormalPrior(4)()
    torch.testing.assert_close(kl_per_dimension(q, p).sum(-1), kl_divergence(q, p))


def test_kl_per_dimension_full_covariance_is_the_chain_rule_split():
    torch.manual_seed(1)
    head = FullCovarianceGaussianPosterior(5, 3)
    with torch.no_grad():
        head.net.bias[6:] = torch.tensor([0.8, -0.5, 1.2])  # correlated
    q = head(torch.randn(2, 5))
    per_dim = kl_per_dimension(q, StandardNormalPrior(3)())
    var = (q.scale_tril ** 2).sum(-1)  # Σ_ii = Σ_j L_ij²
    marginal = 0.5 * (var + q.loc ** 2 - 1 - var.log())
    conditional_var = q.scale_tril.diagonal(dim1=-2, dim2=-1) ** 2  # Var(z_i | z_<i) = L_ii²
    torch.testing.assert_close(per_dim, marginal + 0.5 * (var / conditional_var).log(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(per_dim.sum(-1), kl_divergence(q, StandardNormalPrior(3)()), rtol=1e-5, atol=1e-5)


def test_full_covariance_posterior_starts_diagonal():
    q = FullCovarianceGaussianPosterior(7, 4)(torch.randn(3, 7))
    assert torch.all(q.scale_tril.tril(-1) == 0)
    head = FullCovarianceGaussianPosterior(7, 4)
    head.net.bias.data[8:] = 1.0  # the parametrisation itself can express correlations
    rows, cols = torch.tril_indices(4, 4, offset=-1)
    assert torch.all(head(torch.randn(3, 7)).scale_tril[:, rows, cols] == 1.0)


def test_detached_correlations_give_the_same_posterior_and_stop_only_the_body_gradient():
    torch.manual_seed(0)
    full = FullCovarianceGaussianPosterior(6, 3, detach_correlations=False)
    detached = FullCovarianceGaussianPosterior(6, 3)  # the default
    with torch.no_grad():
        full.net.weight.normal_()  # non-zero off-diagonal weights, so the L' path is live
        detached.load_state_dict(full.state_dict())
    h_full = torch.randn(4, 6, requires_grad=True)
    h_detached = h_full.detach().clone().requires_grad_()
    q_full, q_detached = full(h_full), detached(h_detached)
    torch.testing.assert_close(q_detached.scale_tril, q_full.scale_tril)
    torch.testing.assert_close(q_detached.loc, q_full.loc)
    # a loss of the off-diagonal entries only: the body (h) gets nothing when detached, the head still learns
    strict = torch.tril(torch.ones(3, 3), diagonal=-1).bool()
    q_full.scale_tril[:, strict].sum().backward()
    q_detached.scale_tril[:, strict].sum().backward()
    assert h_full.grad.abs().sum() > 0
    assert h_detached.grad is None or h_detached.grad.abs().sum() == 0
    torch.testing.assert_close(detached.net.weight.grad, full.net.weight.grad)
