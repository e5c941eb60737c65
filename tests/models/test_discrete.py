"""categorical_vae and joint_vae: losses recomputed by hand, schedules, log p(x) against exact enumeration, training, files, CLI."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import MultivariateNormal, Normal

import vaekit
from vaekit.cli import main
from vaekit.data import load_digits
from vaekit.distributions import ProductDistribution
from vaekit.errors import ConfigError
from vaekit.models import get_preset
from vaekit.models.discrete import DiscreteLatentVariableModel
from vaekit.objectives import ELBO
from vaekit.objectives.discrete import JointCapacity
from vaekit.train.trainer import SCHEDULES_DONE

SHAPE = dict(input_shape=(1, 8, 8), arch="mlp", hidden_dims=(16,))
PRESETS = ("categorical_vae", "joint_vae")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    return load_digits("train").x[:512]


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits.view_as(x), x, reduction="none").flatten(1).sum(1)


def test_presets_are_listed_with_every_option_documented(capsys):
    for name in PRESETS:
        preset = get_preset(name)
        assert preset.family == "variational" and set(preset.docs) == set(preset.defaults)
        assert all(preset.docs.values()) and "arXiv" in preset.build.__doc__
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "categorical_vae" in listing and "joint_vae" in listing and "--discrete-capacity" in listing


@pytest.mark.parametrize("name, options, terms", [
    ("categorical_vae", {"latent_dim": 3, "categories": 4}, {"loss", "reconstruction", "kl", "elbo"}),
    ("joint_vae", {"latent_dim": 2, "discrete_latents": 2, "categories": 3},
     {"loss", "reconstruction", "kl", "elbo", "kl_continuous", "kl_discrete", "capacity", "discrete_capacity"}),
])
def test_conditional_conv_models_train_every_part(name, options, terms):
    torch.manual_seed(0)
    model = vaekit.create(name, input_shape=(1, 8, 8), arch="conv", channels=(8,), num_classes=3, **options)
    model.step = 100
    x, y = torch.rand(6, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    out = model.loss(x, y)
    assert set(out) == terms and all(v.dim() == 0 and torch.isfinite(v) for v in out.values())
    out["loss"].backward()
    for part in (model.encoder, model.posterior, model.decoder):
        grads = [p.grad for p in part.parameters()]
        assert grads and all(g is not None and torch.isfinite(g).all() for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
    assert vaekit.log_likelihood(model, x, num_samples=3, y=y).shape == (6,) and model.sample(4, y=1).shape == (4, 1, 8, 8)


def test_categorical_loss_is_the_relaxed_elbo_recomputed_by_hand():
    torch.manual_seed(0)
    model = vaekit.create("categorical_vae", **SHAPE, latent_dim=3, categories=4, temperature=2.0, min_temperature=0.5, anneal_rate=1e-3)
    assert isinstance(model.objective, ELBO) and model.latent_dim == 12 and model.discrete_shape == (3, 4)
    model.step = 500
    tau = 2.0 * math.exp(-0.5)
    x = torch.rand(8, 1, 8, 8)
    torch.manual_seed(5)
    out = model.loss(x)
    with torch.no_grad():
        log_pi = model.posterior.net(model.encoder(x)).view(8, 3, 4).log_softmax(-1)
        torch.manual_seed(5)
        gumbel = -(-torch.rand(8, 3, 4).log()).log()
        y = ((log_pi + gumbel) / tau).softmax(-1).flatten(1)  # Gumbel-softmax sample at τ_500
        recon = bernoulli_nll(model.decoder(y), x).mean()
        kl = (log_pi.exp() * (log_pi + math.log(4))).sum((1, 2)).mean()  # KL to the uniform categorical
    torch.testing.assert_close(out["reconstruction"], recon)
    torch.testing.assert_close(out["kl"], kl)
    torch.testing.assert_close(out["loss"], recon + kl)
    torch.testing.assert_close(out["elbo"], -(recon + kl))


def test_joint_loss_has_two_capacities_the_discrete_one_capped_at_n_log_k():
    torch.manual_seed(0)
    model = vaekit.create("joint_vae", **SHAPE, latent_dim=2, discrete_latents=2, categories=3, capacity=4.0,
                          discrete_capacity=100.0, capacity_steps=100, gamma=7.0, temperature=0.67)
    assert model.latent_dim == 2 + 6 and model.continuous_dim == 2
    x = torch.rand(8, 1, 8, 8)
    for step, c_cont, c_disc in ((0, 0.0, 0.0), (1, 0.04, 1.0), (50, 2.0, 2 * math.log(3)), (10**6, 4.0, 2 * math.log(3))):
        model.step = step
        torch.manual_seed(3)
        out = model.loss(x)
        with torch.no_grad():
            h = model.encoder(x)
            mu, log_sigma = model.posterior.continuous.net(h).chunk(2, -1)
            log_pi = model.posterior.discrete.net(h).view(8, 2, 3).log_softmax(-1)
            torch.manual_seed(3)  # the product draws its parts in order: Gaussian, then categorical
            z = mu + log_sigma.exp() * torch.randn(8, 2)
            c = ((log_pi - (-torch.rand(8, 2, 3).log()).log()) / 0.67).softmax(-1).flatten(1)
            recon = bernoulli_nll(model.decoder(torch.cat([z, c], 1)), x).mean()
            kl_c = (0.5 * (mu**2 + (2 * log_sigma).exp() - 1 - 2 * log_sigma)).sum(1).mean()
            kl_d = (log_pi.exp() * (log_pi + math.log(3))).sum((1, 2)).mean()
        assert float(out["capacity"]) == pytest.approx(c_cont) and float(out["discrete_capacity"]) == pytest.approx(c_disc)
        torch.testing.assert_close(out["reconstruction"], recon)
        torch.testing.assert_close(out["kl_continuous"], kl_c)
        torch.testing.assert_close(out["kl_discrete"], kl_d)
        torch.testing.assert_close(out["kl"], kl_c + kl_d)
        torch.testing.assert_close(out["loss"], recon + 7.0 * ((kl_c - c_cont).abs() + (kl_d - c_disc).abs()))
    (penalty,) = model.objective.regularisers
    assert isinstance(penalty, JointCapacity) and model.objective.beta == 0.0


def test_temperature_schedule_and_exact_draws_in_evaluation():
    model = vaekit.create("categorical_vae", **SHAPE, latent_dim=2, categories=3, temperature=1.0, min_temperature=0.5, anneal_rate=3e-5)
    for step in (0, 1000, 20_000, 30_000, SCHEDULES_DONE):
        model.step = step
        assert model.temperature == pytest.approx(max(0.5, math.exp(-3e-5 * step)))
    assert model.temperature == 0.5
    x = torch.rand(64, 1, 8, 8)
    relaxed = model.encode(x).rsample().view(64, 2, 3)
    assert float(relaxed.detach().max(-1).values.min()) < 0.99  # soft at τ = 0.5
    model.eval()
    assert model.temperature == 0.0
    exact = model.encode(x).rsample().view(64, 2, 3)
    assert set(exact.unique().tolist()) == {0.0, 1.0} and bool((exact.sum(-1) == 1).all())
    constant = vaekit.create("joint_vae", **SHAPE, latent_dim=2, temperature=0.8, anneal_rate=0.0)
    constant.step = 10**6
    assert constant.temperature == 0.8
    st = vaekit.create("categorical_vae", **SHAPE, latent_dim=2, categories=3, straight_through=True)
    hard = st.encode(x).rsample().view(64, 2, 3)  # training mode: one-hot forward
    torch.testing.assert_close(hard.sum(-1), torch.ones(64, 2))
    torch.testing.assert_close(hard.max(-1).values, torch.ones(64, 2))


def factorised_gaussian_model(n: int = 3, k: int = 3, pixels: int = 2, sigma: float = 0.7):
    """A categorical_vae whose true posterior factorises and is linear in x, with the head set to it.

    Variable n writes only into its own ``pixels`` coordinates (a block-diagonal linear decoder),
    so log p(c|x) = Σ_n [x_n·w_{n,c_n} − b_n·w_{n,c_n} − ‖w_{n,c_n}‖²/2] / σ² + const.
    """
    m = n * pixels
    model = vaekit.create("categorical_vae", input_shape=(m,), latent_dim=n, categories=k, hidden_dims=(),
                          likelihood="gaussian", likelihood_scale=sigma)
    g = torch.Generator().manual_seed(0)
    W = torch.zeros(m, n * k)
    for i in range(n):
        W[i * pixels : (i + 1) * pixels, i * k : (i + 1) * k] = torch.randn(pixels, k, generator=g) * 1.5
    b = torch.randn(m, generator=g)
    with torch.no_grad():
        model.decoder.net[0].weight.copy_(W)
        model.decoder.net[0].bias.copy_(b)
        model.posterior.net.weight.copy_(W.T / sigma**2)
        model.posterior.net.bias.copy_(-(W.T @ b) / sigma**2 - W.pow(2).sum(0) / (2 * sigma**2))
    return model, W, b, sigma


def enumerated_log_marginal(x: torch.Tensor, n: int, k: int, log_px_given: callable) -> torch.Tensor:
    """log Σ_c p(c) p(x|c) over all K^N one-hot codes c, p(c) = K^−N."""
    terms = []
    for classes in itertools.product(range(k), repeat=n):
        code = F.one_hot(torch.tensor(classes), k).float().flatten()
        terms.append(log_px_given(code.expand(x.shape[0], -1)) - n * math.log(k))
    return torch.stack(terms).logsumexp(0)


def test_log_likelihood_is_exact_with_the_true_posterior_for_any_k():
    model, W, b, sigma = factorised_gaussian_model()
    x = torch.randn(16, 6) * 2
    exact = enumerated_log_marginal(x, 3, 3, lambda c: Normal(c @ W.T + b, sigma).log_prob(x).sum(-1))
    for num_samples in (1, 4):
        torch.testing.assert_close(vaekit.log_likelihood(model, x, num_samples=num_samples), exact, atol=1e-4, rtol=1e-5)
    torch.manual_seed(0)  # evaluate's one-draw bound log p(x|c) − KL has mean log p(x) when q is the posterior
    metrics = vaekit.evaluate(model, x.repeat(100, 1))
    assert metrics["elbo"] == pytest.approx(float(exact.mean()), abs=0.1)
    assert metrics["kl_per_dimension"] is None and isinstance(metrics["active_units"], int)


def test_log_likelihood_converges_to_exact_enumeration_with_an_imperfect_posterior():
    torch.manual_seed(0)
    model = vaekit.create("categorical_vae", input_shape=(6,), latent_dim=3, categories=3, hidden_dims=(8,))
    with torch.no_grad():
        for p in model.decoder.parameters():  # codes that matter: a peaked true posterior
            p.mul_(3.0)
    x = torch.rand(10, 6).round()
    with torch.no_grad():
        exact = enumerated_log_marginal(x, 3, 3, lambda c: model.decode(c).log_prob(x))
        q = model.encode(x)  # the exact bound Σ_c q(c|x) [log p(x|c) + log p(c) − log q(c|x)], by enumeration
        codes = [F.one_hot(torch.tensor(cl), 3).float().flatten().expand(10, -1) for cl in itertools.product(range(3), repeat=3)]
        elbo = sum(q.log_prob(c).exp() * (model.decode(c).log_prob(x) - 3 * math.log(3) - q.log_prob(c)) for c in codes)
    assert float((exact - elbo).min()) > 0.05  # q is not the posterior
    estimate = vaekit.log_likelihood(model, x, num_samples=4000)
    torch.testing.assert_close(estimate, exact, atol=0.1, rtol=0)  # per-example σ ≈ 0.03 at K = 4000
    assert abs(float((estimate - exact).mean())) < 0.03
    torch.manual_seed(1)  # K = 1 is the ELBO in expectation
    one = vaekit.log_likelihood(model, x.repeat(100, 1), num_samples=1)
    assert float(one.mean()) == pytest.approx(float(elbo.mean()), abs=0.25)  # σ ≈ 2.2/√1000
    model.train()
    metrics = vaekit.evaluate(model, x.repeat(100, 1), nll_samples=200)
    assert model.training  # evaluate restores the mode
    assert metrics["elbo"] == pytest.approx(float(elbo.mean()), abs=0.25)
    assert metrics["log_likelihood"] == pytest.approx(float(exact.mean()), abs=0.05)


def joint_linear_gaussian_model(exact: bool, m: int = 4, d: int = 2, k: int = 3, sigma: float = 0.5):
    """joint_vae with decoder x = W z + U c + b + σ ε, W's columns orthogonal and Uᵀ W = 0.

    Then p(x) = K⁻¹ Σ_c N(x; U_c + b, W Wᵀ + σ² I) and the posterior factorises:
    p(z, c|x) = N(z; A(x − b), Σ) · p(c|x), Σ = (I + WᵀW/σ²)⁻¹ diagonal, A = Σ Wᵀ/σ², and
    log p(c|x) = xᵀ P U_c − ½ (U_c + b)ᵀ P (U_c + b) + const with P = (W Wᵀ + σ² I)⁻¹, linear in x.
    The head is set to it (``exact``) or its Gaussian part shifted by 0.3 and widened 1.5×.
    """
    model = vaekit.create("joint_vae", input_shape=(m,), latent_dim=d, discrete_latents=1, categories=k, hidden_dims=(),
                          likelihood="gaussian", likelihood_scale=sigma)
    g = torch.Generator().manual_seed(0)
    basis, _ = torch.linalg.qr(torch.randn(m, m, generator=g))
    W = basis[:, :d] * torch.tensor([1.5, 0.8])
    U = basis[:, d:] @ (2 * torch.randn(m - d, k, generator=g))
    b = torch.randn(m, generator=g)
    cov = W @ W.T + sigma**2 * torch.eye(m)
    precision = torch.linalg.inv(cov)
    post_var = 1 / (1 + W.pow(2).sum(0) / sigma**2)
    A = post_var[:, None] * W.T / sigma**2
    with torch.no_grad():
        model.decoder.net[0].weight.copy_(torch.cat([W, U], 1))
        model.decoder.net[0].bias.copy_(b)
        cont = model.posterior.continuous.net
        cont.weight.zero_()
        cont.weight[:d] = A
        cont.bias[:d] = -A @ b + (0.0 if exact else 0.3)
        cont.bias[d:] = 0.5 * post_var.log() + (0.0 if exact else math.log(1.5))
        means = U + b[:, None]
        model.posterior.discrete.net.weight.copy_(U.T @ precision)
        model.posterior.discrete.net.bias.copy_(-0.5 * (means * (precision @ means)).sum(0))
    torch.manual_seed(0)
    x = torch.randn(12, d) @ W.T + U.T[torch.randint(0, k, (12,))] + b + sigma * torch.randn(12, m)
    exact_log_px = torch.stack([MultivariateNormal(U[:, j] + b, cov).log_prob(x) for j in range(k)]).logsumexp(0) - math.log(k)
    return model, x, exact_log_px


def test_joint_log_likelihood_is_the_exact_gaussian_mixture_marginal_with_the_true_posterior():
    model, x, exact = joint_linear_gaussian_model(exact=True)
    for num_samples in (1, 5):
        torch.testing.assert_close(vaekit.log_likelihood(model, x, num_samples=num_samples), exact, atol=1e-4, rtol=1e-5)


def test_joint_log_likelihood_converges_with_an_imperfect_posterior():
    model, x, exact = joint_linear_gaussian_model(exact=False)
    torch.manual_seed(0)
    estimate = vaekit.log_likelihood(model, x, num_samples=3000)
    torch.testing.assert_close(estimate, exact, atol=0.08, rtol=0)  # per-example σ ≈ 0.02 at K = 3000
    gaps = [float(exact.mean() - vaekit.log_likelihood(model, x.repeat(20, 1), num_samples=s).mean()) for s in (1, 10, 100)]
    assert gaps[0] > gaps[1] > gaps[2] > -0.02 and gaps[0] > 0.1  # a lower bound tightening as K grows
    metrics = vaekit.evaluate(model, x.repeat(20, 1))
    assert metrics["elbo"] < float(estimate.mean())


@pytest.mark.parametrize("name", PRESETS)
def test_a_short_adam_run_lowers_the_loss(name, digits):
    torch.manual_seed(0)
    options = {"latent_dim": 4, "categories": 5} if name == "categorical_vae" else {"latent_dim": 3, "discrete_latents": 1, "categories": 5}
    model = vaekit.create(name, input_shape=(1, 8, 8), arch="mlp", hidden_dims=(32,), **options)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    held_out = digits[:256]

    def evaluate() -> float:
        torch.manual_seed(123)
        with torch.no_grad():
            return sum(float(model.loss(held_out)["loss"]) for _ in range(4)) / 4

    before = evaluate()
    g = torch.Generator().manual_seed(1)
    for _ in range(150):
        optimiser.zero_grad()
        model.loss(digits[torch.randint(0, len(digits), (64,), generator=g)])["loss"].backward()
        optimiser.step()
        model.step += 1
    after = evaluate()
    assert math.isfinite(after) and after < before - 0.05 * abs(before), (before, after)


@pytest.mark.parametrize("name", PRESETS)
def test_save_load_round_trip(name, tmp_path):
    model = vaekit.create(name, **SHAPE, latent_dim=2, categories=3)
    model.step = 1234
    model.save(str(tmp_path / name))
    loaded = vaekit.load(str(tmp_path / name))
    assert isinstance(loaded, DiscreteLatentVariableModel) and loaded.config == model.config
    assert loaded.discrete_shape == model.discrete_shape and loaded.latent_dim == model.latent_dim
    x = torch.rand(4, 1, 8, 8)
    torch.testing.assert_close(loaded.transform(x), model.transform(x))
    scores = []
    for m in (model, loaded):
        torch.manual_seed(0)
        scores.append(vaekit.log_likelihood(m, x, num_samples=20))
    torch.testing.assert_close(scores[1], scores[0])
    samples = loaded.sample(5)
    assert samples.shape == (5, 1, 8, 8)
    codes = loaded.prior().sample((5,))
    assert codes.shape == (5, loaded.latent_dim)
    assert isinstance(loaded.encode(x), ProductDistribution) == (name == "joint_vae")


def test_bad_options_are_refused_with_one_line_naming_the_option():
    cases = [
        ("categorical_vae", {"categories": 1}, "categories must be an integer ≥ 2"),
        ("categorical_vae", {"temperature": 0.0}, "temperature must be > 0"),
        ("categorical_vae", {"temperature": -1.0}, "temperature must be > 0"),
        ("categorical_vae", {"min_temperature": 0.0}, "min_temperature must be > 0"),
        ("categorical_vae", {"temperature": 0.5, "min_temperature": 0.8}, r"min_temperature \(0.8\) must be ≤ temperature \(0.5\)"),
        ("categorical_vae", {"anneal_rate": -1e-4}, "anneal_rate must be ≥ 0"),
        ("joint_vae", {"categories": 0}, "categories must be an integer ≥ 2"),
        ("joint_vae", {"discrete_latents": 0}, "discrete_latents must be an integer ≥ 1"),
        ("joint_vae", {"capacity": -1.0}, "capacity must be ≥ 0"),
        ("joint_vae", {"discrete_capacity": -1.0}, "discrete_capacity must be ≥ 0"),
        ("joint_vae", {"capacity_steps": -5}, "capacity_steps must be ≥ 0"),
        ("joint_vae", {"gamma": -1.0}, "gamma must be ≥ 0"),
        ("joint_vae", {"anneal_rate": -1.0}, "anneal_rate must be ≥ 0"),
    ]
    for name, options, message in cases:
        with pytest.raises(ConfigError, match=message) as info:
            vaekit.create(name, **SHAPE, **options)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("name, flags", [
    ("categorical_vae", ["--latent-dim", "4", "--categories", "5", "--straight-through", "true"]),
    ("joint_vae", ["--latent-dim", "2", "--discrete-latents", "2", "--categories", "4"]),
])
def test_cli_trains_on_digits_for_one_epoch(name, flags, tmp_path):
    out = tmp_path / name
    args = ["train", name, "--data", "digits", "--arch", "mlp", "--hidden-dims", "16", "--epochs", "1", "--nll-samples", "5", "--quiet"]
    assert main([*args, *flags, "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["kl_per_dimension"] is None and metrics["elbo"] <= metrics["log_likelihood"] + 1.0
    assert vaekit.load(str(out)).config["model"] == name


@pytest.mark.parametrize("flags, option", [
    (["--categories", "1"], "categories"),
    (["--temperature", "0"], "temperature"),
    (["--min-temperature", "2"], "min_temperature"),
    (["--anneal-rate", "-0.1"], "anneal_rate"),
])
def test_cli_refuses_out_of_range_options_with_exit_2(flags, option, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "categorical_vae", "--data", "digits", "--epochs", "1", "--quiet", *flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and option in err[0]
    assert not out.exists()
