"""No NaN from a posterior for finite encoder outputs, however large: the log-variance clamp and stable flows.

Extreme encoder features (±1e18, 1e6) and scaled head weights must give finite samples and
finite log q(z|x) for every family; the stable planar and radial formulas are checked against
the papers' formulas evaluated in float64 (where the large products still fit), and the clamp
against the unclamped head inside its range.
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import vaekit
from vaekit.distributions import POSTERIORS, PlanarTransform, RadialTransform, latent_code, sample_with_log_prob
from vaekit.distributions.posteriors import DEFAULT_LOGVAR_CLAMP
from vaekit.errors import ConfigError

FAMILIES = ["diagonal", "full_covariance", "planar", "radial", "iaf"]
FLOWS = {"planar", "radial", "iaf"}
F, D = 12, 4


def head(family: str, weight_scale: float = 1.0, seed: int = 0, **options) -> torch.nn.Module:
    torch.manual_seed(seed)
    extra = {"flow_steps": 2} if family in FLOWS else {}
    if family == "iaf":
        extra.update(hidden_dims=(16,), context_dim=4)
    module = POSTERIORS[family](F, D, **extra, **options)
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(weight_scale)
        if family == "full_covariance":  # correlations on, as after training
            module.net.weight[2 * D :].normal_(0, weight_scale)
    return module


def assert_finite_log_densities(q, family):
    """Samples and their log q finite; ``log_prob`` of other points never NaN.

    ``log_prob`` of a point not just drawn solves z − μ = Lε (full covariance) or inverts the
    steps (IAF): with scales at opposite ends of the clamp the solve amplifies the float32
    rounding of z by up to (e¹⁰/e⁻¹⁵)ᴰ⁻¹, the density changes by more than the float range
    within one ulp of z, and −inf is the float answer; a diagonal Gaussian has no solve.
    """
    z, log_q = sample_with_log_prob(q, (3,))
    assert torch.isfinite(z).all() and torch.isfinite(log_q).all(), (z, log_q)
    if family in ("planar", "radial"):  # no inverse: log_prob exists for the sample just drawn (the cache)
        torch.testing.assert_close(q.log_prob(z), log_q)
        return
    for point in (z.clone(), latent_code(q)):
        value = q.log_prob(point)
        assert not torch.isnan(value).any() and (value < math.inf).all()
        if family == "diagonal":
            assert torch.isfinite(value).all()


@pytest.mark.parametrize("weight_scale", [1.0, 1e3])
@pytest.mark.parametrize("feature_scale", [1e6, 1e18, -1e18])
@pytest.mark.parametrize("family", FAMILIES)
def test_extreme_encoder_features_give_finite_log_densities(family, feature_scale, weight_scale):
    torch.manual_seed(1)
    h = feature_scale * (torch.rand(5, F) + 0.5)  # every feature huge and of one sign
    assert_finite_log_densities(head(family, weight_scale)(h), family)


@settings(max_examples=15, deadline=None)
@given(data=st.data(), family=st.sampled_from(FAMILIES))
def test_any_finite_head_output_gives_finite_log_densities(data, family):
    """The head's raw outputs (μ, log σ, correlations, flow parameters) set directly, up to ±1e20."""
    module = head(family)
    size = module.net.out_features
    exponents = data.draw(st.lists(st.floats(-3, 20), min_size=size, max_size=size))
    signs = data.draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=size, max_size=size))
    with torch.no_grad():
        module.net.weight.zero_()
        module.net.bias.copy_(torch.tensor([s * 10.0**e for s, e in zip(signs, exponents)]))
    assert_finite_log_densities(module(torch.zeros(2, F)), family)


