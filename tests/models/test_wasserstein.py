"""The Wasserstein autoencoder presets: terms, the loss recomputed by hand, training, persistence, evaluation, CLI, bad options."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import vaekit
from vaekit.cli import main
from vaekit.data import load_digits
from vaekit.distributions import DiagonalGaussianPosterior, PointMass
from vaekit.errors import ConfigError
from vaekit.models import get_preset
from vaekit.objectives import Autoencoding, MMDPenalty, SlicedWassersteinPenalty, squared_error

SHAPE = dict(input_shape=(1, 8, 8), latent_dim=3, hidden_dims=(32,))
TERMS = {"wae_mmd": {"loss", "reconstruction", "mmd"}, "swae": {"loss", "reconstruction", "sliced_wasserstein"}}
PRESETS = sorted(TERMS)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_presets_are_registered_with_every_option_documented():
    assert set(PRESETS) <= set(vaekit.available_models())
    for name in PRESETS:
        preset = get_preset(name)
        assert preset.family == "wasserstein"
        assert set(preset.docs) == set(preset.defaults) and all(preset.docs.values())
        assert preset.defaults["posterior"] == "point" and preset.defaults["weight"] == 10.0
        doc = preset.build.__doc__
        assert "References:" in doc and "arXiv" in doc and "DDP" in doc
    assert get_preset("wae_mmd").defaults["kernel"] == "imq"
    assert get_preset("swae").defaults["num_projections"] == 50 and get_preset("swae").defaults["p"] == 2


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("posterior", ["point", "diagonal", "full_covariance"])
def test_terms_are_named_and_gradients_reach_every_part(name, posterior):
    torch.manual_seed(0)
    model = vaekit.create(name, **SHAPE, posterior=posterior)
    assert isinstance(model.objective, Autoencoding) and model.objective.reconstruction is squared_error
    q = model.encode(torch.rand(4, 1, 8, 8))
    assert isinstance(q, PointMass) if posterior == "point" else not isinstance(q, PointMass)
    out = model.loss(torch.rand(16, 1, 8, 8))
    assert set(out) == TERMS[name]
    assert all(v.dim() == 0 and torch.isfinite(v) for v in out.values())
    out["loss"].backward()
    for part in (model.encoder, model.posterior, model.decoder):
        grads = [p.grad for p in part.parameters()]
        assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
        assert sum(float(g.abs().sum()) for g in grads) > 0


def test_presets_compose_the_shared_penalties():
    (mmd,) = vaekit.create("wae_mmd", **SHAPE, weight=3.0, kernel="rbf", kernel_scale=2).objective.regularisers
    assert isinstance(mmd, MMDPenalty) and (mmd.weight, mmd.kernel, mmd.scale) == (3.0, "rbf", 2.0)
    (sw,) = vaekit.create("swae", **SHAPE, weight=4.0, num_projections=7, p=1).objective.regularisers
    assert isinstance(sw, SlicedWassersteinPenalty) and (sw.weight, sw.num_projections, sw.p) == (4.0, 7, 1)


def imq_mmd(a: np.ndarray, b: np.ndarray, c: float) -> float:
    """The unbiased MMD² with the IMQ kernel C/(C + ‖·‖²), term by term (Gretton et al. 2012, Lemma 6)."""
    k = lambda u, v: c / (c + float(np.sum((u - v) ** 2)))  # noqa: E731
    n, m = len(a), len(b)
    xx = sum(k(a[i], a[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(b[i], b[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    return xx + yy - 2 * sum(k(a[i], b[j]) for i in range(n) for j in range(m)) / (n * m)


def sliced(a: np.ndarray, b: np.ndarray, theta: np.ndarray, p: int) -> float:
    theta = theta / np.linalg.norm(theta, axis=1, keepdims=True)
    pa, pb = np.sort(a @ theta.T, axis=0), np.sort(b @ theta.T, axis=0)
    return float(np.mean(np.abs(pa - pb) ** p))


@pytest.mark.parametrize("name, options", [
    ("wae_mmd", {}), ("wae_mmd", {"posterior": "diagonal", "weight": 25.0}),
    ("swae", {}), ("swae", {"posterior": "diagonal", "p": 1, "num_projections": 9, "weight": 3.0}),
])
def test_loss_is_squared_error_plus_weighted_penalty_recomputed_from_the_parts(name, options):
    torch.manual_seed(1)
    model = vaekit.create(name, **SHAPE, **options)
    x = torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(5)
    with torch.no_grad():
        out = model.loss(x)
        # the same random inputs, in the objective's order: the code draw, B prior draws, then (SW) L directions
        torch.manual_seed(5)
        z = model.encode(x).rsample()
        prior_draws = model.prior().rsample((12,)).numpy()
        logits = model.decoder(z).reshape(12, -1).numpy().astype(np.float64)
    x_hat = 1 / (1 + np.exp(-logits))  # the Bernoulli decoder's mean
    reconstruction = np.mean(np.sum((x.reshape(12, -1).numpy() - x_hat) ** 2, axis=1))
    weight = options.get("weight", 10.0)
    if name == "wae_mmd":
        penalty = imq_mmd(z.numpy().astype(np.float64), prior_draws.astype(np.float64), 2.0 * 3)  # C = 2·D
    else:
        theta = torch.randn(options.get("num_projections", 50), 3).numpy()
        penalty = sliced(z.numpy(), prior_draws, theta, options.get("p", 2))
    term = "mmd" if name == "wae_mmd" else "sliced_wasserstein"
    assert float(out["reconstruction"]) == pytest.approx(reconstruction, rel=1e-5)
    assert float(out[term]) == pytest.approx(penalty, rel=1e-4, abs=1e-7)
    assert float(out["loss"]) == pytest.approx(reconstruction + weight * penalty, rel=1e-5)


@pytest.fixture(scope="module")
def digits():
    return load_digits("train").x[:512]


@pytest.mark.parametrize("name", PRESETS)
def test_a_short_adam_run_lowers_the_loss(name, digits):
    torch.manual_seed(0)
    model = vaekit.create(name, **SHAPE)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    held_out = digits[:256]

    def evaluate() -> tuple[float, float]:
        torch.manual_seed(123)  # the same prior draws and directions before and after
        with torch.no_grad():
            outs = [model.loss(held_out) for _ in range(4)]
        return sum(float(o["loss"]) for o in outs) / 4, sum(float(o["reconstruction"]) for o in outs) / 4

    before, recon_before = evaluate()
    g = torch.Generator().manual_seed(1)
    for _ in range(60):
        batch = digits[torch.randint(0, len(digits), (64,), generator=g)]
        optimiser.zero_grad()
        model.loss(batch)["loss"].backward()
        optimiser.step()
    after, recon_after = evaluate()
    assert math.isfinite(after) and after < 0.7 * before, (before, after)
    assert recon_after < 0.7 * recon_before


@pytest.mark.parametrize("name", PRESETS)
def test_save_load_round_trip_sampling_and_evaluation(name, tmp_path):
    model = vaekit.create(name, **SHAPE, posterior="diagonal")
    model.save(tmp_path / name)
    loaded = vaekit.load(tmp_path / name)
    assert loaded.config == model.config and isinstance(loaded.posterior, DiagonalGaussianPosterior)
    x = torch.rand(5, 1, 8, 8)
    torch.testing.assert_close(loaded.transform(x), model.eval().transform(x))
    torch.manual_seed(3)
    samples = loaded.sample(6)
    torch.manual_seed(3)
    torch.testing.assert_close(samples, model.sample(6))  # decoded draws of the N(0, I) prior
    assert samples.shape == (6, 1, 8, 8) and float(samples.min()) >= 0 and float(samples.max()) <= 1
    metrics = vaekit.evaluate(loaded, x, nll_samples=5)  # like `ae`: reconstruction error, no bound, no log p(x)
    assert "elbo" not in metrics and "log_likelihood" not in metrics and "kl" not in metrics
    expected_mse = (loaded.reconstruct(x) - x).pow(2).flatten(1).sum(1).mean()
    assert metrics["mse"] == pytest.approx(float(expected_mse), rel=1e-5) and metrics["num_examples"] == 5
    with pytest.raises(ConfigError, match="no log p\\(x\\)"):
        vaekit.log_likelihood(loaded, x, num_samples=5)


@pytest.mark.parametrize("name, options, message", [
    ("wae_mmd", {"weight": -1.0}, "weight"),
    ("wae_mmd", {"weight": math.nan}, "weight"),
    ("wae_mmd", {"kernel": "laplace"}, "kernel"),
    ("wae_mmd", {"kernel_scale": -2.0}, "kernel_scale"),
    ("wae_mmd", {"kernel_scale": "wide"}, "kernel_scale"),
    ("wae_mmd", {"posterior": "iaf"}, "posterior"),
    ("swae", {"weight": -0.5}, "weight"),
    ("swae", {"p": 3}, "p must be 1"),
    ("swae", {"num_projections": 0}, "num_projections"),
    ("swae", {"num_projections": 2.5}, "num_projections"),
    ("swae", {"posterior": "gamma"}, "posterior"),
])
def test_options_out_of_range_are_refused(name, options, message):
    with pytest.raises(ConfigError, match=message):
        vaekit.create(name, **SHAPE, **options)


def test_models_command_lists_the_presets_and_their_options(capsys):
    assert main(["models"]) == 0
    text = capsys.readouterr().out
    for flag in ("wae_mmd", "swae", "--num-projections", "--kernel-scale"):
        assert flag in text
    assert main(["models", "--json"]) == 0
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows["wae_mmd"]["options"]) == {"posterior", "weight", "kernel", "kernel_scale"}
    assert set(rows["swae"]["options"]) == {"posterior", "weight", "num_projections", "p"}


TINY = ["--data", "digits", "--arch", "mlp", "--epochs", "1", "--latent-dim", "2", "--hidden-dims", "16", "--nll-samples", "5", "--quiet"]


@pytest.mark.parametrize("name, options", [
    ("wae_mmd", ["--kernel", "rbf"]), ("swae", ["--p", "1", "--num-projections", "10", "--posterior", "diagonal"]),
])
def test_train_and_eval_from_the_command_line(name, options, tmp_path, capsys):
    out = tmp_path / name
    assert main(["train", name, *options, *TINY, "--out", str(out)]) == 0
    assert {"config.json", "model.safetensors", "samples.png", "reconstructions.png", "metrics.json"} <= {p.name for p in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())
    assert "mse" in metrics and "elbo" not in metrics and "log_likelihood" not in metrics
    model = vaekit.load(out)
    assert model.config["model"] == name and model.config["options"][options[0][2:].replace("-", "_")] in ("rbf", 1)
    capsys.readouterr()
    assert main(["eval", str(out), "--nll-samples", "5", "--quiet"]) == 0
    assert "log_likelihood" not in json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("args, message", [
    (["swae", "--p", "3"], "p must be 1"),
    (["wae_mmd", "--weight", "-1"], "weight"),
    (["swae", "--num-projections", "0"], "num_projections"),
])
def test_bad_options_exit_2_with_one_line_and_write_nothing(args, message, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *args, *TINY, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
