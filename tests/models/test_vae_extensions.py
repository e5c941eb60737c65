"""The VAE-extension presets: registration, documented options and terms, gradients, posterior option, training."""

from __future__ import annotations

import math

import pytest
import torch

import vaekit
from vaekit.data import load_digits
from vaekit.distributions import POSTERIORS, FullCovarianceGaussianPosterior
from vaekit.errors import ConfigError
from vaekit.models import get_preset
from vaekit.objectives import DIPPenalty, ImportanceWeightedBound, MMDPenalty, ELBO

SHAPE = dict(input_shape=(1, 8, 8), latent_dim=3, hidden_dims=(32,))

COMMON = {"loss", "reconstruction", "kl"}
# (preset, options, the exact set of terms it reports)
CASES = [
    ("beta_vae", {}, COMMON | {"elbo"}),
    ("beta_vae", {"capacity": 5.0, "capacity_steps": 100, "gamma": 10.0}, COMMON | {"elbo", "capacity"}),
    ("beta_tc_vae", {"dataset_size": 512}, COMMON | {"elbo", "mi", "tc", "dimension_kl"}),
    ("beta_tc_vae", {"dataset_size": 512, "sampling": "mss"}, COMMON | {"elbo", "mi", "tc", "dimension_kl"}),
    ("iwae", {}, {"loss", "iwae", "elbo", "reconstruction", "kl"}),
    ("iwae", {"posterior": "full_covariance", "num_samples": 3}, {"loss", "iwae", "elbo", "reconstruction", "kl"}),
    ("miwae", {"num_samples": 4, "num_bounds": 2}, {"loss", "iwae", "elbo", "reconstruction", "kl"}),
    ("info_vae", {"weight": 100.0}, COMMON | {"elbo", "mmd"}),
    ("info_vae", {"alpha": 1.0, "weight": 100.0, "kernel": "imq"}, COMMON | {"elbo", "mmd"}),
    ("dip_vae", {}, COMMON | {"elbo", "dip", "dip_offdiag", "dip_diag"}),
    ("dip_vae", {"dip_type": "ii"}, COMMON | {"elbo", "dip", "dip_offdiag", "dip_diag"}),
    ("logcosh_vae", {"likelihood": "gaussian"}, COMMON),
]
PRESETS = sorted({name for name, _, _ in CASES})


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one intra-op thread is fastest, and far faster on a loaded shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def ids(case):
    name, options, _ = case
    return name + "".join(f"-{k}={v}" for k, v in options.items())


def test_presets_are_registered_with_every_option_documented():
    assert set(PRESETS) <= set(vaekit.available_models())
    for name in PRESETS:
        preset = get_preset(name)
        assert preset.family == "variational"
        assert set(preset.docs) == set(preset.defaults), name  # `vaekit models` shows a line for each option
        assert all(text for text in preset.docs.values())
        assert {"posterior", "flow_steps"} <= set(preset.defaults) or name == "beta_tc_vae"  # Gaussian posteriors only
        assert "posterior" in preset.defaults
        doc = preset.build.__doc__
        assert "References:" in doc and ("arXiv" in doc or "OpenReview" in doc or "ICLR" in doc)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_terms_are_finite_and_gradients_reach_encoder_and_decoder(case):
    name, options, terms = case
    torch.manual_seed(0)
    model = vaekit.create(name, **SHAPE, **options)
    model.step = 30
    out = model.loss(torch.rand(16, 1, 8, 8))
    assert set(out) == terms
    assert all(v.dim() == 0 and torch.isfinite(v) for v in out.values())
    out["loss"].backward()
    for part in (model.encoder, model.posterior, model.decoder):
        grads = [p.grad for p in part.parameters()]
        assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
        assert sum(float(g.abs().sum()) for g in grads) > 0


@pytest.mark.parametrize("name", PRESETS)
def test_posterior_option_is_shared(name):
    extra = {"dataset_size": 100} if name == "beta_tc_vae" else {}
    model = vaekit.create(name, **SHAPE, posterior="full_covariance", **extra)
    assert isinstance(model.posterior, FullCovarianceGaussianPosterior)
    assert model.config["options"]["posterior"] == "full_covariance"
    if name == "beta_tc_vae":
        with pytest.raises(ConfigError, match="Gaussian posterior"):
            vaekit.create(name, **SHAPE, posterior="planar")
    else:
        model = vaekit.create(name, **SHAPE, posterior="planar", flow_steps=2)
        assert isinstance(model.posterior, POSTERIORS["planar"])
        assert torch.isfinite(model.loss(torch.rand(4, 1, 8, 8))["loss"])
    with pytest.raises(ConfigError, match="posterior"):
        vaekit.create(name, **SHAPE, posterior="gamma")


