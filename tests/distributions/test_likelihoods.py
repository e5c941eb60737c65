"""Likelihood heads and the discretised logistic against torch and brute-force sums."""

import math

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from vaekit.distributions import BernoulliLikelihood, DiscretizedLogistic, DiscretizedLogisticLikelihood, GaussianLikelihood
from vaekit.distributions.discretized_logistic import log1mexp

GRID = torch.linspace(0, 1, 256, dtype=torch.float64)


@settings(max_examples=40, deadline=None)
@given(loc=st.floats(-0.5, 1.5), log_scale=st.floats(-7, 1))
def test_discretized_logistic_probabilities_sum_to_one(loc, log_scale):
    d = DiscretizedLogistic(torch.tensor([loc], dtype=torch.float64), torch.tensor([math.exp(log_scale)], dtype=torch.float64))
    total = d.log_prob(GRID.unsqueeze(-1)).exp().sum()
    assert abs(float(total) - 1.0) < 1e-9


@settings(max_examples=40, deadline=None)
@given(loc=st.floats(0.0, 1.0), log_scale=st.floats(-4, 0), k=st.integers(0, 255))
def test_discretized_logistic_matches_cdf_differences(loc, log_scale, k):
    loc_t, s = torch.tensor(loc, dtype=torch.float64), torch.tensor(math.exp(log_scale), dtype=torch.float64)
    x = torch.tensor(k / 255, dtype=torch.float64)
    upper = torch.sigmoid((x + 0.5 / 255 - loc_t) / s) if k < 255 else torch.tensor(1.0, dtype=torch.float64)
    lower = torch.sigmoid((x - 0.5 / 255 - loc_t) / s) if k > 0 else torch.tensor(0.0, dtype=torch.float64)
    naive = torch.log(upper - lower)
    if (upper - lower) > 1e-6:  # where the naive difference has not cancelled away its precision
        torch.testing.assert_close(DiscretizedLogistic(loc_t, s).log_prob(x), naive, rtol=1e-7, atol=1e-9)


def test_discretized_logistic_stays_finite_in_far_tails():
    d = DiscretizedLogistic(torch.tensor([0.0, 1.0]), torch.tensor([1e-3, 1e-3]))
    lp = d.log_prob(torch.tensor([1.0, 0.0]))  # hundreds of scales away: cancellation in the naive form
    assert torch.isfinite(lp).all() and (lp < -100).all()


def test_discretized_logistic_mean_and_samples():
    torch.manual_seed(0)
    d = DiscretizedLogistic(torch.tensor([0.3, 0.95], dtype=torch.float64), torch.tensor([0.05, 0.1], dtype=torch.float64))
    probs = d.log_prob(GRID.unsqueeze(-1)).exp()  # (256, 2)
    torch.testing.assert_close(d.mean, (probs * GRID.unsqueeze(-1)).sum(0), rtol=1e-9, atol=1e-9)
    samples = d.sample((20000,))
    assert torch.all((samples * 255 - (samples * 255).round()).abs() < 1e-6)  # on the grid
    torch.testing.assert_close(samples.mean(0), d.mean, atol=3e-3, rtol=0)


def test_log1mexp_is_accurate():
    d = torch.tensor([1e-10, 1e-3, 0.5, 1.0, 30.0], dtype=torch.float64)
    mpmath = __import__("mpmath")
    mpmath.mp.dps = 50
    reference = torch.tensor([float(mpmath.log(1 - mpmath.exp(-mpmath.mpf(v)))) for v in d.tolist()], dtype=torch.float64)
    torch.testing.assert_close(log1mexp(d), reference, rtol=1e-12, atol=0)


def test_bernoulli_head_is_binary_cross_entropy():
    torch.manual_seed(0)
    logits, x = torch.randn(4, 1, 3, 3), torch.rand(4, 1, 3, 3).round()
    px = BernoulliLikelihood((1, 3, 3))(logits.flatten(1))
    expected = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    torch.testing.assert_close(px.log_prob(x), expected)
    assert px.event_shape == (1, 3, 3) and px.batch_shape == (4,)


def test_gaussian_head_fixed_and_learned_scale():
    torch.manual_seed(0)
    raw, x = torch.randn(3, 5), torch.randn(3, 5)
    fixed = GaussianLikelihood((5,), scale=0.3)
    expected = torch.distributions.Normal(raw, 0.3).log_prob(x).sum(-1)
    torch.testing.assert_close(fixed(raw).log_prob(x), expected)
    assert not list(fixed.parameters())
    learned = GaussianLikelihood((5,), scale="learned", init_scale=0.2)
    torch.testing.assert_close(learned(raw).log_prob(x), torch.distributions.Normal(raw, 0.2).log_prob(x).sum(-1))
    learned(raw).log_prob(x).sum().backward()
    assert learned.log_scale.grad is not None


def test_logistic_head_splits_location_and_scale():
    raw = torch.zeros(2, 2 * 4)
    raw[:, 4:] = math.log(0.1)
    px = DiscretizedLogisticLikelihood((4,))(raw)
    assert px.event_shape == (4,)
    torch.testing.assert_close(px.base_dist.scale, torch.full((2, 4), 0.1))


def test_discretized_logistic_mode_is_the_most_probable_grid_value_for_broad_and_narrow_scales():
    """The mode against the argmax of the 256 probabilities, for locations inside and outside
    [0, 1] and scales from 0.003 to 7, where the end bins (reaching to ∓∞) can hold the most mass."""
    torch.manual_seed(0)
    loc = torch.rand(50, 3, dtype=torch.float64) * 1.4 - 0.2
    scale = (torch.rand(50, 3, dtype=torch.float64) * 8 - 6).exp()
    d = DiscretizedLogistic(loc, scale)
    probabilities = d.log_prob(GRID.view(256, 1, 1))
    torch.testing.assert_close(d.mode, GRID[probabilities.argmax(0)], rtol=0, atol=1e-12)
    assert float(DiscretizedLogistic(torch.tensor(0.3), torch.tensor(1.0)).mode) == 0.0  # P(0) = 0.43, P(0.3) = 0.002
    two = DiscretizedLogistic(torch.tensor([0.3, 0.7]), torch.tensor([1.0, 1.0]), num_bins=2)
    torch.testing.assert_close(two.mode, torch.tensor([0.0, 1.0]))


def test_discretized_logistic_gradients_stay_finite_and_match_float64_for_very_broad_scales():
    """log1mexp(2h/s) for s up to 10⁸ (2h/s below float32's resolution of 1): the gradients to μ
    and s in float32 against float64 autograd, and log1mexp's derivative against 1/(e^d − 1)."""
    grads = {}
    for dtype in (torch.float32, torch.float64):
        loc = torch.tensor([0.3, 0.3, 0.3], dtype=dtype, requires_grad=True)
        scale = torch.tensor([1e5, 1e6, 1e8], dtype=dtype, requires_grad=True)
        DiscretizedLogistic(loc, scale).log_prob(torch.tensor([0.5, 0.0, 1.0], dtype=dtype)).sum().backward()
        grads[dtype] = (loc.grad, scale.grad)
    for g32, g64 in zip(grads[torch.float32], grads[torch.float64]):
        assert torch.isfinite(g32).all()
        torch.testing.assert_close(g32.double(), g64, rtol=1e-4, atol=1e-12)
    d = torch.tensor([1e-20, 1e-9, 0.5, 2.0, 50.0], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(log1mexp(d).sum(), d)
    torch.testing.assert_close(grad, 1 / torch.expm1(d.detach()), rtol=1e-12, atol=0)
