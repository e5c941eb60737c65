"""DIP-VAE covariances against numpy.cov and the law of total covariance; the penalty against loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import AffineTransform, Independent, MultivariateNormal, Normal, TransformedDistribution

from vaekit.errors import ConfigError
from vaekit.objectives import DIPPenalty, PosteriorSample, dip_covariance, dip_penalty
from vaekit.objectives.dip import batch_covariance


def diagonal(b: int, d: int, seed: int) -> Independent:
    g = torch.Generator().manual_seed(seed)
    return Independent(Normal(torch.randn(b, d, generator=g, dtype=torch.float64), 0.2 + torch.rand(b, d, generator=g, dtype=torch.float64)), 1)


def full(b: int, d: int, seed: int) -> MultivariateNormal:
    g = torch.Generator().manual_seed(seed)
    tril = 0.5 * torch.randn(b, d, d, generator=g, dtype=torch.float64).tril(-1) + torch.diag_embed(0.3 + torch.rand(b, d, generator=g, dtype=torch.float64))
    return MultivariateNormal(torch.randn(b, d, generator=g, dtype=torch.float64), scale_tril=tril)


@settings(deadline=None, max_examples=25)
@given(seed=st.integers(0, 10_000), b=st.integers(1, 20), d=st.integers(1, 5))
def test_covariances_match_numpy(seed, b, d):
    q = diagonal(b, d, seed)
    mu, var = q.base_dist.loc.numpy(), q.base_dist.scale.numpy() ** 2
    cov_mu = np.atleast_2d(np.cov(mu, rowvar=False, bias=True))
    np.testing.assert_allclose(batch_covariance(q.base_dist.loc).numpy(), cov_mu, atol=1e-12)
    np.testing.assert_allclose(dip_covariance(q, "i").numpy(), cov_mu, atol=1e-12)
    np.testing.assert_allclose(dip_covariance(q, "ii").numpy(), np.diag(var.mean(0)) + cov_mu, atol=1e-12)
    q = full(b, d, seed)
    cov_mu = np.atleast_2d(np.cov(q.loc.numpy(), rowvar=False, bias=True))
    np.testing.assert_allclose(dip_covariance(q, "ii").numpy(), q.covariance_matrix.numpy().mean(0) + cov_mu, atol=1e-12)


@pytest.mark.parametrize("make", [diagonal, full])
def test_type_ii_is_the_covariance_of_the_aggregate_posterior(make):
    """Law of total covariance: pooled draws from the B posteriors (an equal mixture) have covariance C_II."""
    torch.manual_seed(0)
    q = make(4, 3, seed=1)
    pooled = q.sample((50_000,)).reshape(-1, 3).numpy()
    np.testing.assert_allclose(np.cov(pooled, rowvar=False, bias=True), dip_covariance(q, "ii").numpy(), atol=0.03)


def test_penalty_against_loops_and_zero_at_identity():
    c = np.random.default_rng(0).normal(size=(4, 4))
    off = sum(c[i, j] ** 2 for i in range(4) for j in range(4) if i != j)
    diag = sum((c[i, i] - 1) ** 2 for i in range(4))
    got_off, got_diag = dip_penalty(torch.from_numpy(c))
    assert float(got_off) == pytest.approx(off, rel=1e-12) and float(got_diag) == pytest.approx(diag, rel=1e-12)
    assert [float(v) for v in dip_penalty(torch.eye(3))] == [0.0, 0.0]


def test_off_diagonal_part_is_accurate_near_the_identity_in_float32():
    """C ≈ I with off-diagonal entries ~10⁻⁴ (a converged DIP-VAE): Σ_{i≠j} C_ij² in float32 against float64 loops."""
    g = torch.Generator().manual_seed(0)
    a = 1e-4 * torch.randn(10, 10, generator=g)
    c = torch.eye(10) + (a + a.T) / 2
    c64 = c.double().numpy()
    off = sum(c64[i, j] ** 2 for i in range(10) for j in range(10) if i != j)
    got_off, got_diag = dip_penalty(c)
    assert float(got_off) == pytest.approx(off, rel=1e-5)  # Σ C² − Σ C_ii² gave 0 or −9.5·10⁻⁷ here
    assert float(got_diag) == pytest.approx(sum((c64[i, i] - 1) ** 2 for i in range(10)), rel=1e-5, abs=1e-20)


def test_dip_penalty_regulariser_applies_its_lambdas():
    q = diagonal(16, 3, seed=2)
    z = q.sample()
    sample = PosteriorSample(x=torch.zeros(16, 1), q=q, z=z, log_q=q.log_prob(z), prior=q, kl=torch.zeros(16))
    penalty, terms = DIPPenalty("ii", weight=3.0, lambda_diag=7.0)(None, sample)
    off, diag = dip_penalty(dip_covariance(q, "ii"))
    torch.testing.assert_close(terms["dip_offdiag"], off)
    torch.testing.assert_close(terms["dip_diag"], diag)
    torch.testing.assert_close(penalty, 3.0 * off + 7.0 * diag)
    torch.testing.assert_close(terms["dip"], off + 7.0 / 3.0 * diag)  # reported before the weight
    torch.testing.assert_close(penalty, 3.0 * terms["dip"])


def test_non_gaussian_posterior_uses_codes_and_samples():
    base = diagonal(10, 2, seed=3)
    flow = TransformedDistribution(base, [AffineTransform(1.0, 2.0, event_dim=1)])
    z = flow.sample()
    torch.testing.assert_close(dip_covariance(flow, "i"), 4.0 * batch_covariance(base.base_dist.loc))  # codes 1 + 2μ
    torch.testing.assert_close(dip_covariance(flow, "ii", z), batch_covariance(z))
    with pytest.raises(ConfigError):
        dip_covariance(flow, "ii")
    with pytest.raises(ConfigError, match="dip_type"):
        DIPPenalty("iii")
