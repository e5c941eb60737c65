"""The auxiliary deep generative model (Maaløe et al. 2016): its bound, its log p(x) estimate, training, persistence.

The bound is recomputed here from the networks' raw outputs with hand-written log-densities;
the log-likelihood estimate of a 1-D model is checked against numerical integration.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal

import vaekit
from vaekit.data import load_digits
from vaekit.errors import ConfigError, DataError
from vaekit.models import get_preset
from vaekit.models.auxiliary import AuxiliaryLatentVariableModel
from vaekit.objectives import log_importance_weights

LOG_2PI = math.log(2 * math.pi)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine: intra-op threads only add contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def gaussian_log_density(v: torch.Tensor, loc: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Σ_i log N(v_i; loc_i, exp(log_scale_i)²), written out."""
    return (-0.5 * ((v - loc) / log_scale.exp()) ** 2 - log_scale - 0.5 * LOG_2PI).sum(-1)


def tiny_model(**options) -> AuxiliaryLatentVariableModel:
    torch.manual_seed(0)
    defaults = dict(input_shape=(6,), latent_dim=3, aux_dim=2, hidden_dims=(8,))
    return vaekit.create("auxiliary_vae", **{**defaults, **options}).double()


def test_preset_is_registered_with_its_options():
    assert "auxiliary_vae" in vaekit.available_models()
    preset = get_preset("auxiliary_vae")
    assert preset.family == "variational"
    assert {"aux_dim", "posterior", "flow_steps", "warmup_steps"} <= set(preset.defaults)
    assert all(preset.docs.get(k) for k in ("aux_dim", "posterior", "warmup_steps"))
    model = vaekit.create("auxiliary_vae", input_shape=(6,), latent_dim=3, aux_dim=5)
    assert isinstance(model, AuxiliaryLatentVariableModel) and model.aux_dim == 5
    assert model.config["options"]["aux_dim"] == 5
    with pytest.raises(ConfigError, match="aux_dim"):
        vaekit.create("auxiliary_vae", input_shape=(6,), aux_dim=0)


