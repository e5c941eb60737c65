"""Flow posteriors inside models: the vae preset, any objective (ELBO, IWAE bound), log p(x), persistence."""

import math

import pytest
import torch

import vaekit
from vaekit.distributions import FlowDistribution
from vaekit.models import get_preset
from vaekit.objectives import log_importance_weights

FLOWS = ["planar", "radial", "iaf"]


def make(kind, seed=0, **options):
    torch.manual_seed(seed)
    return vaekit.create("vae", input_shape=(1, 8, 8), latent_dim=3, hidden_dims=(32,), posterior=kind, flow_steps=2, **options)


def data(seed=0, n=6):
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed)).round()


@pytest.mark.parametrize("kind", FLOWS)
def test_vae_with_flow_posterior_trains(kind):
    model = make(kind)
    steps = model.posterior.flow_steps
    assert steps == 2 and model.config["options"]["flow_steps"] == 2
    x = data()
    q = model.encode(x)
    assert isinstance(q, FlowDistribution) and q.batch_shape == (6,) and q.event_shape == (3,)
    out = model.loss(x)
    assert all(torch.isfinite(v) for v in out.values())
    out["loss"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert model.transform(x).shape == (6, 3)
    assert model.reconstruct(x).shape == x.shape
    ll = vaekit.log_likelihood(model, x, num_samples=64)
    assert ll.shape == (6,) and torch.isfinite(ll).all()


def test_flow_steps_reaches_the_head_and_is_ignored_by_gaussians():
    assert get_preset("vae").defaults["flow_steps"] == 4
    torch.manual_seed(0)
    planar = vaekit.create("vae", input_shape=(4,), latent_dim=2, hidden_dims=(8,), posterior="planar", flow_steps=5)
    assert planar.posterior.flow_steps == 5 and len(planar.encode(torch.rand(2, 4)).transforms) == 5
    iaf = vaekit.create("vae", input_shape=(4,), latent_dim=2, hidden_dims=(8,), posterior="iaf")
    assert iaf.posterior.flow_steps == 4  # the preset's default
    for kind in ("diagonal", "full_covariance"):
        model = vaekit.create("vae", input_shape=(4,), latent_dim=2, hidden_dims=(8,), posterior=kind, flow_steps=3)
        assert torch.isfinite(model.loss(torch.rand(2, 4))["loss"])
    with pytest.raises(vaekit.ConfigError, match="flow_steps"):
        vaekit.create("vae", input_shape=(4,), latent_dim=2, posterior="radial", flow_steps=0)


@pytest.mark.parametrize("kind", FLOWS)
def test_iwae_bound_with_flow_posterior(kind):
    """log (1/K) Σ w_k through log_importance_weights works with flow posteriors, its
    expectation exceeds the ELBO's, the ELBO objective and the weights estimate the same
    ELBO, and the bound's gradient reaches the flow parameters."""
    model = make(kind, seed=1)
    x = data(1, n=4)
    k, repeats = 16, 24
    torch.manual_seed(2)
    with torch.no_grad():
        iwae = torch.stack([log_importance_weights(model, x, k).logsumexp(0) - math.log(k) for _ in range(repeats)])  # (R, B)
        torch.manual_seed(3)
        log_w = log_importance_weights(model, x, k * repeats)  # independent draws: ELBO = E[log w]
        elbo_objective = torch.stack([model.loss(x)["elbo"] for _ in range(100)])
    elbo = log_w.mean(0)
    stderr = (iwae.var(0) / repeats + log_w.var(0) / log_w.shape[0]).sqrt()
    gap = iwae.mean(0) - elbo
    assert (gap.mean() > 0) and (gap > -3 * stderr).all()
    assert gap.mean() > 3 * stderr.pow(2).mean().sqrt() / 2  # significant: the flow posterior is not the exact posterior
    batch_log_w = log_w.mean(1)  # one batch-mean ELBO estimate per draw, like each objective call
    se = (batch_log_w.var() / batch_log_w.numel() + elbo_objective.var() / elbo_objective.numel()).sqrt()
    assert abs(elbo_objective.mean() - batch_log_w.mean()) < 4 * se
    bound = (log_importance_weights(model, x, k).logsumexp(0) - math.log(k)).mean()
    (-bound).backward()
    for name, p in model.posterior.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_iwae_preset_with_iaf_posterior():
    """An IWAE with an IAF posterior (DESIGN: composition no preset names)."""
    torch.manual_seed(0)
    model = vaekit.create("iwae", input_shape=(1, 8, 8), latent_dim=3, hidden_dims=(32,), posterior="iaf", flow_steps=2)
    out = model.loss(data())
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    assert all(p.grad is not None for p in model.posterior.parameters())


@pytest.mark.parametrize("kind", FLOWS)
def test_flow_models_save_and_load(kind, tmp_path):
    model = make(kind)
    model.save(tmp_path / kind)
    loaded = vaekit.load(tmp_path / kind)
    x = data()
    torch.testing.assert_close(loaded.transform(x), model.transform(x))
    torch.manual_seed(5)
    a = model.encode(x).rsample_and_log_prob()
    torch.manual_seed(5)
    b = loaded.encode(x).rsample_and_log_prob()
    torch.testing.assert_close(a, b)
