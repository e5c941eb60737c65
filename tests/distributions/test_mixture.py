"""Gaussian mixtures over z (vaekit.distributions.mixture): the prior's density, the conjugate update, the joint KL.

Independent computations: brute-force sums of the component densities written out with
numpy/scipy, numerical integration on 1-D and 2-D grids, enumeration of (k, z) draws.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from vaekit.distributions import (
    GaussianMixture,
    GaussianMixturePrior,
    conjugate_mixture_posterior,
    diagonal_mixture_log_prob,
    gaussian_product,
    kl_joint_mixture,
    mean_parameters,
    natural_parameters,
)


def mixture_density_numpy(z: np.ndarray, weights: np.ndarray, loc: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Σ_k w_k Π_d N(z_d; μ_kd, σ_kd²) for z (N, D), by scipy, no logsumexp."""
    dens = np.zeros(len(z))
    for w, m, s in zip(weights, loc, scale):
        dens += w * np.prod(stats.norm.pdf(z, loc=m, scale=s), axis=-1)
    return dens


def random_prior(k: int, d: int, seed: int) -> GaussianMixturePrior:
    torch.manual_seed(seed)
    prior = GaussianMixturePrior(k, d).double()
    with torch.no_grad():
        prior.logits.normal_()
        prior.log_scale.uniform_(-0.7, 0.5)
    return prior


def test_natural_parameters_round_trip():
    loc, var = torch.tensor([0.3, -2.0]), torch.tensor([0.5, 4.0])
    eta1, eta2 = natural_parameters(loc, var)
    torch.testing.assert_close(eta1, loc / var)
    torch.testing.assert_close(eta2, -0.5 / var)
    back = mean_parameters(eta1, eta2)
    torch.testing.assert_close(back[0], loc)
    torch.testing.assert_close(back[1], var)


def test_gaussian_product_matches_the_pointwise_product_on_a_grid():
    """N(z; μ, s) N(z; m, v) = N(m; μ, s + v) N(z; a, b), checked pointwise in 1-D."""
    mu, s, m, v = 0.7, 1.3, -1.1, 0.4
    log_norm, a, b = gaussian_product(torch.tensor([mu]), torch.tensor([s]), torch.tensor([m]), torch.tensor([v]))
    grid = np.linspace(-6, 6, 1001)
    lhs = stats.norm.pdf(grid, mu, math.sqrt(s)) * stats.norm.pdf(grid, m, math.sqrt(v))
    rhs = math.exp(float(log_norm)) * stats.norm.pdf(grid, float(a), math.sqrt(float(b)))
    np.testing.assert_allclose(rhs, lhs, rtol=1e-5, atol=1e-12)
    assert float(log_norm) == pytest.approx(stats.norm.logpdf(m, mu, math.sqrt(s + v)), rel=1e-6)


def test_prior_log_prob_is_the_brute_force_mixture_sum():
    prior = random_prior(5, 3, seed=0)
    p = prior()
    assert isinstance(p, GaussianMixture) and p.batch_shape == () and p.event_shape == (3,)
    z = torch.randn(50, 3, dtype=torch.float64) * 2
    expected = np.log(mixture_density_numpy(z.numpy(), p.probs.detach().numpy(), prior.loc.detach().numpy(), prior.log_scale.exp().detach().numpy()))
    np.testing.assert_allclose(p.log_prob(z).detach().numpy(), expected, rtol=1e-10)
    torch.testing.assert_close(p.probs, torch.softmax(prior.logits, 0))


