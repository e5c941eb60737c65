"""Importance-sampled log p(x) against the exact marginal of a linear-Gaussian model."""

import math

import pytest
import torch

import vaekit
from vaekit.errors import ConfigError, DataError
from vaekit.eval import likelihood as likelihood_module
from tests.linear_gaussian import exact_log_marginal, linear_gaussian_model


def test_exact_posterior_gives_exact_log_marginal_for_any_k():
    torch.manual_seed(0)
    model, W, b, sigma = linear_gaussian_model()
    x = torch.randn(20, 5) * 2
    exact = exact_log_marginal(x, W, b, sigma)
    for k in (1, 7):
        torch.testing.assert_close(vaekit.log_likelihood(model, x, num_samples=k), exact, rtol=1e-4, atol=1e-3)


def test_approximate_posterior_converges_to_exact_log_marginal():
    torch.manual_seed(0)
    model, W, b, sigma = linear_gaussian_model(posterior="diagonal", exact=False)
    x = torch.randn(10, 5)
    exact = exact_log_marginal(x, W, b, sigma)
    estimate = vaekit.log_likelihood(model, x, num_samples=5000)
    assert float((estimate - exact).mean()) < 0.02  # a lower bound in expectation; K=5000 makes it tight
    torch.testing.assert_close(estimate, exact, atol=0.1, rtol=0)
    small_k = vaekit.log_likelihood(model, x, num_samples=1)
    assert float(small_k.mean()) < float(estimate.mean())  # the bound tightens with K


def test_chunking_bounds_memory_and_keeps_the_value(monkeypatch):
    torch.manual_seed(0)
    model, W, b, sigma = linear_gaussian_model()
    x = torch.randn(7, 5)
    monkeypatch.setattr(likelihood_module, "MAX_CODES_PER_CHUNK", 10)  # 1 sample per chunk for 7 examples
    calls = []
    original = likelihood_module.log_importance_weights
    monkeypatch.setattr(likelihood_module, "log_importance_weights", lambda m, xb, k, yb: calls.append(k) or original(m, xb, k, yb))
    estimate = vaekit.log_likelihood(model, x, 5, batch_size=7)  # K is the third positional argument
    assert calls == [1, 1, 1, 1, 1]
    torch.testing.assert_close(estimate, exact_log_marginal(x, W, b, sigma), rtol=1e-4, atol=1e-3)


def test_bad_arguments_are_refused():
    model, *_ = linear_gaussian_model()
    with pytest.raises(ConfigError):
        vaekit.log_likelihood(model, torch.zeros(2, 5), num_samples=0)
    with pytest.raises(DataError, match="expects"):
        vaekit.log_likelihood(model, torch.zeros(2, 6))
    broken = torch.zeros(2, 5)
    broken[1, 3] = float("nan")
    for score in (vaekit.log_likelihood, vaekit.evaluate):  # never a NaN result
        with pytest.raises(DataError, match="non-finite"):
            score(model, broken)
    bernoulli = vaekit.create("vae", input_shape=(5,), latent_dim=2, hidden_dims=(8,), likelihood="bernoulli")
    for score in (vaekit.log_likelihood, vaekit.evaluate):  # never a silent wrong answer
        with pytest.raises(DataError, match=r"\[0, 3\] but the bernoulli likelihood"):
            score(bernoulli, torch.tensor([[0.0, 1.0, 3.0, 0.5, 0.2]]))


def test_evaluate_reports_bound_below_log_likelihood_and_active_units():
    torch.manual_seed(0)
    model, W, b, sigma = linear_gaussian_model(posterior="diagonal", exact=False)
    x = (torch.randn(400, 2) @ W.T + b) + sigma * torch.randn(400, 5)
    metrics = vaekit.evaluate(model, x, nll_samples=500)
    assert metrics["elbo"] <= metrics["log_likelihood"] + 1e-3
    assert math.isclose(metrics["elbo"], -(metrics["reconstruction"] + metrics["kl"]), rel_tol=1e-6)
    assert metrics["active_units"] == 2 and len(metrics["kl_per_dimension"]) == 2
    assert metrics["bits_per_dim"] == pytest.approx(-metrics["log_likelihood"] / (5 * math.log(2)))


def test_evaluate_over_several_batches_with_a_flow_posterior():
    torch.manual_seed(0)
    model = vaekit.create("vae", input_shape=(6,), latent_dim=2, hidden_dims=(8,), posterior="radial", flow_steps=2)
    metrics = vaekit.evaluate(model, torch.rand(10, 6), batch_size=4, nll_samples=5)
    assert metrics["kl_per_dimension"] is None  # a flow has no per-coordinate KL
    assert math.isfinite(metrics["elbo"]) and metrics["num_examples"] == 10


def test_evaluate_takes_labels_as_numpy_arrays_or_lists_and_counts_them():
    """A conditional model's labels as a numpy array or a list give the tensor result; a count other than x's is a DataError."""
    import numpy as np

    from vaekit.errors import DataError

    torch.manual_seed(0)
    model = vaekit.create("vae", input_shape=(4,), latent_dim=2, hidden_dims=(8,), num_classes=3, likelihood="gaussian")
    x, y = torch.rand(6, 4), torch.tensor([0, 1, 2, 2, 1, 0])
    results = []
    for labels in (y, y.numpy(), y.tolist()):
        torch.manual_seed(1)
        results.append(vaekit.evaluate(model, x, y=labels, nll_samples=0))
    assert results[0] == results[1] == results[2]
    with pytest.raises(DataError, match="one label or vector per example"):
        vaekit.evaluate(model, x, y=np.array([0, 1]), nll_samples=0)
