"""Categorical codes and products: densities, KLs and samples against torch.distributions and closed forms."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Categorical, Independent, Normal, OneHotCategorical, kl_divergence

from vaekit.distributions import (
    CategoricalPosterior,
    GaussianCategoricalPosterior,
    GumbelSoftmaxCategorical,
    ProductDistribution,
    ProductPrior,
    StandardNormalPrior,
    UniformCategoricalPrior,
    sample_and_kl,
)

B, N, K = 4, 3, 5


@pytest.fixture
def logits() -> torch.Tensor:
    return torch.randn(B, N, K, generator=torch.Generator().manual_seed(0)) * 2


def test_kl_to_uniform_matches_torch_categorical_kl_summed_over_variables(logits):
    q = GumbelSoftmaxCategorical(logits, temperature=0.7)
    p = UniformCategoricalPrior(N, K)()
    expected = kl_divergence(Categorical(logits=logits), Categorical(probs=torch.full((N, K), 1 / K))).sum(-1)
    torch.testing.assert_close(kl_divergence(q, p), expected)
    probs = logits.softmax(-1)  # Σ π (log π + log K) = N log K − H[q]
    torch.testing.assert_close(kl_divergence(q, p), (probs * (probs.log() + math.log(K))).sum((-2, -1)))
    other = torch.randn(N, K)  # any categorical prior, not only the uniform one
    expected = kl_divergence(Categorical(logits=logits), Categorical(logits=other)).sum(-1)
    torch.testing.assert_close(kl_divergence(q, GumbelSoftmaxCategorical(other)), expected)


def test_log_prob_entropy_and_mean_match_torch(logits):
    q = GumbelSoftmaxCategorical(logits)
    index = Categorical(logits=logits).sample((6,))  # (6, B, N)
    code = F.one_hot(index, K).float().flatten(-2)
    torch.testing.assert_close(q.log_prob(code), Categorical(logits=logits).log_prob(index).sum(-1))
    torch.testing.assert_close(q.log_prob(code), Independent(OneHotCategorical(logits=logits), 1).log_prob(code.view(6, B, N, K)))
    torch.testing.assert_close(q.entropy(), Categorical(logits=logits).entropy().sum(-1))
    torch.testing.assert_close(q.mean, logits.softmax(-1).flatten(-2))
    assert q.batch_shape == (B,) and q.event_shape == (N * K,)
    prior = UniformCategoricalPrior(N, K)()
    torch.testing.assert_close(prior.log_prob(code), torch.full((6, B), -N * math.log(K)))


def test_exact_samples_are_one_hot_with_the_class_frequencies(logits):
    torch.manual_seed(0)
    q = GumbelSoftmaxCategorical(logits[:1])
    draws = q.sample((20_000,)).view(20_000, N, K)
    assert set(draws.unique().tolist()) == {0.0, 1.0} and bool((draws.sum(-1) == 1).all())
    torch.testing.assert_close(draws.mean(0), logits[0].softmax(-1), atol=0.015, rtol=0)  # 3.5 σ at 20 000 draws
    uniform = UniformCategoricalPrior(2, 4)().sample((20_000,)).view(20_000, 2, 4)
    torch.testing.assert_close(uniform.mean(0), torch.full((2, 4), 0.25), atol=0.012, rtol=0)


def test_relaxed_sample_is_the_gumbel_softmax_of_the_same_uniforms(logits):
    tau = 0.6
    torch.manual_seed(3)
    y = GumbelSoftmaxCategorical(logits, tau).rsample()
    torch.manual_seed(3)
    u = torch.rand(B, N, K)  # the Gumbel-softmax by hand: y = softmax((log π + g)/τ), g = −log(−log u)
    expected = ((logits.log_softmax(-1) - (-u.log()).log()) / tau).softmax(-1)
    torch.testing.assert_close(y, expected.flatten(-2))


def test_relaxed_samples_approach_one_hot_as_the_temperature_falls(logits):
    torch.manual_seed(0)
    gaps = []
    for tau in (5.0, 1.0, 0.1, 0.01, 0.001):
        y = GumbelSoftmaxCategorical(logits, tau).rsample((500,)).view(500, B, N, K)
        torch.testing.assert_close(y.sum(-1), torch.ones(500, B, N), atol=1e-6 / tau + 1e-6, rtol=0)  # float32 scores of size 1/τ
        gaps.append(float((1 - y.max(-1).values).mean()))
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 1e-3 and gaps[0] > 0.5
    y = GumbelSoftmaxCategorical(logits, 0.0).rsample()  # τ = 0: the exact draw
    assert bool((y.view(B, N, K).sum(-1) == 1).all()) and set(y.unique().tolist()) <= {0.0, 1.0}


def test_argmax_of_relaxed_samples_is_categorical_at_any_temperature(logits):
    torch.manual_seed(1)  # the Gumbel-max trick: argmax_k (log π_k + g_k) ~ Cat(π), whatever τ
    y = GumbelSoftmaxCategorical(logits[:1], 2.0).rsample((20_000,)).view(20_000, N, K)
    frequencies = F.one_hot(y.argmax(-1), K).float().mean(0)
    torch.testing.assert_close(frequencies, logits[0].softmax(-1), atol=0.015, rtol=0)


def test_straight_through_is_one_hot_forward_with_the_relaxed_gradient(logits):
    weights = torch.randn(B, N * K)
    grads, samples = [], []
    for st in (False, True):
        leaf = logits.clone().requires_grad_(True)
        torch.manual_seed(7)
        z = GumbelSoftmaxCategorical(leaf, 0.5, straight_through=st).rsample()
        (z * weights).sum().backward()
        grads.append(leaf.grad)
        samples.append(z.detach())
    relaxed, hard = samples
    torch.testing.assert_close(hard, F.one_hot(relaxed.view(B, N, K).argmax(-1), K).float().flatten(-2), atol=1e-6, rtol=0)
    torch.testing.assert_close(grads[1], grads[0])
    assert float(grads[0].abs().sum()) > 0


def test_the_kl_is_registered_so_sample_and_kl_takes_the_closed_form(logits):
    q, p = GumbelSoftmaxCategorical(logits, 0.5), UniformCategoricalPrior(N, K)()
    z, log_q, kl = sample_and_kl(q, p)
    assert log_q is None and z.shape == (B, N * K)
    torch.testing.assert_close(kl, kl_divergence(Categorical(logits=logits), Categorical(logits=torch.zeros(N, K))).sum(-1))


def test_product_adds_log_densities_entropies_and_kls(logits):
    loc, scale = torch.randn(B, 2), torch.rand(B, 2) + 0.5
    gauss, cat = Independent(Normal(loc, scale), 1), GumbelSoftmaxCategorical(logits, 0.5)
    q = ProductDistribution([gauss, cat])
    p = ProductPrior(StandardNormalPrior(2), UniformCategoricalPrior(N, K))()
    assert q.event_shape == (2 + N * K,) and q.batch_shape == (B,)
    torch.manual_seed(0)
    z = q.sample((3,))
    expected = Normal(loc, scale).log_prob(z[..., :2]).sum(-1) + Categorical(logits=logits).log_prob(z[..., 2:].view(3, B, N, K).argmax(-1)).sum(-1)
    torch.testing.assert_close(q.log_prob(z), expected)
    torch.testing.assert_close(p.log_prob(z), Normal(0.0, 1.0).log_prob(z[..., :2]).sum(-1) - N * math.log(K))
    kl_gauss = 0.5 * (loc**2 + scale**2 - 1 - 2 * scale.log()).sum(-1)
    kl_cat = kl_divergence(Categorical(logits=logits), Categorical(logits=torch.zeros(N, K))).sum(-1)
    torch.testing.assert_close(kl_divergence(q, p), kl_gauss + kl_cat)
    torch.testing.assert_close(q.entropy(), Normal(loc, scale).entropy().sum(-1) + Categorical(logits=logits).entropy().sum(-1))
    torch.testing.assert_close(q.mean, torch.cat([loc, logits.softmax(-1).flatten(-2)], -1))
    z, log_q = q.rsample_and_log_prob((2,))
    torch.testing.assert_close(log_q, Normal(loc, scale).log_prob(z[..., :2]).sum(-1) + cat.log_prob(z[..., 2:]))


def test_heads_give_codes_of_the_right_layout():
    h = torch.randn(6, 8)
    head = CategoricalPosterior(8, N, K)
    q = head(h, 0.5)
    torch.testing.assert_close(q.probs, head.net(h).view(6, N, K).softmax(-1))
    joint = GaussianCategoricalPosterior(8, 2, N, K, straight_through=True)
    q = joint(h, 0.5)
    assert q.sizes == (2, N * K) and q.rsample().shape == (6, 2 + N * K)
    torch.testing.assert_close(q.parts[0].mean, joint.continuous.net(h)[:, :2])
    hard = q.rsample()[:, 2:].view(6, N, K)
    torch.testing.assert_close(hard.sum(-1), torch.ones(6, N))
    with pytest.raises(ValueError):
        CategoricalPosterior(8, N, 1)
    with pytest.raises(ValueError):
        GumbelSoftmaxCategorical(torch.zeros(2, 3), temperature=-1.0)


def test_classes_with_logits_of_minus_infinity_give_torch_values_and_finite_gradients():
    """Masked classes (logit −∞, π = 0): log_prob of exact codes, the entropy and the KL (also
    where both q and p exclude a class) against torch's Categorical; their gradients against
    torch's with the masks at −10⁴ instead (π = 0 all the same: torch's own KL has NaN
    gradients at −∞); log_prob of a relaxed draw is finite with finite gradients."""
    q_mask = torch.tensor([[0, 1, 0, 0, 0], [0, 0, 0, 1, 1], [0] * K], dtype=torch.bool)
    p_mask = torch.tensor([[0, 1, 0, 0, 0], [0, 0, 0, 1, 0], [0] * K], dtype=torch.bool)  # within q's: a finite KL
    q_raw, p_raw = torch.randn(B, N, K, generator=torch.Generator().manual_seed(1)), torch.randn(N, K, generator=torch.Generator().manual_seed(2))
    q_logits, p_logits = q_raw.masked_fill(q_mask, -math.inf).requires_grad_(), p_raw.masked_fill(p_mask, -math.inf).requires_grad_()
    q_far, p_far = q_raw.masked_fill(q_mask, -1e4).requires_grad_(), p_raw.masked_fill(p_mask, -1e4).requires_grad_()
    q, p = GumbelSoftmaxCategorical(q_logits, 0.5), GumbelSoftmaxCategorical(p_logits)
    index = Categorical(logits=q_logits).sample((4,))

    def torch_terms(ql, pl):
        tq, tp = Categorical(logits=ql), Categorical(logits=pl)
        return [tq.log_prob(index).sum(-1), tq.entropy().sum(-1), kl_divergence(tq, tp).sum(-1)]

    ours = [q.log_prob(F.one_hot(index, K).float().flatten(-2)), q.entropy(), kl_divergence(q, p)]
    for a, b, c in zip(ours, torch_terms(q_logits, p_logits), torch_terms(q_far, p_far)):
        torch.testing.assert_close(a, b)
        assert torch.isfinite(a).all()
        g_ours = torch.autograd.grad(a.sum(), (q_logits, p_logits), retain_graph=True, allow_unused=True, materialize_grads=True)
        g_torch = torch.autograd.grad(c.sum(), (q_far, p_far), retain_graph=True, allow_unused=True, materialize_grads=True)
        for x, y in zip(g_ours, g_torch):
            torch.testing.assert_close(x, y)
    impossible = F.one_hot(torch.ones(B, N, dtype=torch.long), K).float().flatten(-2)  # class 1 of variable 0 is masked
    assert bool((q.log_prob(impossible) == -math.inf).all())
    log_q = q.log_prob(q.rsample())
    (grad,) = torch.autograd.grad(log_q.sum(), q_logits)
    assert torch.isfinite(log_q).all() and torch.isfinite(grad).all()
