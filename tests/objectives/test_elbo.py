"""The ELBO: closed-form value on a linear-Gaussian model, warm-up, free bits, gradients."""

import torch
from torch.distributions import MultivariateNormal, kl_divergence

from tests.linear_gaussian import exact_log_marginal, linear_gaussian_model
from vaekit.objectives import ELBO, free_bits_kl, linear_warmup
from vaekit.distributions import DiagonalGaussianPosterior, StandardNormalPrior


def closed_form_elbo(model, x, W, b, sigma):
    """E_q[log N(x; Wz+b, σ²I)] − KL(q‖p): the Gaussian expectation in closed form."""
    q = model.encode(x)
    cov = torch.diag_embed(q.variance) if not isinstance(q, MultivariateNormal) else q.covariance_matrix
    expected_log_lik = (
        torch.distributions.Normal(q.mean @ W.T + b, sigma).log_prob(x).sum(-1)
        - torch.einsum("ij,bjk,ik->b", W, cov, W) / (2 * sigma**2)
    )
    return expected_log_lik - kl_divergence(q, model.prior())


def test_elbo_estimate_matches_closed_form_and_gap_is_posterior_kl():
    torch.manual_seed(0)
    model, W, b, sigma = linear_gaussian_model(posterior="diagonal", exact=False)
    x = torch.randn(4, 5)
    reps = 4000
    xs = x.repeat(reps, 1)
    out = model.loss(xs)
    estimate = out["elbo"]  # mean over reps × 4 examples
    exact = closed_form_elbo(model, x, W, b, sigma)
    assert abs(estimate.item() - exact.mean().item()) < 0.05
    # survey §2.4: log p(x) − L(x) = KL(q(z|x) ‖ p(z|x)) ≥ 0
    cov_post = torch.linalg.inv(torch.eye(2) + W.T @ W / sigma**2)
    mean_post = (x - b) @ (cov_post @ W.T / sigma**2).T
    posterior = MultivariateNormal(mean_post, covariance_matrix=cov_post)
    q = model.encode(x)
    gap = kl_divergence(MultivariateNormal(q.mean, covariance_matrix=torch.diag_embed(q.variance)), posterior)
    torch.testing.assert_close(exact_log_marginal(x, W, b, sigma) - exact, gap, rtol=1e-4, atol=1e-4)
    assert torch.all(gap >= 0)


def test_exact_posterior_makes_the_elbo_tight():
    model, W, b, sigma = linear_gaussian_model(posterior="full_covariance", exact=True)
    x = torch.randn(6, 5)
    torch.testing.assert_close(closed_form_elbo(model, x, W, b, sigma), exact_log_marginal(x, W, b, sigma), rtol=1e-4, atol=1e-3)


def test_loss_terms_and_beta_weighting():
    torch.manual_seed(0)
    model, *_ = linear_gaussian_model(posterior="diagonal", exact=False)
    x = torch.randn(8, 5)
    torch.manual_seed(1)
    out = model.loss(x)
    assert set(out) >= {"loss", "reconstruction", "kl", "elbo"}
    torch.testing.assert_close(out["loss"], out["reconstruction"] + out["kl"])
    model.objective = ELBO(beta=3.0)
    torch.manual_seed(1)
    out3 = model.loss(x)
    torch.testing.assert_close(out3["loss"], out3["reconstruction"] + 3.0 * out3["kl"])
    torch.testing.assert_close(out3["kl"], out["kl"])  # terms are reported before their weight


def test_kl_warmup_schedule():
    assert linear_warmup(0, 100) == 0.0 and linear_warmup(50, 100) == 0.5 and linear_warmup(500, 100) == 1.0
    assert linear_warmup(0, 0) == 1.0
    objective = ELBO(beta=2.0, warmup_steps=10)
    assert objective.kl_weight(5) == 1.0 and objective.kl_weight(20) == 2.0


def test_free_bits_clamps_each_dimension_of_the_batch_mean_kl():
    torch.manual_seed(0)
    q = DiagonalGaussianPosterior(3, 4)(torch.randn(16, 3))
    p = StandardNormalPrior(4)()
    per_dim = kl_divergence(q.base_dist, p.base_dist).mean(0)
    expected = torch.maximum(per_dim, torch.tensor(0.5)).sum()
    torch.testing.assert_close(free_bits_kl(q, p, kl_divergence(q, p), 0.5), expected)
    assert free_bits_kl(q, p, kl_divergence(q, p), 100.0).item() == 400.0  # every dimension below λ: constant, no gradient


def test_a_vae_with_free_bits_minimises_reconstruction_plus_the_clamped_kl():
    import vaekit

    torch.manual_seed(0)
    model = vaekit.create("vae", input_shape=(6,), latent_dim=3, hidden_dims=(8,), likelihood="gaussian", free_bits=0.5)
    x = torch.randn(32, 6)
    torch.manual_seed(1)
    out = model.loss(x)
    q, p = model.encode(x), model.prior()
    per_dim = kl_divergence(q.base_dist, p.base_dist).mean(0)  # E_batch KL_i of each coordinate
    torch.testing.assert_close(out["loss"], out["reconstruction"] + per_dim.clamp_min(0.5).sum())
    torch.testing.assert_close(out["kl"], per_dim.sum())  # the reported KL is the true one, not clamped


def test_gradients_reach_every_parameter():
    model, *_ = linear_gaussian_model(posterior="diagonal", exact=False)
    model.loss(torch.randn(8, 5))["loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
