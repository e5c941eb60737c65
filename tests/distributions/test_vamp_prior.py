"""The VampPrior p(z) = (1/K) Σ_k q(z|u_k): against a brute-force mixture sum, quadrature, autograd."""

import copy
import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

import vaekit
from vaekit.distributions import DiagonalGaussianPosterior, VampPrior
from vaekit.errors import ConfigError
from vaekit.nn import MLPEncoder


def _prior(k=5, d=2, data_range=(0.0, 1.0), seed=0):
    torch.manual_seed(seed)
    encoder, head = MLPEncoder(6, (8,)), DiagonalGaussianPosterior(8, d)
    prior = VampPrior((6,), k, data_range).bind(encoder, head)
    with torch.no_grad():  # spread the pseudo-inputs so the components differ
        prior.pseudo_inputs.copy_(torch.rand(k, 6))
    return prior, encoder, head


def test_log_prob_is_the_brute_force_mixture_sum():
    prior, encoder, head = _prior(k=7, d=3)
    z = torch.randn(11, 3) * 2
    with torch.no_grad():
        q = head(encoder(prior.pseudo_inputs.clamp(0, 1)))
        mu, sd = q.base_dist.loc.numpy(), q.base_dist.scale.numpy()
        ours = prior().log_prob(z).numpy()
    per_component = np.stack([multivariate_normal(mu[k], np.diag(sd[k] ** 2)).logpdf(z.numpy()) for k in range(7)], axis=1)
    np.testing.assert_allclose(ours, logsumexp(per_component, axis=1) - math.log(7), rtol=1e-5)


def test_density_integrates_to_one_in_two_dimensions():
    prior, _, _ = _prior(k=4, d=2)
    with torch.no_grad():
        comps = prior.components()
        lo = (comps.base_dist.loc - 10 * comps.base_dist.scale).min().item()
        hi = (comps.base_dist.loc + 10 * comps.base_dist.scale).max().item()
        t = torch.linspace(lo, hi, 601, dtype=torch.float64)
        grid = torch.stack(torch.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)
        density = prior().log_prob(grid.float()).double().exp().reshape(601, 601).numpy()
    mass = np.trapezoid(np.trapezoid(density, t.numpy(), axis=1), t.numpy())
    assert mass == pytest.approx(1.0, abs=1e-4)


def test_gradients_reach_the_pseudo_inputs_and_the_encoder():
    prior, encoder, head = _prior()
    (-prior().log_prob(torch.randn(8, 2)).sum()).backward()
    assert prior.pseudo_inputs.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in [*encoder.parameters(), *head.parameters()])


def test_pseudo_inputs_are_clipped_to_the_data_range_or_left_free():
    prior, _, _ = _prior()
    with torch.no_grad():
        prior.pseudo_inputs.mul_(10).sub_(5)
    u = prior.inputs()
    assert u.min() >= 0 and u.max() <= 1 and (u == 0).any() and (u == 1).any()
    free, _, _ = _prior(data_range=None)
    assert torch.equal(free.inputs(), free.pseudo_inputs)
    with pytest.raises(ConfigError, match="bind"):
        VampPrior((6,), 3)()
    with pytest.raises(ConfigError, match="pseudo_inputs"):
        VampPrior((6,), 0)


def test_model_prior_uses_the_current_encoder_and_a_deepcopy_its_own():
    model = vaekit.create("vamp_vae", input_shape=(1, 4, 4), latent_dim=2, arch="mlp", hidden_dims=(8,), pseudo_inputs=3)
    assert "prior_module.pseudo_inputs" in model.state_dict()
    assert not any(k.startswith("prior_module.") and k != "prior_module.pseudo_inputs" for k in model.state_dict())
    expected = model.encode(model.prior_module.inputs()).mean
    torch.testing.assert_close(model.prior().component_distribution.mean, expected)
    twin = copy.deepcopy(model)
    with torch.no_grad():
        twin.posterior.net.bias.add_(1.0)
    torch.testing.assert_close(twin.prior().component_distribution.mean[:, :2], expected + 1.0)
    torch.testing.assert_close(model.prior().component_distribution.mean, expected)
