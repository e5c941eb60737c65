"""What every sampler shares (vaekit.samplers.base): the log_prob interface, for the GMM, the flow and the prior."""

import pytest
import torch

import vaekit
from vaekit.samplers import FlowSampler, GaussianMixtureSampler, PriorSampler
from tests.apps.models import projector


@pytest.mark.parametrize("kind", ["gmm", "flow", "prior"])
def test_log_prob_of_no_codes_is_an_empty_float64_vector(kind):
    """log_prob of a (0, D) batch is a (0,) float64 tensor, as for any other N, not a crash inside torch.distributions."""
    x = torch.randn(40, 2, generator=torch.Generator().manual_seed(0))
    if kind == "prior":
        sampler = PriorSampler(vaekit.create("vae", input_shape=(2,), latent_dim=2, hidden_dims=(4,)))
    elif kind == "gmm":
        sampler = GaussianMixtureSampler(2).fit(projector(torch.eye(2)), x)
    else:
        sampler = FlowSampler(transforms=1, hidden_dims=(4,), epochs=1).fit(projector(torch.eye(2)), x)
    out = sampler.log_prob(torch.zeros(0, 2))
    assert out.shape == (0,) and out.dtype == torch.float64
    assert torch.equal(sampler.log_prob(torch.cat([torch.zeros(0, 2), x[:3]])), sampler.log_prob(x[:3]))
