"""The flow sampler: its density integrates to one, its samples follow it, and it is zuko's flow in code space."""

import pytest
import torch
from torch.distributions import AffineTransform, MultivariateNormal, TransformedDistribution

from vaekit.errors import ConfigError, DataError
from vaekit.samplers import FlowSampler
from tests.apps.models import projector
from tests.samplers.test_gmm import two_blobs


def grid(sampler, n: int, width: float = 8.0):
    """An n×n grid over shift ± width·scale, and the area of one cell."""
    lo, hi = sampler.shift_ - width * sampler.scale_, sampler.shift_ + width * sampler.scale_
    a, b = torch.linspace(float(lo[0]), float(hi[0]), n), torch.linspace(float(lo[1]), float(hi[1]), n)
    points = torch.stack(torch.meshgrid(a, b, indexing="ij"), -1).reshape(-1, 2)
    return points, float((a[1] - a[0]) * (b[1] - b[0]))


@pytest.fixture(scope="module")
def blobs():
    x, _ = two_blobs(600, seed=3)
    return projector(torch.eye(2)), x  # codes = x, decoder mean = code


@pytest.fixture(scope="module")
def maf(blobs):
    model, x = blobs
    return FlowSampler("maf", transforms=2, hidden_dims=(32, 32), epochs=15, batch_size=128, lr=3e-3, seed=0).fit(model, x)


def test_density_integrates_to_one(maf):
    points, area = grid(maf, 300)
    assert float(maf.log_prob(points).exp().sum()) * area == pytest.approx(1.0, abs=0.01)


def test_samples_follow_the_density(maf):
    points, area = grid(maf, 300)
    p = maf.log_prob(points).exp() * area
    z = maf.sample_codes(100_000, seed=1).double()
    torch.testing.assert_close(z.mean(0), (p[:, None] * points.double()).sum(0) / p.sum(), atol=0.05, rtol=0)
    assert float((z[:, 0] < 0).double().mean()) == pytest.approx(float(p[points[:, 0] < 0].sum() / p.sum()), abs=0.01)


def test_log_prob_and_samples_are_zukos_flow_moved_to_code_space(maf):
    q = maf.flow_()
    in_code_space = TransformedDistribution(q, AffineTransform(maf.shift_, maf.scale_, event_dim=1))
    z = torch.randn(20, 2) * 3
    torch.testing.assert_close(maf.log_prob(z).float(), in_code_space.log_prob(z), rtol=1e-5, atol=1e-5)
    with torch.random.fork_rng():
        torch.manual_seed(4)
        expected = maf.shift_ + maf.scale_ * q.sample((10,))
    torch.testing.assert_close(maf.sample_codes(10, seed=4), expected)


def test_fitting_beats_a_single_gaussian_on_held_out_codes(blobs, maf):
    _, x = blobs
    held_out, _ = two_blobs(2000, seed=9)
    gaussian = MultivariateNormal(x.mean(0), torch.cov(x.T))
    assert maf.score(held_out) > float(gaussian.log_prob(held_out).mean()) + 0.3


def test_early_stopping_keeps_the_best_epoch(blobs, maf):
    vals = [h["val"] for h in maf.history_]
    assert 1 <= len(vals) <= 15 and maf.best_epoch_ == 1 + vals.index(max(vals))
    assert maf.val_log_likelihood_ == max(vals)
    _, x = blobs
    held_out = x[torch.randperm(600, generator=torch.Generator().manual_seed(0))[:60]]  # the fit's own split (seed 0)
    assert maf.score(held_out) == pytest.approx(max(vals), abs=1e-4)


def test_fit_is_seeded_and_leaves_the_global_generator_alone(blobs):
    model, x = blobs
    state = torch.get_rng_state()
    a = FlowSampler(transforms=1, hidden_dims=(8,), epochs=2, seed=5).fit(model, x[:200])
    assert torch.equal(torch.get_rng_state(), state)
    b = FlowSampler(transforms=1, hidden_dims=(8,), epochs=2, seed=5).fit(model, x[:200])
    for (name, va), vb in zip(a.flow_.state_dict().items(), b.flow_.state_dict().values()):
        assert torch.equal(va, vb), name


def test_spline_flow_density_integrates_to_one(blobs):
    model, x = blobs
    nsf = FlowSampler("nsf", transforms=1, hidden_dims=(16,), epochs=3, seed=0).fit(model, x)
    points, area = grid(nsf, 200)
    assert float(nsf.log_prob(points).exp().sum()) * area == pytest.approx(1.0, abs=0.01)


def test_bad_hyper_parameters_and_too_few_codes(blobs):
    model, x = blobs
    for bad in (dict(flow="glow"), dict(val_fraction=1.0), dict(lr=0.0), dict(hidden_dims=()), dict(epochs=0), dict(patience=0)):
        with pytest.raises(ConfigError):
            FlowSampler(**bad).fit(model, x)
    with pytest.raises(DataError, match="at least one training code"):
        FlowSampler(epochs=1).fit(model, x[:1])