@pytest.mark.parametrize("log_scale_range", [(-0.7, 0.5), (-3.0, 1.0), (-6.0, -4.0)])
def test_matrix_product_log_prob_equals_torch_mixture_in_float64_with_gradients(log_scale_range):
    """The fast path (float32 inputs, two matrix products) against torch's MixtureSameFamily in
    float64: values and the gradients to z, the weights, the means and the scales, with
    sample dimensions, for broad, medium and very narrow components (λ up to e¹²)."""
    torch.manual_seed(3)
    k, d = 30, 8
    logits = torch.randn(k, requires_grad=True)
    loc = torch.randn(k, d, requires_grad=True)
    log_scale = torch.empty(k, d).uniform_(*log_scale_range).requires_grad_()
    # z near the components (where narrow mixtures are evaluated) and far away
    near = torch.randint(k, (40,))
    z = torch.cat([loc.detach()[near] + log_scale.detach().exp()[near] * torch.randn(40, d), 3 * torch.randn(20, d)])
    z = z.reshape(3, 20, d).requires_grad_()
    fast = diagonal_mixture_log_prob(z, logits, loc, log_scale.exp())
    assert fast.shape == (3, 20) and fast.dtype == torch.float32
    parts = [t.detach().double().requires_grad_() for t in (z, logits, loc, log_scale)]
    exact = MixtureSameFamily(Categorical(logits=parts[1]), Independent(Normal(parts[2], parts[3].exp()), 1)).log_prob(parts[0])
    torch.testing.assert_close(fast.double(), exact, rtol=1e-6, atol=2e-4)
    weights = torch.randn(3, 20, dtype=torch.float64)
    grads_fast = torch.autograd.grad((fast.double() * weights).sum(), (z, logits, loc, log_scale))
    grads_exact = torch.autograd.grad((exact * weights).sum(), parts)
    for g, e in zip(grads_fast, grads_exact):
        torch.testing.assert_close(g.double(), e, rtol=1e-4, atol=1e-3 * float(e.abs().max()))
    # the class takes the fast path exactly when its batch shape is ()
    torch.testing.assert_close(GaussianMixture(logits, loc, log_scale.exp()).log_prob(z), fast)


@pytest.mark.parametrize("d", [1, 2])
def test_prior_density_integrates_to_one(d):
    prior = random_prior(4, d, seed=1)
    with torch.no_grad():
        p = prior()
        axis = torch.linspace(-9, 9, 1201 if d == 1 else 401, dtype=torch.float64)
        grid = axis.unsqueeze(-1) if d == 1 else torch.cartesian_prod(axis, axis)
        cell = float(axis[1] - axis[0]) ** d
        mass = float(p.log_prob(grid).exp().sum()) * cell
    assert mass == pytest.approx(1.0, abs=1e-6)


def test_uniform_weights_are_fixed_and_not_a_parameter():
    prior = GaussianMixturePrior(4, 2, learn_weights=False)
    assert "logits" not in dict(prior.named_parameters()) and "logits" not in prior.state_dict()
    torch.testing.assert_close(prior().probs, torch.full((4,), 0.25))
    learned = GaussianMixturePrior(4, 2)
    assert learned.logits.requires_grad and {"logits", "loc", "log_scale"} == set(learned.state_dict())


def potential(m: torch.Tensor, v: torch.Tensor) -> Independent:
    return Independent(Normal(m, v.sqrt()), 1)


def test_conjugate_update_equals_the_brute_force_posterior_in_one_dimension():
    """p(k) p(z|k) ψ(z): q(k|x) and q(z|x) by numerical integration on a grid against the closed form."""
    prior = random_prior(3, 1, seed=2)
    m = torch.tensor([[0.4], [-2.5], [3.0]], dtype=torch.float64)
    v = torch.tensor([[0.3], [2.0], [0.05]], dtype=torch.float64)
    with torch.no_grad():
        p = prior()
        q = conjugate_mixture_posterior(p, potential(m, v))
    assert q.batch_shape == (3,) and q.event_shape == (1,)
    weights, loc, scale = p.probs.numpy(), prior.loc.detach().numpy()[:, 0], prior.log_scale.exp().detach().numpy()[:, 0]
    grid = np.linspace(-15, 15, 300_001)
    dz = grid[1] - grid[0]
    for b in range(3):
        psi = stats.norm.pdf(grid, m[b, 0].item(), math.sqrt(v[b, 0].item()))
        joint = np.stack([w * stats.norm.pdf(grid, mu, s) * psi for w, mu, s in zip(weights, loc, scale)])  # (K, grid)
        evidence = joint.sum() * dz
        np.testing.assert_allclose(q.probs[b].numpy(), joint.sum(1) * dz / evidence, rtol=1e-7)  # q(k|x)
        density = joint.sum(0) / evidence  # q(z|x) on the grid
        model_density = q.log_prob(torch.from_numpy(grid).unsqueeze(-1).unsqueeze(-1)[::1000]).exp()[:, b].numpy()
        np.testing.assert_allclose(model_density, density[::1000], rtol=1e-6, atol=1e-12)
        for k in range(3):  # q(z|k, x): its mean and variance by moments of the normalised k-th slice
            slice_k = joint[k] / (joint[k].sum() * dz)
            mean = (grid * slice_k).sum() * dz
            var = ((grid - mean) ** 2 * slice_k).sum() * dz
            assert q.loc[b, k, 0].item() == pytest.approx(mean, rel=1e-6, abs=1e-9)
            assert q.scale[b, k, 0].item() ** 2 == pytest.approx(var, rel=1e-6)


