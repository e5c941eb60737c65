"""The ELBO with regularisers and custom reconstruction costs, and the Burgess KL capacity."""

from __future__ import annotations

import types

import pytest
import torch
from torch.distributions import Independent, Normal, kl_divergence

from tests.linear_gaussian import linear_gaussian_model
from vaekit.errors import ConfigError
from vaekit.objectives import ELBO, KLCapacity, LogCoshReconstruction, PosteriorSample, capacity_at


def test_regularisers_add_their_penalties_and_report_their_terms():
    model, *_ = linear_gaussian_model(posterior="diagonal", exact=False)
    x = torch.randn(8, 5)
    seen = {}

    def regulariser(m, sample):
        seen["sample"] = sample
        return 2.0 * sample.z.pow(2).mean(), {"zsq": sample.z.pow(2).mean()}

    torch.manual_seed(0)
    out = ELBO([regulariser], beta=0.5)(model, x)
    s = seen["sample"]
    assert s.log_q is None  # a closed-form KL: log q(z|x) is never evaluated
    torch.testing.assert_close(s.kl, kl_divergence(s.q, s.prior))
    torch.testing.assert_close(out["loss"], out["reconstruction"] + 0.5 * out["kl"] + 2.0 * out["zsq"])


def test_custom_reconstruction_replaces_the_likelihood_and_drops_the_elbo_term():
    model, *_ = linear_gaussian_model(posterior="diagonal", exact=False)
    x = torch.randn(8, 5)
    torch.manual_seed(0)
    out = ELBO(beta=2.0, reconstruction=LogCoshReconstruction(3.0))(model, x)
    assert "elbo" not in out
    torch.manual_seed(0)
    q = model.encode(x)
    z = q.rsample()
    torch.testing.assert_close(out["reconstruction"], LogCoshReconstruction(3.0)(model.decode(z), x).mean())
    torch.testing.assert_close(out["loss"], out["reconstruction"] + 2.0 * out["kl"])


def test_capacity_schedule():
    assert capacity_at(0, 25.0, 100) == 0.0
    assert capacity_at(40, 25.0, 100) == 10.0
    assert capacity_at(1000, 25.0, 100) == 25.0
    assert capacity_at(0, 25.0, 0) == 25.0


@pytest.mark.parametrize("step, c", [(0, 0.0), (50, 2.5), (500, 5.0)])
def test_capacity_penalty_is_gamma_times_distance_to_the_current_target(step, c):
    q = Independent(Normal(torch.randn(6, 3), torch.rand(6, 3) + 0.1), 1)
    p = Independent(Normal(torch.zeros(3), torch.ones(3)), 1)
    z = q.rsample()
    kl = kl_divergence(q, p)
    sample = PosteriorSample(x=torch.zeros(6, 1), q=q, z=z, log_q=q.log_prob(z), prior=p, kl=kl)
    penalty, terms = KLCapacity(5.0, 100, gamma=10.0)(types.SimpleNamespace(step=step), sample)
    assert float(terms["capacity"]) == pytest.approx(c)
    assert float(penalty) == pytest.approx(10.0 * abs(float(kl.mean()) - c), rel=1e-6)


def test_capacity_options_are_checked():
    for args in ((0.0, 10), (5.0, -1), (5.0, 10, -1.0)):
        with pytest.raises(ConfigError):
            KLCapacity(*args)


@pytest.mark.parametrize("option", ["beta", "warmup_steps"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_kl_weight_or_warmup_that_is_not_a_finite_number_is_refused(option, value):
    """NaN passed the old ``< 0`` check and made every loss NaN (or silently turned warm-up off)."""
    with pytest.raises(ConfigError, match=f"{option} must be ≥ 0 and finite"):
        ELBO(**{option: value})


@pytest.mark.parametrize("args", [(float("nan"), 10), (float("inf"), 10), (5.0, 10, float("nan")), (5.0, 10, float("inf"))])
def test_a_capacity_or_gamma_that_is_not_a_finite_number_is_refused(args):
    """NaN γ (or an infinite C_max or γ) made the capacity penalty NaN or inf instead of an error."""
    with pytest.raises(ConfigError, match="must be"):
        KLCapacity(*args)
