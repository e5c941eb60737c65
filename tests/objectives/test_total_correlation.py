"""β-TC decomposition: density matrices, MWS/MSS estimators against brute force, the telescoping identity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import multivariate_normal, norm
from torch.distributions import AffineTransform, Independent, MultivariateNormal, Normal, TransformedDistribution, kl_divergence

from vaekit.errors import ConfigError
from vaekit.objectives import PosteriorSample, TotalCorrelationPenalty, total_correlation_decomposition
from vaekit.objectives.total_correlation import log_aggregate_density, log_density_matrix, stratified_log_weights


def diagonal_posterior(b: int, d: int, seed: int = 0) -> Independent:
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(b, d, generator=g, dtype=torch.float64)
    sigma = 0.3 + torch.rand(b, d, generator=g, dtype=torch.float64)
    return Independent(Normal(mu, sigma), 1)


def full_posterior(b: int, d: int, seed: int = 0) -> MultivariateNormal:
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(b, d, generator=g, dtype=torch.float64)
    tril = torch.randn(b, d, d, generator=g, dtype=torch.float64).tril(-1) * 0.5 + torch.diag_embed(0.4 + torch.rand(b, d, generator=g, dtype=torch.float64))
    return MultivariateNormal(mu, scale_tril=tril)


def prior(d: int):
    return Independent(Normal(torch.zeros(d, dtype=torch.float64), torch.ones(d, dtype=torch.float64)), 1)


def test_density_matrix_against_scipy_diagonal_and_full():
    q = diagonal_posterior(4, 3)
    z = q.sample()
    joint, per_dim = log_density_matrix(q, z)
    mu, sd, zn = q.base_dist.loc.numpy(), q.base_dist.scale.numpy(), z.numpy()
    for i in range(4):
        for j in range(4):
            expected = norm.logpdf(zn[i], mu[j], sd[j])
            np.testing.assert_allclose(per_dim[i, j].numpy(), expected, rtol=1e-10)
            assert float(joint[i, j]) == pytest.approx(expected.sum(), rel=1e-10)
    q = full_posterior(4, 3)
    z = q.sample()
    joint, per_dim = log_density_matrix(q, z)
    cov = q.covariance_matrix.numpy()
    for i in range(4):
        for j in range(4):
            assert float(joint[i, j]) == pytest.approx(multivariate_normal.logpdf(z[i].numpy(), q.loc[j].numpy(), cov[j]), rel=1e-9)
            np.testing.assert_allclose(per_dim[i, j].numpy(), norm.logpdf(z[i].numpy(), q.loc[j].numpy(), np.sqrt(np.diag(cov[j]))), rtol=1e-9)


def test_mws_log_q_z_against_brute_force():
    """log q̂(z_i) = log (1/(N·B)) Σ_j q(z_i | x_j), for the joint and each coordinate, computed directly."""
    b, d, n = 3, 2, 10
    q = diagonal_posterior(b, d, seed=3)
    z = q.sample()
    joint, per_dim = log_density_matrix(q, z)
    mu, sd, zn = q.base_dist.loc.numpy(), q.base_dist.scale.numpy(), z.numpy()
    for i in range(b):
        densities = [np.prod(norm.pdf(zn[i], mu[j], sd[j])) for j in range(b)]
        expected = math.log(sum(densities) / (n * b))
        assert float(log_aggregate_density(joint, n, "mws")[i]) == pytest.approx(expected, rel=1e-10)
        for k in range(d):
            marginal = sum(norm.pdf(zn[i, k], mu[j, k], sd[j, k]) for j in range(b)) / (n * b)
            assert float(log_aggregate_density(per_dim, n, "mws")[i, k]) == pytest.approx(math.log(marginal), rel=1e-10)


def test_mss_weights_and_log_q_z_against_brute_force():
    b, d, n = 5, 2, 40
    m = b - 1
    w = np.full((b, b), 1 / m)
    for i in range(b):
        w[i, i] = 1 / n
        w[i, (i + 1) % b] = (n - m) / (n * m)
    np.testing.assert_allclose(stratified_log_weights(b, n, torch.float64).exp().numpy(), w, rtol=1e-12)
    np.testing.assert_allclose(w.sum(1), 1.0)  # every row is a proper mixture
    q = diagonal_posterior(b, d, seed=4)
    z = q.sample()
    joint, _ = log_density_matrix(q, z)
    mu, sd, zn = q.base_dist.loc.numpy(), q.base_dist.scale.numpy(), z.numpy()
    for i in range(b):
        expected = math.log(sum(w[i, j] * np.prod(norm.pdf(zn[i], mu[j], sd[j])) for j in range(b)))
        assert float(log_aggregate_density(joint, n, "mss")[i]) == pytest.approx(expected, rel=1e-10)


def test_identical_posteriors_give_exact_terms():
    """All q(z|x_j) equal: q(z) is that Gaussian, so MI = TC = 0 and dimension-wise KL = log q − log p.
    MSS (weights summing to 1) recovers this exactly; MWS is low by log N in each density."""
    b, d, n = 6, 3, 1000
    base = diagonal_posterior(1, d, seed=5)
    q = Independent(Normal(base.base_dist.loc.expand(b, d), base.base_dist.scale.expand(b, d)), 1)
    z = q.sample()
    exact_kl = q.log_prob(z) - prior(d).log_prob(z)
    terms = total_correlation_decomposition(q, z, prior(d), n, "mss")
    torch.testing.assert_close(terms["mi"], torch.zeros(b, dtype=torch.float64), atol=1e-10, rtol=0)
    torch.testing.assert_close(terms["tc"], torch.zeros(b, dtype=torch.float64), atol=1e-10, rtol=0)
    torch.testing.assert_close(terms["dimension_kl"], exact_kl)
    terms = total_correlation_decomposition(q, z, prior(d), n, "mws")
    torch.testing.assert_close(terms["mi"], torch.full((b,), math.log(n), dtype=torch.float64))
    torch.testing.assert_close(terms["tc"], torch.full((b,), (d - 1) * math.log(n), dtype=torch.float64))


@settings(deadline=None, max_examples=25)
@given(
    seed=st.integers(0, 10_000), b=st.integers(2, 7), d=st.integers(1, 4), n=st.integers(8, 100_000),
    sampling=st.sampled_from(["mws", "mss"]), full=st.booleans(),
)
def test_terms_telescope_to_log_q_minus_log_p(seed, b, d, n, sampling, full):
    """MI + TC + dimension-wise KL = log q(z_i|x_i) − log p(z_i), checked against torch.distributions."""
    q = full_posterior(b, d, seed) if full else diagonal_posterior(b, d, seed)
    z = q.sample()
    terms = total_correlation_decomposition(q, z, prior(d), n, sampling)
    total = terms["mi"] + terms["tc"] + terms["dimension_kl"]
    torch.testing.assert_close(total, q.log_prob(z) - prior(d).log_prob(z))


def test_sum_of_terms_averages_to_the_kl():
    """The minibatch sum is an unbiased one-sample estimate of the average KL(q(z|x) ‖ p(z))."""
    torch.manual_seed(0)
    q = diagonal_posterior(8, 3, seed=6)
    totals = []
    for _ in range(2000):
        terms = total_correlation_decomposition(q, q.rsample(), prior(3), 500, "mss")
        totals.append(float((terms["mi"] + terms["tc"] + terms["dimension_kl"]).mean()))
    totals = np.array(totals)
    kl = float(kl_divergence(q, prior(3)).mean())
    assert abs(totals.mean() - kl) < 4 * totals.std() / math.sqrt(len(totals))


def test_penalty_weights_its_terms():
    q = diagonal_posterior(6, 2, seed=7)
    z = q.sample()
    p = prior(2)
    sample = PosteriorSample(x=torch.zeros(6, 1), q=q, z=z, log_q=q.log_prob(z), prior=p, kl=kl_divergence(q, p))
    penalty, terms = TotalCorrelationPenalty(alpha=0.5, beta=6.0, gamma=2.0, dataset_size=100, sampling="mss")(None, sample)
    assert set(terms) == {"mi", "tc", "dimension_kl"}
    torch.testing.assert_close(penalty, 0.5 * terms["mi"] + 6.0 * terms["tc"] + 2.0 * terms["dimension_kl"])


def test_dataset_size_defaults_to_what_fit_recorded_then_to_the_batch():
    q = diagonal_posterior(6, 2, seed=8)
    z = q.sample()
    p = prior(2)
    sample = PosteriorSample(x=torch.zeros(6, 1), q=q, z=z, log_q=q.log_prob(z), prior=p, kl=kl_divergence(q, p))
    unset = TotalCorrelationPenalty(dataset_size=None)

    class Trained:
        dataset_size = 100

    torch.testing.assert_close(unset(Trained(), sample)[1], TotalCorrelationPenalty(dataset_size=100)(None, sample)[1])
    torch.testing.assert_close(unset(None, sample)[1], TotalCorrelationPenalty(dataset_size=6)(None, sample)[1])
    assert not torch.allclose(unset(Trained(), sample)[1]["tc"], unset(None, sample)[1]["tc"])


def test_errors_name_the_problem():
    q = diagonal_posterior(4, 2)
    flow = TransformedDistribution(q, [AffineTransform(0.0, 2.0, event_dim=1)])
    with pytest.raises(ConfigError, match="Gaussian posterior"):
        log_density_matrix(flow, q.sample())
    with pytest.raises(ConfigError, match="sampling"):
        log_aggregate_density(torch.zeros(3, 3), 10, "iid")
    with pytest.raises(ConfigError, match="dataset_size"):
        stratified_log_weights(8, 3)
    with pytest.raises(ConfigError, match="dataset_size"):
        TotalCorrelationPenalty(dataset_size=0)
    with pytest.raises(ConfigError, match="factorised"):
        total_correlation_decomposition(q, q.sample(), MultivariateNormal(torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64)), 10)


def test_mss_on_a_batch_of_one_falls_back_to_mws():
    q = diagonal_posterior(1, 2)
    z = q.sample()
    joint, _ = log_density_matrix(q, z)
    torch.testing.assert_close(log_aggregate_density(joint, 50, "mss"), log_aggregate_density(joint, 50, "mws"))
