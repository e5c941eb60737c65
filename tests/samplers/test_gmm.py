"""The Gaussian-mixture sampler against scikit-learn and against the mixture it was fitted to."""

import numpy as np
import pytest
import torch
from sklearn.mixture import GaussianMixture

import vaekit
from vaekit.errors import ConfigError, DataError
from vaekit.samplers import GaussianMixtureSampler
from vaekit.samplers.gmm import mixture_sample
from tests.apps.models import projector


def identity_model(d: int):
    """A linear AE whose codes are the inputs and whose decoder mean is the code: z = x, E[x|z] = z."""
    return projector(torch.eye(d))


def two_blobs(n: int, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """0.3 N((-4, 0), 0.5 I) + 0.7 N((4, 2), diag(1, 0.25)); returns the points and the true means."""
    g = torch.Generator().manual_seed(seed)
    means = torch.tensor([[-4.0, 0.0], [4.0, 2.0]])
    scales = torch.tensor([[0.5**0.5, 0.5**0.5], [1.0, 0.5]])
    k = (torch.rand(n, generator=g) < 0.7).long()
    return means[k] + scales[k] * torch.randn(n, 2, generator=g), means.numpy()


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_log_prob_equals_sklearn_score_samples(covariance):
    x = torch.randn(400, 3, generator=torch.Generator().manual_seed(1)) @ torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 0.5]])
    model = identity_model(3)
    sampler = GaussianMixtureSampler(4, covariance=covariance, seed=3).fit(model, x)
    codes = model.transform(x).double().numpy()
    reference = GaussianMixture(n_components=4, covariance_type=covariance, random_state=3).fit(codes)
    np.testing.assert_allclose(sampler.means_.numpy(), reference.means_, rtol=1e-6, atol=1e-8)
    probe = np.random.default_rng(0).normal(size=(50, 3)) * 3
    np.testing.assert_allclose(sampler.log_prob(torch.from_numpy(probe)).numpy(), reference.score_samples(probe), rtol=1e-9, atol=1e-9)
    assert sampler.score(x) == pytest.approx(reference.score(codes), rel=1e-6)
    assert sampler.train_log_likelihood_ == pytest.approx(reference.score(codes), rel=1e-6)
    assert sampler.log_prob(torch.from_numpy(probe)).dtype == torch.float64


def test_samples_have_the_mixtures_mean_and_covariance():
    x, _ = two_blobs(600)
    sampler = GaussianMixtureSampler(3, seed=0).fit(identity_model(2), x)
    w, mu, cov = sampler.weights_, sampler.means_, sampler.covariances_
    mean = (w[:, None] * mu).sum(0)
    second = (w[:, None, None] * (cov + mu[:, :, None] * mu[:, None, :])).sum(0)
    covariance = second - torch.outer(mean, mean)
    z = sampler.sample_codes(200_000, seed=1).double()
    torch.testing.assert_close(z.mean(0), mean, atol=0.03, rtol=0)
    torch.testing.assert_close(torch.cov(z.T), covariance, atol=0.06, rtol=0)


def test_samples_recover_a_known_two_component_mixture():
    x, true_means = two_blobs(2000, seed=2)
    sampler = GaussianMixtureSampler(2, seed=0).fit(identity_model(2), x)
    z = sampler.sample(20_000, seed=0)  # decoded: the identity decoder returns the codes
    nearest = torch.cdist(z, torch.from_numpy(true_means)).argmin(1)
    for k in range(2):
        np.testing.assert_allclose(z[nearest == k].mean(0).numpy(), true_means[k], atol=0.08)
    assert (nearest == 1).float().mean().item() == pytest.approx(0.7, abs=0.02)


def test_sample_decodes_sample_codes_and_is_reproducible():
    model = vaekit.create("ae", input_shape=(1, 4, 4), latent_dim=2, hidden_dims=(8,), arch="mlp")
    x = torch.rand(100, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    sampler = GaussianMixtureSampler(2).fit(model, x)
    state = torch.get_rng_state()
    images = sampler.sample(5, seed=7)
    assert torch.equal(torch.get_rng_state(), state)  # a seeded draw leaves the global generator alone
    with torch.no_grad():
        expected = model.decode(sampler.sample_codes(5, seed=7)).mean
    assert images.shape == (5, 1, 4, 4) and torch.equal(images, expected)
    assert torch.equal(sampler.sample(5, seed=7), images) and not torch.equal(sampler.sample(5, seed=8), images)


def test_mixture_sample_draws_components_by_weight():
    weights = torch.tensor([0.2, 0.8], dtype=torch.float64)
    means = torch.tensor([[0.0], [100.0]], dtype=torch.float64)
    scale = torch.ones(2, 1, 1, dtype=torch.float64) * 1e-3
    z = mixture_sample(50_000, weights, means, scale, torch.Generator().manual_seed(0))
    assert (z > 50).double().mean().item() == pytest.approx(0.8, abs=0.01)


def test_bad_input_is_refused():
    model = identity_model(2)
    x, _ = two_blobs(5)
    with pytest.raises(DataError, match="at least 10 codes"):
        GaussianMixtureSampler(10).fit(model, x)
    for bad in (dict(components=0), dict(covariance="spherical2"), dict(components=2.5)):
        with pytest.raises(ConfigError):
            GaussianMixtureSampler(**bad).fit(model, x)
    with pytest.raises(ConfigError, match="not fitted"):
        GaussianMixtureSampler(2).sample(3)
    with pytest.raises(ConfigError, match="y must be None"):
        GaussianMixtureSampler(2).fit(model, x, torch.zeros(5))
    sampler = GaussianMixtureSampler(2).fit(model, x)
    with pytest.raises(DataError, match=r"shape \(N, 2\)"):
        sampler.log_prob(torch.zeros(4, 3))
    with pytest.raises(ConfigError, match="positive number"):
        sampler.sample(0)
    with pytest.raises(DataError):
        sampler.fit(model, torch.zeros(5, 3))


def test_conditional_models_are_refused():
    model = vaekit.create("vae", input_shape=(4,), latent_dim=2, hidden_dims=(8,), num_classes=3)
    with pytest.raises(ConfigError, match="conditional"):
        GaussianMixtureSampler(2).fit(model, torch.rand(20, 4))


def test_a_seed_beyond_scikit_learns_range_is_refused_naming_seed():
    """sklearn's random_state takes [0, 2³² − 1]: a larger seed is a ConfigError about seed, not sklearn's error about random_state."""
    x, _ = two_blobs(20)
    with pytest.raises(ConfigError, match=r"seed must be an integer in \[0, 4294967295\]"):
        GaussianMixtureSampler(2, seed=2**32).fit(identity_model(2), x)
    assert GaussianMixtureSampler(2, seed=2**32 - 1).fit(identity_model(2), x).converged_


def test_a_single_code_is_refused_with_a_data_error_even_for_one_component():
    """scikit-learn needs two codes whatever K is: one code is a DataError saying so, not sklearn's ValueError."""
    with pytest.raises(DataError, match="needs at least 2 codes, got 1"):
        GaussianMixtureSampler(1).fit(identity_model(2), torch.zeros(1, 2))
    sampler = GaussianMixtureSampler(1, covariance="diag").fit(identity_model(1), torch.tensor([[0.0], [1.0]]))
    torch.testing.assert_close(sampler.means_, torch.tensor([[0.5]], dtype=torch.float64))