def test_the_audits_planar_flow_with_a_scale_of_1e18_is_finite_even_without_the_clamp():
    for clamp in (DEFAULT_LOGVAR_CLAMP, None):
        module = head("planar", logvar_clamp=clamp)
        with torch.no_grad():
            module.net.weight[D : 2 * D].zero_()
            module.net.bias[D : 2 * D] = math.log(1e18)  # σ ≈ 1e18
        q = module(torch.randn(4, F))
        z, log_q = sample_with_log_prob(q)
        assert torch.isfinite(log_q).all()
        expected_scale = 1e18 if clamp is None else math.exp(0.5 * DEFAULT_LOGVAR_CLAMP[1])
        torch.testing.assert_close(q.base_dist.stddev, torch.full((4, D), expected_scale), rtol=1e-4, atol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_elbo_and_the_iwae_bound_are_never_nan(family):
    for preset in ("vae", "iwae"):
        torch.manual_seed(0)
        model = vaekit.create(preset, input_shape=(6,), latent_dim=D, hidden_dims=(8,), likelihood="gaussian",
                              posterior=family, flow_steps=2)
        for scale in (1e6, 1e18, -1e18):
            out = model.loss(scale * (torch.rand(8, 6) + 0.5))
            assert not any(torch.isnan(v).any() for v in out.values()), (preset, scale, out)


# -- the clamp ------------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_the_clamp_changes_nothing_inside_its_range_and_bounds_sigma_outside(family):
    h = torch.randn(6, F)
    clamped, free = head(family), head(family, logvar_clamp=None)
    torch.manual_seed(2)
    z, log_q = sample_with_log_prob(clamped(h))
    torch.manual_seed(2)
    z_free, log_q_free = sample_with_log_prob(free(h))
    assert torch.equal(z, z_free) and torch.equal(log_q, log_q_free)  # bit for bit in normal use
    low, high = DEFAULT_LOGVAR_CLAMP
    with torch.no_grad():
        clamped.net.bias[D : 2 * D] = torch.tensor([100.0, -100.0, 0.5 * high + 1, 0.5 * low - 1])
        clamped.net.weight[D : 2 * D].zero_()
    q = clamped(h)
    base = q.base_dist if family in FLOWS else q
    stddev = base.stddev if family != "full_covariance" else q.scale_tril.diagonal(dim1=-2, dim2=-1)
    expected = torch.tensor([math.exp(high / 2), math.exp(low / 2), math.exp(high / 2), math.exp(low / 2)])
    torch.testing.assert_close(stddev, expected.expand(6, D), rtol=1e-5, atol=0)


def test_full_covariance_correlations_are_bounded_by_the_largest_scale():
    module = head("full_covariance", logvar_clamp=(-4.0, 2.0))
    with torch.no_grad():
        module.net.bias[2 * D :] = 1e30
        module.net.weight[2 * D :].zero_()
    tril = module(torch.randn(3, F)).scale_tril
    rows, cols = torch.tril_indices(D, D, offset=-1)
    torch.testing.assert_close(tril[:, rows, cols], torch.full((3, len(rows)), math.e))


@pytest.mark.parametrize("bad", [(5.0, 1.0), (-100.0, 0.0), (0.0, 81.0), (0.0,), "wide", (0.0, math.nan)])
@pytest.mark.parametrize("family", FAMILIES)
def test_a_bad_logvar_clamp_is_refused(family, bad):
    with pytest.raises(ConfigError, match="logvar_clamp must be"):
        head(family, logvar_clamp=bad)


def test_a_custom_clamp_reaches_the_head_through_the_build_options():
    spec = vaekit.models.spec.ModelSpec(input_shape=(6,), latent_dim=D, hidden_dims=(8,))
    model = spec.build(lambda *a: {}, posterior="radial", posterior_options={"flow_steps": 1, "logvar_clamp": (-2.0, 2.0)})
    with torch.no_grad():
        model.posterior.net.bias[D : 2 * D] = 50.0
    torch.testing.assert_close(model.encode(torch.randn(2, 6)).base_dist.stddev, torch.full((2, D), math.e), rtol=1e-5, atol=0)


# -- the stable flow formulas agree with the papers' formulas in float64 --------------------------
def planar_reference(u, w, b, z):
    """Rezende & Mohamed (2015), §4.1 and Appendix A, in float64: (f(z), log|1 + ûᵀψ(z)|), ûᵀw = m(wᵀu)."""
    wu = w @ u
    m = -1 + torch.nn.functional.softplus(wu)
    u_hat = u + (m - wu) * w / (w @ w)
    t = torch.tanh(w @ z + b)
    return z + u_hat * t, torch.log(torch.abs(1 + (1 - t**2) * m))


@pytest.mark.parametrize("magnitude", [1.0, 1e12, 1e25])
def test_planar_step_matches_the_float64_formula_at_any_magnitude(magnitude):
    torch.manual_seed(3)
    for _ in range(10):
        u, w, z = torch.randn(3, D, dtype=torch.float64).unbind(0)
        u, w, z, b = u * magnitude, w * magnitude, z / magnitude, torch.randn((), dtype=torch.float64)
        y_ref, ladj_ref = planar_reference(u, w, b, z)
        y, ladj = PlanarTransform(u.float(), w.float(), b.float())._call_and_ladj(z.float())
        assert torch.isfinite(y).all() and torch.isfinite(ladj)
        torch.testing.assert_close(ladj.double(), ladj_ref, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(y.double(), y_ref, rtol=1e-4, atol=1e-4 * magnitude)


def radial_reference(z0, alpha_raw, beta_raw, z):
    """Rezende & Mohamed (2015), §4.1 and Appendix A, in float64: (f(z), log|det ∂f/∂z|)."""
    alpha = torch.nn.functional.softplus(alpha_raw)
    beta = -alpha + torch.nn.functional.softplus(beta_raw)
    r = torch.linalg.norm(z - z0)
    h = 1 / (alpha + r)
    dh = -1 / (alpha + r) ** 2
    ladj = (z.shape[-1] - 1) * torch.log(1 + beta * h) + torch.log(1 + beta * h + beta * dh * r)
    return z + beta * h * (z - z0), ladj


@pytest.mark.parametrize("magnitude", [1.0, 1e12, 1e25])
def test_radial_step_matches_the_float64_formula_at_any_magnitude(magnitude):
    torch.manual_seed(4)
    for _ in range(10):
        z0, z = (torch.randn(2, D, dtype=torch.float64) * magnitude).unbind(0)
        alpha_raw, beta_raw = torch.randn(2, dtype=torch.float64) * magnitude
        y_ref, ladj_ref = radial_reference(z0, alpha_raw, beta_raw, z)
        y, ladj = RadialTransform(z0.float(), alpha_raw.float(), beta_raw.float())._call_and_ladj(z.float())
        assert torch.isfinite(y).all() and torch.isfinite(ladj)
        torch.testing.assert_close(ladj.double(), ladj_ref, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(y.double(), y_ref, rtol=1e-4, atol=1e-4 * magnitude)


def test_preset_wiring_passes_a_non_default_clamp_and_documents_it_only_where_taken():
    from vaekit.models.posterior_options import document_posterior_options, posterior_build_options

    assert posterior_build_options("planar", 3) == {"posterior": "planar", "posterior_options": {"flow_steps": 3}}
    assert posterior_build_options("diagonal", 3, [-10, 4]) == {"posterior": "diagonal", "posterior_options": {"logvar_clamp": (-10.0, 4.0)}}
    assert posterior_build_options("iaf", 2, None)["posterior_options"] == {"flow_steps": 2, "logvar_clamp": None}
    with pytest.raises(ConfigError, match="logvar_clamp"):
        posterior_build_options("diagonal", 3, (4, -10))

    def with_clamp(spec, *, posterior="diagonal", flow_steps=4, logvar_clamp=DEFAULT_LOGVAR_CLAMP):
        """A preset.

        Options:
        """

    def without_clamp(spec, *, posterior="diagonal", flow_steps=4):
        """A preset.

        Options:
        """

    assert "logvar_clamp: (min, max) range of the posterior's log σ²" in document_posterior_options(with_clamp).__doc__
    assert "logvar_clamp" not in document_posterior_options(without_clamp).__doc__
