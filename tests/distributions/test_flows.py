"""Flow posteriors (survey §2.11–2.12) against autograd Jacobians and brute-force changes of variables.

The reference maps below are written from the papers' formulas (Rezende & Mohamed 2015,
§4.1 and Appendix A; Kingma et al. 2016, eqs. 10–14), not from vaekit's code; the log-dets
they are checked against come from ``torch.autograd.functional.jacobian``.
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.autograd.functional import jacobian
from torch.distributions import Independent, Normal, kl_divergence

from vaekit.distributions import (
    POSTERIORS,
    FlowDistribution,
    IAFPosterior,
    IAFTransform,
    PlanarFlowPosterior,
    PlanarTransform,
    RadialFlowPosterior,
    RadialTransform,
    latent_code,
    sample_and_kl,
    sample_with_log_prob,
)
from vaekit.distributions.flows import MADE, ReverseTransform
from vaekit.errors import ConfigError

seeds = st.integers(min_value=0, max_value=10_000)
dims = st.integers(min_value=2, max_value=5)
FEW = settings(max_examples=20, deadline=None)


# -- reference maps, one example at a time (z: (D,)) -------------------------------------------
def planar_ref(u, w, b):
    wu = w @ u
    u_hat = u + (-1 + torch.log1p(torch.exp(wu)) - wu) * w / (w @ w)  # Appendix A, m(a) = −1 + log(1 + eᵃ)
    return lambda z: z + u_hat * torch.tanh(w @ z + b), u_hat


def radial_constraint(alpha_raw, beta_raw):
    """α = log(1 + e^α') > 0, β = −α + log(1 + e^β') ≥ −α (Appendix A)."""
    alpha = torch.log1p(torch.exp(alpha_raw))
    return alpha, -alpha + torch.log1p(torch.exp(beta_raw))


def radial_ref(z0, alpha, beta):
    return lambda z: z + beta / (alpha + torch.linalg.norm(z - z0)) * (z - z0)


def iaf_ref(made, context):
    def f(z):
        m, s = made(z, context)
        sigma = 1 / (1 + torch.exp(-s))
        return sigma * z + (1 - sigma) * m

    return f


def example_map(t, i):
    """The reference map of transform ``t`` for example ``i`` of its batch."""
    if isinstance(t, PlanarTransform):
        return planar_ref(t.u[i], t.w[i], t.b[i])[0]
    if isinstance(t, RadialTransform):
        return radial_ref(t.z0[i], t.alpha[i], t.beta[i])
    if isinstance(t, IAFTransform):
        return iaf_ref(t.made, None if t.context is None else t.context[i])
    if isinstance(t, ReverseTransform):
        return lambda z: z.flip(-1)
    raise AssertionError(type(t))


def log_abs_det(f, z):
    sign, logdet = torch.linalg.slogdet(jacobian(f, z))
    return sign, logdet


def random_head(kind, d, steps, seed, features=6):
    torch.manual_seed(seed)
    options = {"hidden_dims": (12, 12), "context_dim": 3} if kind == "iaf" else {}
    head = POSTERIORS[kind](features, d, flow_steps=steps, **options).double()
    with torch.no_grad():  # larger than the default init, so every step bends space noticeably
        head.net.weight.mul_(3.0)
    return head, torch.randn(3, features, dtype=torch.float64)


# -- log-det of one step against autograd ------------------------------------------------------
@FEW
@given(d=dims, seed=seeds, violate=st.booleans())
def test_planar_log_det_matches_autograd_and_is_positive(d, seed, violate):
    g = torch.Generator().manual_seed(seed)
    u, w = torch.randn(2, d, generator=g, dtype=torch.float64)
    b = torch.randn((), generator=g, dtype=torch.float64)
    if violate:  # uᵀw = −(1 + c) < −1: the unconstrained map would fold space
        u = u - (u @ w) * w / (w @ w) - (1 + 3 * torch.rand((), generator=g, dtype=torch.float64)) * w / (w @ w)
        assert u @ w < -1
    t = PlanarTransform(u, w, b)
    f, u_hat = planar_ref(u, w, b)
    assert u_hat @ w >= -1
    torch.testing.assert_close(t.u_hat, u_hat)
    for _ in range(4):
        z = 2 * torch.randn(d, generator=g, dtype=torch.float64)
        y = t(z)
        torch.testing.assert_close(y, f(z))
        sign, expected = log_abs_det(f, z)
        assert sign > 0  # invertible: det > 0 everywhere
        torch.testing.assert_close(t.log_abs_det_jacobian(z, y), expected, rtol=1e-8, atol=1e-8)
        torch.testing.assert_close(t.log_abs_det_jacobian(z.clone(), y.clone()), expected, rtol=1e-8, atol=1e-8)  # uncached


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_planar_step_with_w_zero_is_a_translation_with_log_det_zero(dtype):
    """w = 0 (a zero-initialised head): f(z) = z + u tanh(b), log-det against autograd's (0), and log q
    of a zero-initialised planar posterior against its base q_0 (every step is the identity)."""
    u, z = torch.tensor([0.5, -1.0], dtype=dtype), torch.tensor([0.2, 0.1], dtype=dtype)
    t = PlanarTransform(u, torch.zeros(2, dtype=dtype), torch.tensor(0.3, dtype=dtype))
    y = t(z)
    torch.testing.assert_close(y, z + u * math.tanh(0.3))
    torch.testing.assert_close(t.log_abs_det_jacobian(z, y), log_abs_det(t, z)[1], atol=1e-6, rtol=0)
    head = PlanarFlowPosterior(4, 3, flow_steps=2).to(dtype)
    torch.nn.init.zeros_(head.net.weight), torch.nn.init.zeros_(head.net.bias)
    q = head(torch.randn(2, 4, dtype=dtype))
    z, log_q = q.rsample_and_log_prob((5,))
    torch.testing.assert_close(log_q, q.base_dist.log_prob(z))


@FEW
@given(d=dims, seed=seeds, edge=st.booleans())
def test_radial_log_det_matches_autograd_and_is_positive(d, seed, edge):
    g = torch.Generator().manual_seed(seed)
    z0 = torch.randn(d, generator=g, dtype=torch.float64)
    alpha_raw = torch.randn((), generator=g, dtype=torch.float64)
    beta_raw = torch.tensor(-12.0 if edge else 3 * torch.randn((), generator=g).item(), dtype=torch.float64)  # edge: β ≈ −α
    t = RadialTransform(z0, alpha_raw, beta_raw)
    alpha, beta = radial_constraint(alpha_raw, beta_raw)
    assert alpha > 0 and beta >= -alpha
    torch.testing.assert_close((t.alpha, t.beta), (alpha, beta))
    f = radial_ref(z0, alpha, beta)
    for scale in (0.05, 1.0, 3.0):
        z = z0 + scale * torch.randn(d, generator=g, dtype=torch.float64)
        y = t(z)
        torch.testing.assert_close(y, f(z))
        sign, expected = log_abs_det(f, z)
        assert sign > 0
        torch.testing.assert_close(t.log_abs_det_jacobian(z, y), expected, rtol=1e-7, atol=1e-7)


@FEW
@given(d=st.integers(1, 5), seed=seeds, widths=st.lists(st.integers(1, 12), min_size=0, max_size=2), context_dim=st.integers(0, 3))
def test_iaf_step_is_triangular_with_log_det_sum_log_sigma(d, seed, widths, context_dim):
    torch.manual_seed(seed)
    made = MADE(d, context_dim, tuple(widths)).double()
    with torch.no_grad():
        for p in made.parameters():
            p.normal_()
    context = torch.randn(context_dim, dtype=torch.float64) if context_dim else None
    t = IAFTransform(made, context)
    z = torch.randn(d, dtype=torch.float64)
    # the MADE is autoregressive: ∂(m_i, s_i)/∂z_j = 0 for j ≥ i
    for out in jacobian(lambda v: torch.cat(made(v, context)), z).view(2, d, d):
        assert torch.all(out.triu() == 0)
    # so the step's Jacobian is lower triangular with diagonal σ = sigmoid(s)
    J = jacobian(iaf_ref(made, context), z)
    assert torch.all(J.triu(1) == 0)
    sigma = torch.sigmoid(made(z, context)[1])
    torch.testing.assert_close(J.diagonal(), sigma)
    y = t(z)
    torch.testing.assert_close(y, iaf_ref(made, context)(z))
    torch.testing.assert_close(t.log_abs_det_jacobian(z, y), torch.linalg.slogdet(J)[1], rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(t.log_abs_det_jacobian(z, y), sigma.log().sum(), rtol=1e-8, atol=1e-8)
    # and the inverse (D MADE passes) is exact: it maps back onto y, and onto z up to the
    # conditioning of the step (each coordinate is divided by σ_i)
    x = t.inv(y.clone())
    torch.testing.assert_close(t(x), y, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(x, z, rtol=0, atol=1e-12 / sigma.min().item() ** d)


def test_made_forget_bias_starts_sigma_near_one():
    made = MADE(4, 2, (16,))
    with torch.no_grad():
        made.output.weight.zero_()
    _, s = made(torch.randn(5, 4), torch.randn(5, 2))
    torch.testing.assert_close(torch.sigmoid(s), torch.full((5, 4), torch.sigmoid(torch.tensor(2.0)).item()))


# -- log q of a whole posterior against a brute-force change of variables -----------------------
@pytest.mark.parametrize("kind", ["planar", "radial", "iaf"])
@settings(max_examples=8, deadline=None)
@given(d=st.integers(1, 4), steps=st.integers(1, 3), seed=seeds)
def test_rsample_and_log_prob_is_the_change_of_variables(kind, d, steps, seed):
    head, h = random_head(kind, d, steps, seed)
    q = head(h)
    assert isinstance(q, FlowDistribution) and q.batch_shape == (3,) and q.event_shape == (d,)
    torch.manual_seed(seed)
    z, log_q = q.rsample_and_log_prob((2,))
    assert z.shape == (2, 3, d) and log_q.shape == (2, 3)
    torch.manual_seed(seed)
    z0 = q.base_dist.rsample((2,))  # the same base draw
    mu, sigma = q.base_dist.base_dist.loc, q.base_dist.base_dist.scale
    base = (-0.5 * ((z0 - mu) / sigma) ** 2 - sigma.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
    for s in range(2):
        for i in range(3):
            maps = [example_map(t, i) for t in q.transforms]

            def flow(v, maps=maps):
                for f in maps:
                    v = f(v)
                return v

            torch.testing.assert_close(z[s, i], flow(z0[s, i]))
            sign, logdet = log_abs_det(flow, z0[s, i])  # Jacobian of the whole composition (chain rule by autograd)
            assert kind == "iaf" or sign > 0  # (IAF's order reversals are permutations, det ±1)
            torch.testing.assert_close(log_q[s, i], base[s, i] - logdet, rtol=1e-7, atol=1e-7)
    # the generic helper (used by every objective) takes this path too
    torch.manual_seed(seed)
    z2, log_q2 = sample_with_log_prob(q, (2,))
    torch.testing.assert_close(z2, z)
    torch.testing.assert_close(log_q2, log_q)


# -- the density integrates to one (D = 2, brute force on a grid) --------------------------------
def shoelace(corners):
    """Areas of quadrilaterals given their corners in order, corners: (4, N, 2)."""
    x, y = corners[..., 0], corners[..., 1]
    return 0.5 * (x * y.roll(-1, 0) - x.roll(-1, 0) * y).sum(0).abs()


@pytest.mark.parametrize("kind", ["planar", "radial"])
def test_density_integrates_to_one_by_pushing_a_mesh(kind):
    """Σ q_K(f(c)) · area(f(cell)) over a mesh of the base space ≈ 1: the log-det must match the
    true area change of the map, measured on the pushed mesh (not from the Jacobian)."""
    torch.manual_seed(0)
    d, n = 2, 300
    mu, sigma = torch.tensor([[0.3, -0.2]], dtype=torch.float64), torch.tensor([[0.8, 1.2]], dtype=torch.float64)
    base = Independent(Normal(mu, sigma), 1)
    T = lambda *v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    if kind == "planar":
        ts = [PlanarTransform(T([2.0, -1.0]), T([1.5, 0.5]), T(0.3)), PlanarTransform(T([-3.0, 0.2]), T([1.0, 2.0]), T(-0.4))]
    else:
        ts = [RadialTransform(T([0.5, 0.0]), T(0.2), T(2.0)), RadialTransform(T([-0.5, 0.5]), T(-0.5), T(-3.0))]
    q = FlowDistribution(base, ts)
    lo, hi = mu[0] - 7 * sigma[0], mu[0] + 7 * sigma[0]
    gx, gy = (torch.linspace(lo[k], hi[k], n + 1, dtype=torch.float64) for k in range(2))
    nodes = torch.stack(torch.meshgrid(gx, gy, indexing="ij"), -1).reshape(-1, 1, d)
    pushed = nodes
    for t in q.transforms:
        pushed = t(pushed)
    pushed = pushed.reshape(n + 1, n + 1, d)
    corners = torch.stack([pushed[:-1, :-1], pushed[1:, :-1], pushed[1:, 1:], pushed[:-1, 1:]]).reshape(4, -1, d)
    centres = (nodes.reshape(n + 1, n + 1, d)[:-1, :-1] + (hi - lo) / (2 * n)).reshape(-1, 1, d)
    _, log_q = q.push_forward(centres)
    base_density = base.log_prob(centres).squeeze(-1).exp()
    log_det_total = base_density.log() - log_q.squeeze(-1)
    cell = ((hi - lo) / n).prod()
    assert (base_density * log_det_total.abs() * cell).sum() > 0.2  # E|log det| large: a wrong log-det would show
    mass = (log_q.squeeze(-1).exp() * shoelace(corners)).sum()
    assert abs(mass.item() - 1.0) < 5e-3  # midpoint-rule error O(h²): 2.5e-3 for planar at n = 300
    ignored_log_det = (base_density * shoelace(corners)).sum()
    assert abs(ignored_log_det.item() - 1.0) > 0.02  # sanity: the check has teeth


def test_iaf_density_integrates_to_one_on_a_grid():
    """IAF has an exact inverse, so log_prob is evaluated directly on a grid of z_K."""
    torch.manual_seed(1)
    head = IAFPosterior(4, 2, flow_steps=3, hidden_dims=(16,), context_dim=2).double()
    with torch.no_grad():
        for made in head.steps:
            made.output.weight.mul_(4.0)
    q = head(torch.randn(1, 4, dtype=torch.float64))
    samples, _ = q.rsample_and_log_prob((20_000,))
    lo, hi = samples.amin((0, 1)) - 2, samples.amax((0, 1)) + 2
    n = 250
    gx, gy = (torch.linspace(lo[k], hi[k], n, dtype=torch.float64) for k in range(2))
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="ij"), -1).reshape(-1, 1, 2)
    with torch.no_grad():
        density = q.log_prob(grid).exp()
    cell = (gx[1] - gx[0]) * (gy[1] - gy[0])
    assert abs((density.sum() * cell).item() - 1.0) < 5e-3


# -- log_prob, inverses and codes -------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["planar", "radial"])
def test_log_prob_without_inverse(kind):
    head, h = random_head(kind, 3, 2, seed=3)
    q = head(h)
    z, log_q = q.rsample_and_log_prob()
    torch.testing.assert_close(q.log_prob(z), log_q)  # the sample just drawn: exact through torch's cache
    with pytest.raises(NotImplementedError, match="no closed-form inverse.*rsample_and_log_prob"):
        q.log_prob(z.clone())
    z = q.rsample()
    assert z.shape == (3, 3)


def test_iaf_log_prob_is_exact_for_any_point():
    head, h = random_head("iaf", 4, 3, seed=5)
    q = head(h)
    z, log_q = q.rsample_and_log_prob((2,))
    torch.testing.assert_close(q.log_prob(z.detach().clone()), log_q, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("kind", ["planar", "radial", "iaf"])
def test_latent_code_pushes_the_base_mean(kind):
    head, h = random_head(kind, 3, 2, seed=7)
    q = head(h)
    code = latent_code(q)
    assert code.shape == (3, 3)
    mu = q.base_dist.mean
    for i in range(3):
        v = mu[i]
        for t in q.transforms:
            v = example_map(t, i)(v)
        torch.testing.assert_close(code[i], v)


@pytest.mark.parametrize("cls", [PlanarFlowPosterior, RadialFlowPosterior, IAFPosterior])
def test_heads_reject_bad_flow_steps(cls):
    for bad in (0, -1, 1.5, "two"):
        with pytest.raises(ConfigError, match="flow_steps"):
            cls(4, 2, flow_steps=bad)
    assert len(cls(4, 2, flow_steps=3)(torch.randn(2, 4)).transforms) == (5 if cls is IAFPosterior else 3)


def test_transforms_with_cache_and_reverse():
    t = PlanarTransform(torch.randn(2, 3), torch.randn(2, 3), torch.randn(2))
    t0 = t.with_cache(0)
    z = torch.randn(4, 2, 3)
    torch.testing.assert_close(t0(z), t(z))
    with pytest.raises(NotImplementedError):
        t0.inv(t0(z))
    r = ReverseTransform()
    torch.testing.assert_close(r.inv(r(z)), z)
    assert r.log_abs_det_jacobian(z, r(z)).shape == (4, 2)


# -- the flow's KL estimate --------------------------------------------------------------------
def test_flow_kl_is_exact_for_a_flow_that_keeps_the_prior():
    base = Independent(Normal(torch.randn(4, 3), torch.rand(4, 3) + 0.2), 1)
    prior = Independent(Normal(torch.zeros(3), torch.ones(3)), 1)
    q = FlowDistribution(base, [ReverseTransform()])  # log|det| = 0 and p(z) = p(flip z): KL(q ‖ p) = KL(q_0 ‖ p)
    for _ in range(3):  # every draw gives the exact value: no Monte-Carlo noise left
        z, log_q, kl = sample_and_kl(q, prior)
        torch.testing.assert_close(kl, kl_divergence(base, prior))
        torch.testing.assert_close(log_q, q.log_prob(z))
    z, log_q, kl = sample_and_kl(base, prior)  # a closed form: log q is not evaluated
    assert log_q is None and torch.equal(kl, kl_divergence(base, prior)) and z.shape == (4, 3)


@pytest.mark.parametrize("kind", ["planar", "radial"])
def test_flow_kl_estimate_is_unbiased_and_less_noisy_than_the_plain_one(kind):
    head, _ = random_head(kind, 3, 2, seed=4)
    prior = Independent(Normal(torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)), 1)
    h = torch.randn(1, 6, dtype=torch.float64).expand(40_000, 6)  # one example, 40 000 draws
    torch.manual_seed(0)
    with torch.no_grad():
        q = head(h)
        _, _, kl = sample_and_kl(q, prior)
        z, log_q = q.rsample_and_log_prob()
        plain = log_q - prior.log_prob(z)
    stderr = float((plain.var() / len(plain) + kl.var() / len(kl)).sqrt())
    assert abs(float(kl.mean() - plain.mean())) < 4 * stderr  # the same expectation, KL(q_K ‖ p)
    assert kl.var() < plain.var()


def test_iaf_kl_is_the_plain_estimate_because_its_gate_can_discard_z0():
    head, _ = random_head("iaf", 3, 2, seed=4)
    prior = Independent(Normal(torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)), 1)
    h = torch.randn(1, 6, dtype=torch.float64).expand(40_000, 6)
    torch.manual_seed(0)
    with torch.no_grad():
        q = head(h)
        z, log_q, kl = sample_and_kl(q, prior)
        torch.testing.assert_close(kl, log_q - prior.log_prob(z))  # log q(z_K|x) − log p(z_K), nothing split
        # a wide base (σ_0 = 5) gated out (σ_k = sigmoid(−8)): z_K hardly depends on z_0, and
        # splitting off KL(q_0 ‖ p) leaves the noise of log p(z_0), which grows as σ_0²
        head.net.bias[3:6] = math.log(5.0)
        for made in head.steps:
            made.output.bias[3:] = -8.0
        gated = head(h)
        split = FlowDistribution(gated.base_dist, list(gated.transforms), split_base_kl=True)
        _, _, plain_kl = sample_and_kl(gated, prior)
        _, _, split_kl = sample_and_kl(split, prior)
    stderr = float((plain_kl.var() / len(plain_kl) + split_kl.var() / len(split_kl)).sqrt())
    assert abs(float(split_kl.mean() - plain_kl.mean())) < 4 * stderr  # both unbiased
    assert split_kl.var() > 10 * plain_kl.var()
