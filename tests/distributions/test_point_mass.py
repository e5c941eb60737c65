"""The point-mass posterior of deterministic autoencoders and the k-sparse head."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vaekit.distributions import POSTERIORS, PointMass, PointMassPosterior, keep_top_k, latent_code


def test_point_mass_moments_shapes_and_samples():
    loc = torch.randn(4, 3, requires_grad=True)
    q = PointMass(loc)
    assert q.batch_shape == (4,) and q.event_shape == (3,)
    assert q.mean is loc and q.mode is loc and torch.equal(q.variance, torch.zeros(4, 3))
    z = q.rsample((5,))
    assert z.shape == (5, 4, 3) and torch.equal(z, loc.detach().expand(5, 4, 3))
    z.sum().backward()  # rsample is the identity in loc: each entry appears in 5 samples
    torch.testing.assert_close(loc.grad, torch.full((4, 3), 5.0))
    assert not q.sample().requires_grad and q.sample().shape == (4, 3)
    assert torch.equal(latent_code(q), loc)


def test_point_mass_log_prob_expand_entropy():
    loc = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    q = PointMass(loc)
    value = torch.tensor([[0.0, 1.0], [2.0, 3.5]])
    assert q.log_prob(value).tolist() == [0.0, float("-inf")]
    wide = q.expand((3, 2))
    assert wide.batch_shape == (3, 2) and wide.rsample().shape == (3, 2, 2)
    assert torch.all(q.entropy() == float("-inf"))
    with pytest.raises(ValueError):
        PointMass(torch.tensor(1.0))


def test_point_posterior_is_registered_and_linear():
    assert POSTERIORS["point"] is PointMassPosterior
    head = PointMassPosterior(6, 3)
    h = torch.randn(5, 6)
    torch.testing.assert_close(head(h).mean, h @ head.net.weight.T + head.net.bias)


@settings(max_examples=40, deadline=None)
@given(b=st.integers(1, 6), d=st.integers(1, 12), data=st.data(), seed=st.integers(0, 10_000))
def test_k_sparse_keeps_exactly_the_k_largest(b, d, data, seed):
    k = data.draw(st.integers(1, d))
    torch.manual_seed(seed)
    h = torch.randn(b, d, dtype=torch.float64, requires_grad=True)
    z = keep_top_k(h, k)
    kept = z != 0
    assert kept.sum(1).tolist() == [k] * b  # exactly k per row (continuous h: no exact zeros, no ties)
    assert torch.equal(z[kept], h[kept])  # kept entries unchanged
    for row in range(b):  # every kept value ≥ every dropped one
        if k < d:
            assert h[row][kept[row]].min() >= h[row][~kept[row]].max()
    weights = torch.randn(b, d, dtype=torch.float64)
    (z * weights).sum().backward()
    torch.testing.assert_close(h.grad, torch.where(kept, weights, torch.zeros_like(weights)))  # gradient only where kept


def test_k_sparse_head_and_bad_k():
    head = PointMassPosterior(8, 5, k=2)
    code = head(torch.randn(30, 8)).mean
    assert ((code != 0).sum(1) == 2).all()
    with pytest.raises(ValueError, match="k must"):
        PointMassPosterior(8, 5, k=6)
    with pytest.raises(ValueError, match="k must"):
        keep_top_k(torch.randn(2, 3), 0)