def test_presets_compose_the_shared_objectives():
    beta = vaekit.create("beta_vae", **SHAPE, beta=4.0)
    assert type(beta.objective) is vaekit.objectives.ELBO and beta.objective.beta == 4.0
    info = vaekit.create("info_vae", **SHAPE, alpha=0.25, weight=10.0, kernel_scale=3)
    assert isinstance(info.objective, ELBO) and info.objective.beta == 0.75
    (mmd,) = info.objective.regularisers
    assert isinstance(mmd, MMDPenalty) and mmd.weight == pytest.approx(9.25) and mmd.scale == 3.0
    assert vaekit.create("miwae", **SHAPE, num_samples=4, num_bounds=2).objective.__dict__ == ImportanceWeightedBound(4, 2).__dict__
    for dip_type, lambda_diag in (("i", 50.0), ("ii", 5.0)):  # None: 10·λ_od for type I, λ_od for type II
        (dip,) = vaekit.create("dip_vae", **SHAPE, dip_type=dip_type, weight=5.0).objective.regularisers
        assert isinstance(dip, DIPPenalty) and dip.lambda_diag == lambda_diag and dip.weight == 5.0
        (alias,) = vaekit.create("dip_vae", **SHAPE, dip_type=dip_type.upper(), lambda_offdiag=5.0).objective.regularisers
        assert alias.__dict__ == dip.__dict__


def test_capacity_preset_loss_follows_the_schedule():
    model = vaekit.create("beta_vae", **SHAPE, capacity=5.0, capacity_steps=100, gamma=10.0)
    x = torch.rand(16, 1, 8, 8)
    for step, c in ((0, 0.0), (50, 2.5), (400, 5.0)):
        model.step = step
        with torch.no_grad():
            out = model.loss(x)
        assert float(out["capacity"]) == pytest.approx(c)
        torch.testing.assert_close(out["loss"], out["reconstruction"] + 10.0 * (out["kl"] - c).abs())


def test_bad_options_are_rejected():
    with pytest.raises(ConfigError, match="alpha"):
        vaekit.create("info_vae", **SHAPE, alpha=1.5)
    with pytest.raises(ConfigError, match="kernel"):
        vaekit.create("info_vae", **SHAPE, kernel="laplace")
    with pytest.raises(ConfigError, match="sampling"):
        vaekit.create("beta_tc_vae", **SHAPE, sampling="exact")
    with pytest.raises(ConfigError, match="num_samples"):
        vaekit.create("iwae", **SHAPE, num_samples=0)
    with pytest.raises(ConfigError, match="dip_type"):
        vaekit.create("dip_vae", **SHAPE, dip_type="iii")
    with pytest.raises(ConfigError):
        vaekit.create("logcosh_vae", **SHAPE, a=-1.0)


@pytest.mark.parametrize("name", PRESETS)
def test_save_and_load_round_trip(name, tmp_path):
    model = vaekit.create(name, **SHAPE)
    model.save(str(tmp_path / name))
    loaded = vaekit.load(str(tmp_path / name))
    assert loaded.config == model.config
    x = torch.rand(4, 1, 8, 8)
    torch.testing.assert_close(loaded.transform(x), model.transform(x))


@pytest.fixture(scope="module")
def digits():
    return load_digits("train").x[:512]


@pytest.mark.parametrize("case", [c for c in CASES if c[1].get("posterior") is None], ids=ids)
def test_a_short_adam_run_lowers_the_loss(case, digits):
    name, options, _ = case
    torch.manual_seed(0)
    model = vaekit.create(name, **SHAPE, **options)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    held_out = digits[:256]

    def evaluate() -> float:
        torch.manual_seed(123)  # the same draws before and after
        with torch.no_grad():
            return sum(float(model.loss(held_out)["loss"]) for _ in range(4)) / 4

    before = evaluate()
    g = torch.Generator().manual_seed(1)
    for _ in range(150):
        batch = digits[torch.randint(0, len(digits), (64,), generator=g)]
        optimiser.zero_grad()
        model.loss(batch)["loss"].backward()
        optimiser.step()
        model.step += 1
    after = evaluate()
    assert math.isfinite(after) and after < before - 0.05 * abs(before), (before, after)