def test_listed_by_vaekit_models_with_its_options(capsys):
    from vaekit.cli import main

    assert main(["models", "--json"]) == 0
    rows = {row["model"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["auxiliary_vae"]["options"]["aux_dim"]["default"] == 16
    assert "auxiliary" in rows["auxiliary_vae"]["options"]["aux_dim"]["doc"]
    assert rows["conditional_vae"]["options"].keys() == rows["vae"]["options"].keys()


def independent_bound_terms(model: AuxiliaryLatentVariableModel, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """One draw a ~ q(a|x), z ~ q(z|a,x), every density computed from the raw network outputs.

    The draws use torch.distributions.Normal.rsample in the model's order (a, then z), so
    under the same seed they are the model's draws.
    """
    h = model.encoder(x)
    loc_a, log_scale_a = model.aux_posterior.net(h).chunk(2, dim=-1)
    a = Normal(loc_a, log_scale_a.exp()).rsample()
    hz = model.posterior[0](torch.cat([h, a], dim=-1))
    loc_z, log_scale_z = model.posterior[1].net(hz).chunk(2, dim=-1)
    z = Normal(loc_z, log_scale_z.exp()).rsample()
    logits = model.decoder(z)
    log_px_z = (x * F.logsigmoid(logits) + (1 - x) * F.logsigmoid(-logits)).sum(-1)
    ha = model.aux_likelihood[0](torch.cat([model.aux_encoder(x), z], dim=-1))
    loc_pa, log_scale_pa = model.aux_likelihood[1].net(ha).chunk(2, dim=-1)
    return {
        "log_px_z": log_px_z,
        "log_pa_xz": gaussian_log_density(a, loc_pa, log_scale_pa),
        "log_pz": (-0.5 * z**2 - 0.5 * LOG_2PI).sum(-1),
        "log_qa_x": gaussian_log_density(a, loc_a, log_scale_a),
        "log_qz_ax": gaussian_log_density(z, loc_z, log_scale_z),
        "kl_z": (0.5 * (loc_z**2 + (2 * log_scale_z).exp() - 1) - log_scale_z).sum(-1),  # KL(N(μ, σ²) ‖ N(0, 1))
    }


def test_bound_equals_an_independent_computation():
    model = tiny_model()
    x = torch.rand(7, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.manual_seed(3)
    out = model.loss(x)
    torch.manual_seed(3)
    t = independent_bound_terms(model, x)
    kl = t["log_qa_x"] - t["log_pa_xz"] + t["kl_z"]  # the z part in closed form given a
    elbo = t["log_px_z"] - kl
    torch.testing.assert_close(out["elbo"], elbo.mean())
    torch.testing.assert_close(out["reconstruction"], -t["log_px_z"].mean())
    torch.testing.assert_close(out["kl"], kl.mean())
    torch.testing.assert_close(out["loss"], -elbo.mean())
    # the terms also come back one by one, and the one-sample weight is the bound itself
    torch.manual_seed(3)
    terms = model.joint_log_densities(x, 1)
    for name, value in t.items():
        torch.testing.assert_close(terms[name][0], value)
    torch.manual_seed(3)  # the one-sample weight keeps every term sampled
    sampled = t["log_px_z"] + t["log_pa_xz"] + t["log_pz"] - t["log_qa_x"] - t["log_qz_ax"]
    torch.testing.assert_close(model.log_importance_weights(x, 1)[0], sampled)


def test_kl_given_a_is_unbiased_and_less_noisy_than_the_sampled_one():
    from vaekit.objectives.auxiliary import auxiliary_kl, auxiliary_kl_given_a

    model = tiny_model()
    x = torch.rand(1, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    torch.manual_seed(0)
    with torch.no_grad():
        terms = model.joint_log_densities(x, 40_000)
    sampled, given_a = auxiliary_kl(terms)[:, 0], auxiliary_kl_given_a(terms)[:, 0]
    stderr = float((sampled.var() / len(sampled) + given_a.var() / len(given_a)).sqrt())
    assert abs(float(sampled.mean() - given_a.mean())) < 4 * stderr
    assert given_a.var() < 0.8 * sampled.var()


def test_kl_warmup_weights_only_the_kl_part():
    model = tiny_model(warmup_steps=10)
    x = torch.rand(4, 6, dtype=torch.float64)
    for step, weight in ((0, 0.0), (5, 0.5), (30, 1.0)):
        model.step = step
        torch.manual_seed(0)
        out = model.loss(x)
        torch.testing.assert_close(out["loss"], out["reconstruction"] + weight * out["kl"])
        torch.testing.assert_close(out["elbo"], -(out["reconstruction"] + out["kl"]))


def test_generic_importance_weights_dispatch_to_the_joint_proposal():
    model = tiny_model()
    x = torch.rand(5, 6, dtype=torch.float64)
    torch.manual_seed(4)
    generic = log_importance_weights(model, x, 9)
    torch.manual_seed(4)
    own = auxiliary = model.log_importance_weights(x, 9)
    assert generic.shape == (9, 5)
    torch.testing.assert_close(generic, own)
    torch.manual_seed(4)
    terms = model.joint_log_densities(x, 9)
    assert all(v.shape == (9, 5) for v in terms.values())
    torch.testing.assert_close(auxiliary, terms["log_px_z"] + terms["log_pa_xz"] + terms["log_pz"] - terms["log_qa_x"] - terms["log_qz_ax"])


def test_bound_is_below_the_log_likelihood_estimate_on_average():
    model = tiny_model()
    x = torch.rand(20, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    torch.manual_seed(0)
    with torch.no_grad():
        expected_bound = model.log_importance_weights(x, 500).mean(0)  # E_q[log w] per example
    log_px = vaekit.log_likelihood(model, x, num_samples=2000)
    gap = log_px - expected_bound
    assert (gap > 0).all()  # Jensen: E log w < log E w = log p(x)
    assert gap.mean() > 0.3  # measured 1.2 nats: the untrained q(a, z|x) is far from the posterior


@pytest.mark.parametrize("posterior", ["diagonal", "full_covariance", "radial"])
def test_log_likelihood_matches_numerical_integration(posterior):
    """p(x) = ∫∫ p(x|z) p(z) p(a|x,z) da dz = ∫ p(x|z) p(z) dz: a 1-D integral on a grid.

    The importance-sampled estimate over (a, z) ~ q(a|x) q(z|a,x) must agree with it.
    """
    torch.manual_seed(0)
    model = vaekit.create(
        "auxiliary_vae", input_shape=(3,), latent_dim=1, aux_dim=1, hidden_dims=(8,),
        likelihood="gaussian", likelihood_scale=0.7, posterior=posterior, flow_steps=2,
    ).double()
    with torch.no_grad():
        x = model.decode(torch.tensor([[0.8], [-1.5]], dtype=torch.float64)).mean + 0.3
        grid = torch.linspace(-12, 12, 24_001, dtype=torch.float64).unsqueeze(-1)
        log_joint = torch.stack([model.decode(grid).log_prob(xi.expand(len(grid), 3)) for xi in x])
        log_joint = log_joint + Normal(0.0, 1.0).log_prob(grid.squeeze(-1))
        dz = float(grid[1] - grid[0])
        exact = torch.logsumexp(log_joint, dim=1) + math.log(dz)  # Riemann sum; the integrand is ~0 at the ends
    torch.manual_seed(1)
    estimate = vaekit.log_likelihood(model, x, num_samples=40_000)
    torch.testing.assert_close(estimate.double(), exact, atol=0.03, rtol=0)


def test_encode_is_q_of_z_at_the_mean_auxiliary():
    model = tiny_model()
    x = torch.rand(4, 6, dtype=torch.float64)
    a_mean = model.encode_auxiliary(x).mean
    q = model.encode(x)
    assert q.batch_shape == (4,) and q.event_shape == (3,)
    torch.testing.assert_close(q.mean, model.encode(x, a=a_mean).mean)
    assert not torch.allclose(q.mean, model.encode(x, a=a_mean + 1.0).mean)
    torch.testing.assert_close(model.transform(x), q.mean)
    assert model.decode_auxiliary(x, q.mean).event_shape == (2,)
    with pytest.raises(DataError, match="a must have shape"):
        model.encode(x, a=torch.zeros(4, 3, dtype=torch.float64))


def test_conditional_auxiliary_model_uses_y():
    torch.manual_seed(0)
    model = vaekit.create("auxiliary_vae", input_shape=(6,), latent_dim=2, aux_dim=2, hidden_dims=(8,), num_classes=3)
    x, y = torch.rand(5, 6), torch.tensor([0, 1, 2, 0, 1])
    with pytest.raises(ConfigError, match="needs y"):
        model.loss(x)
    torch.manual_seed(0)
    first = model.log_importance_weights(x, 4, y)
    torch.manual_seed(0)
    other = model.log_importance_weights(x, 4, (y + 1) % 3)
    assert first.shape == (4, 5) and torch.isfinite(first).all()
    assert not torch.allclose(first, other)


def test_training_on_digits_lowers_the_loss():
    torch.manual_seed(0)
    train, test = load_digits("train"), load_digits("test")
    model = vaekit.create("auxiliary_vae", input_shape=(1, 8, 8), latent_dim=4, aux_dim=4, hidden_dims=(64,))

    def test_loss() -> float:
        torch.manual_seed(0)
        with torch.no_grad():
            return float(model.loss(test.x)["loss"])

    before = test_loss()
    vaekit.fit(model, train.x, epochs=14, batch_size=64, lr=3e-3, quiet=True, seed=0)  # 14 × 23 = 322 steps
    after = test_loss()
    assert model.step == 14 * math.ceil(len(train) / 64)
    print(f"test loss {before:.2f} -> {after:.2f}")
    assert after < before - 5.0, (before, after)


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = vaekit.create("auxiliary_vae", input_shape=(1, 8, 8), latent_dim=3, aux_dim=5, hidden_dims=(16,), warmup_steps=7)
    model.save(tmp_path / "aux")
    loaded = vaekit.load(tmp_path / "aux")
    assert isinstance(loaded, AuxiliaryLatentVariableModel)
    assert loaded.aux_dim == 5 and loaded.config == model.config
    assert loaded.objective.warmup_steps == 7
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
    x = torch.rand(3, 1, 8, 8)
    torch.manual_seed(5)
    expected = model.log_importance_weights(x, 4)
    torch.manual_seed(5)
    torch.testing.assert_close(loaded.log_importance_weights(x, 4), expected)
