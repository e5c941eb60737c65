"""IWAE and MIWAE bounds: the log-mean-exp, its gradient, grouping, monotonicity in k, k = 1 is the ELBO."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp

from tests.linear_gaussian import exact_log_marginal, linear_gaussian_model
from vaekit.errors import ConfigError
from vaekit.objectives import ELBO, ImportanceWeightedBound, importance_weighted_bound, log_importance_weights


def test_bound_is_a_stable_log_mean_exp():
    log_w = np.array([[-1000.0, -3.0], [-1001.5, 2.0], [-999.0, 0.5]])  # exp(−1000) underflows: naive mean would give −inf
    expected = logsumexp(log_w, axis=0) - math.log(3)
    np.testing.assert_allclose(importance_weighted_bound(torch.from_numpy(log_w)).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(importance_weighted_bound(torch.from_numpy(log_w.T), dim=1).numpy(), expected, rtol=1e-12)


@settings(deadline=None, max_examples=25)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 30), spread=st.floats(0.0, 50.0))
def test_bound_lies_between_the_mean_and_the_max_of_log_w(seed, k, spread):
    """Jensen: mean_i log w_i ≤ log mean_i w_i ≤ max_i log w_i."""
    log_w = spread * torch.randn(k, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    bound = importance_weighted_bound(log_w)
    assert torch.all(bound >= log_w.mean(0) - 1e-9) and torch.all(bound <= log_w.max(0).values + 1e-9)


def test_gradient_is_the_normalised_weight_average_of_the_score():
    """∇ log (1/k) Σ w_i = Σ_i w̃_i ∇ log w_i; with log w_i = a_i·θ + c_i that is Σ_i w̃_i a_i."""
    g = np.random.default_rng(0)
    a, c, theta = g.normal(size=(6, 3)), g.normal(size=6), g.normal(size=3)
    t = torch.tensor(theta, requires_grad=True)
    importance_weighted_bound(torch.from_numpy(a) @ t + torch.from_numpy(c)).backward()
    log_w = a @ theta + c
    w = np.exp(log_w - logsumexp(log_w))
    np.testing.assert_allclose(t.grad.numpy(), w @ a, rtol=1e-10)


def test_model_gradient_flows_through_every_weight():
    """The objective's gradient equals that of the surrogate −Σ_i w̃_i log w_i (w̃ held fixed) on the same draws:
    the weights are differentiated through the logsumexp, not detached."""
    model, *_ = linear_gaussian_model(posterior="diagonal", exact=False)
    x = torch.randn(8, 5, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(3)
    ImportanceWeightedBound(num_samples=7)(model, x)["loss"].backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    torch.manual_seed(3)
    log_w = log_importance_weights(model, x, 7)
    (-(torch.softmax(log_w, 0).detach() * log_w).sum(0).mean()).backward()
    for got, expected in zip(grads, (p.grad for p in model.parameters())):
        torch.testing.assert_close(got, expected)
    assert all(g.abs().sum() > 0 for g in grads)  # encoder head and decoder both receive gradient


def test_terms_and_miwae_grouping():
    model, *_ = linear_gaussian_model(posterior="diagonal", exact=False)
    x = torch.randn(6, 5, generator=torch.Generator().manual_seed(2))
    k, m = 4, 3
    torch.manual_seed(0)
    with torch.no_grad():
        out = ImportanceWeightedBound(num_samples=k, num_bounds=m)(model, x)
    torch.manual_seed(0)
    log_w = log_importance_weights(model, x, m * k).detach().numpy().reshape(m, k, 6)  # consecutive k draws form a group
    expected = np.mean(logsumexp(log_w, axis=1) - math.log(k))
    assert float(out["iwae"]) == pytest.approx(expected, rel=1e-5)
    assert float(out["loss"]) == -float(out["iwae"])
    assert float(out["elbo"]) == pytest.approx(log_w.mean(), rel=1e-5)
    # M = 1 is the IWAE; k = 1 is the average of M one-sample ELBOs
    torch.manual_seed(0)
    miwae = ImportanceWeightedBound(num_samples=k, num_bounds=1)(model, x)
    torch.manual_seed(0)
    torch.testing.assert_close(miwae["iwae"], ImportanceWeightedBound(num_samples=k)(model, x)["iwae"])
    torch.manual_seed(0)
    single = ImportanceWeightedBound(num_samples=1, num_bounds=5)(model, x)
    torch.testing.assert_close(single["iwae"], single["elbo"])


def _repeated(model, x, k, reps):
    values = torch.stack([ImportanceWeightedBound(num_samples=k)(model, x)["iwae"].detach() for _ in range(reps)])
    return float(values.mean()), float(values.std() / math.sqrt(reps))


def test_bound_increases_with_k_toward_log_p_x():
    """On a fixed linear-Gaussian model with an imperfect proposal: L_1 < L_5 < L_50 ≤ log p(x) (Burda et al., Thm 1)."""
    torch.manual_seed(0)
    model, W, b, sigma = linear_gaussian_model(posterior="diagonal", exact=False)
    x = torch.randn(32, 5, generator=torch.Generator().manual_seed(4))
    log_px = float(exact_log_marginal(x, W, b, sigma).mean())
    with torch.no_grad():
        estimates = [_repeated(model, x, k, reps=200) for k in (1, 5, 50)]
    for (lower, se_lower), (upper, se_upper) in zip(estimates, estimates[1:]):
        assert upper - lower > 4 * math.hypot(se_lower, se_upper)
    top, se_top = estimates[-1]
    assert top < log_px + 4 * se_top
    assert log_px - top < 0.5 * (log_px - estimates[0][0])  # k = 50 closes most of the ELBO's gap


def test_k_equal_one_is_the_elbo_in_expectation():
    torch.manual_seed(0)
    model, *_ = linear_gaussian_model(posterior="diagonal", exact=False)
    x = torch.randn(32, 5, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        iwae, se_iwae = _repeated(model, x, 1, reps=400)
        elbos = torch.stack([ELBO()(model, x)["elbo"] for _ in range(400)])
    elbo, se_elbo = float(elbos.mean()), float(elbos.std() / math.sqrt(400))
    assert abs(iwae - elbo) < 4 * math.hypot(se_iwae, se_elbo)


def test_options_are_checked():
    with pytest.raises(ConfigError, match="num_samples"):
        ImportanceWeightedBound(num_samples=0)
    with pytest.raises(ConfigError, match="num_bounds"):
        ImportanceWeightedBound(num_samples=2, num_bounds=1.5)


def test_reported_reconstruction_and_kl_match_their_closed_forms():
    """On the linear-Gaussian model: kl → KL(q‖p) in closed form, reconstruction → −E_q log p(x|z)."""
    from torch.distributions import kl_divergence

    from tests.objectives.test_elbo import closed_form_elbo

    torch.manual_seed(0)
    model, W, b, sigma = linear_gaussian_model(posterior="diagonal", exact=False)
    x = torch.randn(4, 5)
    with torch.no_grad():
        out = ImportanceWeightedBound(num_samples=50, num_bounds=4)(model, x.repeat(100, 1))
        kl = kl_divergence(model.encode(x), model.prior())
        expected_reconstruction = -(closed_form_elbo(model, x, W, b, sigma) + kl)
    assert abs(float(out["kl"]) - float(kl.mean())) < 0.05
    assert abs(float(out["reconstruction"]) - float(expected_reconstruction.mean())) < 0.1
    torch.testing.assert_close(out["elbo"], -(out["reconstruction"] + out["kl"]))


class _LearnedGaussianPrior(torch.nn.Module):
    """p(z) = N(μ, diag σ²) with learned μ and log σ, starting at N(0, I)."""

    def __init__(self, d: int):
        super().__init__()
        self.loc, self.log_scale = torch.nn.Parameter(torch.zeros(d)), torch.nn.Parameter(torch.zeros(d))

    def forward(self):
        return torch.distributions.Independent(torch.distributions.Normal(self.loc, self.log_scale.exp()), 1)


def test_a_learned_prior_at_n01_gets_torchs_gradient_from_the_bound():
    """A learned Gaussian prior that starts at N(0, I) must still get ∇μ, ∇log σ of log p(z) (the N(0, I) shortcut has none)."""
    model, *_ = linear_gaussian_model(posterior="diagonal", exact=False)
    model.prior_module = _LearnedGaussianPrior(2)
    x = torch.randn(3, 5, generator=torch.Generator().manual_seed(6))
    k = 6
    torch.manual_seed(7)
    ImportanceWeightedBound(num_samples=k)(model, x)["loss"].backward()
    got = [p.grad.clone() for p in model.prior_module.parameters()]
    model.zero_grad()
    torch.manual_seed(7)  # the same draws: z = μ + σ ε, ε drawn example-major (B, K, D)
    q = model.encode(x)
    z = (q.base_dist.loc.unsqueeze(1) + q.base_dist.scale.unsqueeze(1) * torch.randn(3, k, 2)).transpose(0, 1)  # (K, B, D)
    log_px = model.decode(z.reshape(-1, 2)).log_prob(x.repeat(k, 1)).view(k, 3)
    log_w = log_px + model.prior().log_prob(z) - q.log_prob(z)
    (-importance_weighted_bound(log_w).mean()).backward()
    for g, e in zip(got, (p.grad for p in model.prior_module.parameters())):
        assert e.abs().sum() > 0
        torch.testing.assert_close(g, e)