def test_conjugate_update_of_a_flat_potential_is_the_prior():
    prior = random_prior(4, 2, seed=3)
    with torch.no_grad():
        p = prior()
        q = conjugate_mixture_posterior(p, potential(torch.randn(5, 2, dtype=torch.float64), torch.full((5, 2), 1e12, dtype=torch.float64)))
    torch.testing.assert_close(q.probs, p.probs.expand(5, 4), rtol=0, atol=1e-9)
    torch.testing.assert_close(q.loc, prior.loc.expand(5, 4, 2), rtol=0, atol=1e-9)


def monte_carlo_kls(q: GaussianMixture, p: GaussianMixture, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw (k, z) ~ q n times; return the per-draw log q(k, z) − log p(k, z) and log q(z) − log p(z), each (n, B),
    and the standard error of the first's mean (B,)."""
    b, d = q.batch_shape[0], q.event_shape[0]
    k = q.mixture_distribution.sample((n,))  # (n, B)
    z_all = q.component_distribution.sample((n,))  # (n, B, K, D)
    z = z_all.gather(2, k[..., None, None].expand(n, b, 1, d)).squeeze(2)
    log_q_kz = q.logits.expand(n, b, -1).gather(-1, k.unsqueeze(-1)).squeeze(-1)
    log_q_kz = log_q_kz + q.component_distribution.log_prob(z.unsqueeze(2)).gather(-1, k.unsqueeze(-1)).squeeze(-1)
    log_p_kz = p.logits[k] + p.component_distribution.log_prob(z.unsqueeze(2)).gather(-1, k.unsqueeze(-1)).squeeze(-1)
    joint = log_q_kz - log_p_kz
    return joint, q.log_prob(z) - p.log_prob(z), joint.std(0) / math.sqrt(n)


def test_joint_kl_equals_a_monte_carlo_estimate_and_the_marginal_kl_for_the_conjugate_posterior():
    prior = random_prior(3, 2, seed=4)
    torch.manual_seed(5)
    with torch.no_grad():
        prior.loc.mul_(0.4)  # overlapping components: q(k|z) is not one-hot
        p = prior()
        q = conjugate_mixture_posterior(p, potential(torch.randn(2, 2, dtype=torch.float64) * 2, torch.rand(2, 2, dtype=torch.float64) + 0.1))
        kl, kl_assignment, kl_code = kl_joint_mixture(q, p)
        joint, marginal, stderr = monte_carlo_kls(q, p, 200_000)
    assert (kl - joint.mean(0)).abs().max() < 4 * stderr.max()
    torch.testing.assert_close(kl, kl_assignment + kl_code)
    torch.testing.assert_close(kl_assignment, (q.probs * (q.probs.log() - p.probs.log())).sum(-1))
    # q(k|z) = p(k|z) for the conjugate posterior: the joint KL is the marginal KL, per draw
    torch.testing.assert_close(joint, marginal)


def test_joint_kl_exceeds_the_marginal_kl_for_a_mixture_that_is_not_the_conjugate_posterior():
    prior = random_prior(3, 2, seed=6)
    torch.manual_seed(7)
    with torch.no_grad():
        prior.loc.mul_(0.4)
        p = prior()
        q = GaussianMixture(torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 3, 2, dtype=torch.float64),
                            torch.rand(2, 3, 2, dtype=torch.float64) + 0.3)
        kl, _, _ = kl_joint_mixture(q, p)
        joint, marginal, stderr = monte_carlo_kls(q, p, 200_000)
    assert (kl - joint.mean(0)).abs().max() < 4 * stderr.max()
    gap = kl - marginal.mean(0)  # E_q(z)[KL(q(k|z) ‖ p(k|z))] > 0
    assert (gap > 0.05).all(), gap


