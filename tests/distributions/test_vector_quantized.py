"""The VQ-VAE's quantiser and codebook prior against brute-force float64 distances and enumeration."""

import itertools
import math

import torch

from vaekit.distributions import CodebookPrior, GatedPixelCNN
from vaekit.distributions.vector_quantized import nearest_codes


def test_nearest_codes_of_a_codebook_far_from_the_origin_match_float64_distances():
    """float32 codes clustered at distance ~10 from 0 with spread 0.01 (a ReLU encoder's positive
    outputs): the nearest codes against argmin of float64 ‖z − e_j‖², and every code against itself."""
    g = torch.Generator().manual_seed(0)
    center = 10 * torch.randn(8, generator=g)
    codebook = center + 0.01 * torch.randn(64, 8, generator=g)
    z = center + 0.01 * torch.randn(500, 8, generator=g)
    expected = torch.cdist(z.double(), codebook.double()).argmin(1)
    assert torch.equal(nearest_codes(z, codebook), expected)
    assert torch.equal(nearest_codes(codebook, codebook), torch.arange(64))


def test_codebook_prior_gives_every_code_grid_its_probability_by_enumeration():
    """log p(z) of the K^(h·w) grids of codebook vectors (codes far from 0, close to each other)
    against the code prior's log p(k) grid by grid; the probabilities sum to 1."""
    torch.manual_seed(0)
    codes = GatedPixelCNN(3, (1, 2), channels=4, layers=1, kernel_size=3)()
    codebook = 20 + 1e-3 * torch.randn(3, 4)
    prior = CodebookPrior(codes, codebook)
    k = torch.tensor(list(itertools.product(range(3), repeat=2))).view(-1, 1, 2)
    z = codebook[k].permute(0, 3, 1, 2).flatten(1)  # (9, D·h·w), channel-major like QuantizedCode
    with torch.no_grad():
        log_p = prior.log_prob(z)
        torch.testing.assert_close(log_p, codes.log_prob(k))
        assert math.isclose(float(log_p.exp().sum()), 1.0, rel_tol=1e-5)