def test_rsample_draws_from_the_mixture_and_carries_gradients_to_the_components():
    torch.manual_seed(6)
    logits = torch.tensor([0.0, 1.0, -1.0], requires_grad=True)
    loc = torch.tensor([[-3.0], [0.0], [4.0]], requires_grad=True)
    scale = torch.tensor([[0.5], [1.0], [0.3]], requires_grad=True)
    q = GaussianMixture(logits, loc, scale)
    z = q.rsample((100_000,))
    assert z.shape == (100_000, 1)
    w = torch.softmax(logits.detach(), 0)
    mean = float((w * loc.detach()[:, 0]).sum())
    var = float((w * (scale.detach()[:, 0] ** 2 + loc.detach()[:, 0] ** 2)).sum()) - mean**2
    assert float(z.detach().mean()) == pytest.approx(mean, abs=0.03)
    assert float(z.detach().var()) == pytest.approx(var, rel=0.02)
    torch.testing.assert_close(q.mean, torch.tensor([mean]))
    z.sum().backward()
    assert loc.grad is not None and (loc.grad > 0).all() and scale.grad is not None
    assert logits.grad is None  # a drawn component carries no gradient to the weights
    # the density of the draws: a histogram against exp(log_prob)
    hist, edges = np.histogram(z.detach().numpy()[:, 0], bins=60, range=(-5, 6), density=True)
    centres = torch.from_numpy((edges[:-1] + edges[1:]) / 2).float().unsqueeze(-1)
    np.testing.assert_allclose(hist, q.log_prob(centres).exp().detach().numpy(), atol=0.02)


def test_floored_logsumexp_is_torch_logsumexp_with_gradients():
    """Values and gradients equal torch's in float64, for spreads of thousands of nats (the terms
    the floor raises), rows with −∞ terms, an all −∞ row, a +∞ and a NaN."""
    from vaekit.distributions.mixture import floored_logsumexp

    torch.manual_seed(0)
    values = torch.cat([torch.randn(4, 50, dtype=torch.float64) * scale for scale in (1.0, 30.0, 300.0, 3000.0)])
    values[0, :10] = -math.inf
    values = values.requires_grad_()
    ours, torch_value = floored_logsumexp(values, -1), torch.logsumexp(values, -1)
    torch.testing.assert_close(ours, torch_value, rtol=1e-12, atol=1e-12)
    weights = torch.randn(16, dtype=torch.float64)
    (g_ours,) = torch.autograd.grad((ours * weights).sum(), values)
    (g_torch,) = torch.autograd.grad((torch_value * weights).sum(), values)
    torch.testing.assert_close(g_ours, g_torch, rtol=1e-10, atol=1e-30)
    special = torch.tensor([[-math.inf, -math.inf], [math.inf, 0.0], [math.nan, 0.0], [5.0, -math.inf]])
    torch.testing.assert_close(floored_logsumexp(special, 1), torch.logsumexp(special, 1), equal_nan=True)
    # along another dimension, in float32
    v32 = values.detach().float().T
    torch.testing.assert_close(floored_logsumexp(v32, 0), torch.logsumexp(v32, 0))


def test_log_prob_of_float32_codes_under_a_float64_mixture_is_float64_as_torch_returns():
    """Mixed dtypes: float64 weights, means and scales (narrow components) with float32 z give
    torch's MixtureSameFamily's float64 value, not one rounded to float32; float32 throughout stays float32."""
    torch.manual_seed(4)
    logits, loc = torch.randn(6, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
    scale = torch.rand(6, 3, dtype=torch.float64) * 0.05 + 0.01
    z = (loc[torch.randint(6, (4, 5))] + 0.03 * torch.randn(4, 5, 3, dtype=torch.float64)).float()
    exact = MixtureSameFamily(Categorical(logits=logits), Independent(Normal(loc, scale), 1)).log_prob(z)
    ours = GaussianMixture(logits, loc, scale).log_prob(z)
    assert ours.dtype == exact.dtype == torch.float64
    torch.testing.assert_close(ours, exact, rtol=1e-12, atol=1e-10)
    assert GaussianMixture(logits.float(), loc.float(), scale.float()).log_prob(z).dtype == torch.float32
