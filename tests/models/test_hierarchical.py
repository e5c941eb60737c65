"""The two-layer VAE (hvae) against the exact marginal of a linear-Gaussian two-layer model; the VampPrior option."""

import json
import math

import pytest
import torch
from torch.distributions import MultivariateNormal

import vaekit
from vaekit.cli import main
from vaekit.distributions import DiagonalGaussianPosterior, GaussianLikelihood, StandardNormalPrior, VampPrior
from vaekit.errors import ConfigError
from vaekit.models.hierarchical import HierarchicalLatentVariableModel
from vaekit.nn import MLPDecoder, MLPEncoder
from vaekit.objectives import HierarchicalELBO, log_importance_weights

M, D1, D2, SIGMA = 3, 2, 1, 0.5


def _set_head(head: DiagonalGaussianPosterior, weight: torch.Tensor, bias: torch.Tensor, log_scale: torch.Tensor) -> None:
    with torch.no_grad():
        head.net.weight.zero_()
        head.net.bias.zero_()
        d = weight.shape[0]
        head.net.weight[:d] = weight
        head.net.bias[:d] = bias
        head.net.bias[d:] = log_scale


def linear_two_layer_model(seed: int = 0):
    """z₂ ~ N(0, I), z₁|z₂ ~ N(A z₂, diag d²), x|z₁ ~ N(B z₁, σ²I); proposals near the true posteriors
    (their exact means, variances inflated 1.5 times), and the exact marginal N(0, B(AAᵀ + diag d²)Bᵀ + σ²I)."""
    g = torch.Generator().manual_seed(seed)
    A, B, d = torch.randn(D1, D2, generator=g), torch.randn(M, D1, generator=g), 0.5 + torch.rand(D1, generator=g)
    model = HierarchicalLatentVariableModel(
        bottom_dim=D1,
        bottom_posterior=torch.nn.Sequential(DiagonalGaussianPosterior(M + D2, D1)),
        bottom_prior=torch.nn.Sequential(DiagonalGaussianPosterior(D2, D1)),
        input_shape=(M,), latent_dim=D1 + D2, encoder=MLPEncoder(M, ()), posterior=DiagonalGaussianPosterior(M, D2),
        decoder=MLPDecoder(D1 + D2, M, ()), likelihood=GaussianLikelihood((M,), scale=SIGMA), prior=StandardNormalPrior(D2),
        objective=HierarchicalELBO(), config={"model": "linear_two_layer"},
    )
    with torch.no_grad():
        model.decoder.net[0].weight.zero_()
        model.decoder.net[0].weight[:, :D1] = B
        model.decoder.net[0].bias.zero_()
    _set_head(model.bottom_prior[0], A, torch.zeros(D1), d.log())
    # q(z₁|x, z₂): p(z₁|x, z₂) has precision diag(1/d²) + BᵀB/σ² and mean Σ₁(diag(1/d²) A z₂ + Bᵀx/σ²)
    cov1 = torch.linalg.inv(torch.diag(1 / d**2) + B.T @ B / SIGMA**2)
    weight1 = torch.cat([cov1 @ B.T / SIGMA**2, cov1 @ torch.diag(1 / d**2) @ A], dim=1)
    _set_head(model.bottom_posterior[0], weight1, torch.zeros(D1), 0.5 * (1.5 * cov1.diagonal()).log())
    # q(z₂|x): x|z₂ ~ N(BA z₂, C), C = B diag(d²) Bᵀ + σ²I
    BA, C = B @ A, B @ torch.diag(d**2) @ B.T + SIGMA**2 * torch.eye(M)
    cov2 = torch.linalg.inv(torch.eye(D2) + BA.T @ torch.linalg.solve(C, BA))
    _set_head(model.posterior, cov2 @ BA.T @ torch.linalg.inv(C), torch.zeros(D2), 0.5 * (1.5 * cov2.diagonal()).log())
    marginal = MultivariateNormal(torch.zeros(M), covariance_matrix=B @ (A @ A.T + torch.diag(d**2)) @ B.T + SIGMA**2 * torch.eye(M))
    return model.eval(), marginal


def test_log_likelihood_converges_to_the_exact_marginal_and_the_elbo_stays_below():
    torch.manual_seed(0)
    model, marginal = linear_two_layer_model()
    x = marginal.sample((3,))
    exact = marginal.log_prob(x)
    estimate = vaekit.log_likelihood(model, x, 20_000)
    torch.testing.assert_close(estimate, exact, atol=0.02, rtol=0)
    n = 20_000
    for i in range(3):
        xi = x[i].expand(n, M)
        with torch.no_grad():
            elbo = float(model.objective(model, xi)["elbo"])  # analytic KL of z₁ given z₂, closed-form KL of z₂
            log_w = log_importance_weights(model, x[i : i + 1], n)[:, 0]  # one-sample terms, both layers sampled
        assert elbo < float(exact[i]) - 0.01  # the proposals are not the posterior: a real gap
        assert elbo == pytest.approx(float(log_w.mean()), abs=4 * float(log_w.std()) / math.sqrt(n) + 4 / math.sqrt(n))


def test_prior_and_encode_are_the_chain_rule_of_the_two_layers():
    model, _ = linear_two_layer_model()
    z = torch.randn(4, D1 + D2)
    p2 = StandardNormalPrior(D2)()
    p1 = model.bottom_prior(z[:, D1:])
    torch.testing.assert_close(model.prior().log_prob(z), p2.log_prob(z[:, D1:]) + p1.log_prob(z[:, :D1]))
    x = torch.randn(4, M)
    q = model.encode(x)
    expected = model.posterior(x).log_prob(z[:, D1:]) + model.bottom_posterior(torch.cat([x, z[:, D1:]], -1)).log_prob(z[:, :D1])
    torch.testing.assert_close(q.log_prob(z), expected)
    assert model.transform(x).shape == (4, D1 + D2) and model.sample(5).shape == (5, M)


@pytest.mark.parametrize("prior", ["standard", "vamp"])
def test_hvae_saves_and_loads(tmp_path, prior):
    model = vaekit.create("hvae", input_shape=(1, 4, 4), latent_dim=3, top_latent_dim=2, arch="gated_mlp", hidden_dims=(8,),
                          prior=prior, pseudo_inputs=4, logvar_clamp=(-6, 2))
    assert isinstance(model.prior_module, VampPrior) == (prior == "vamp")
    model.save(tmp_path)
    loaded = vaekit.load(tmp_path)
    x = torch.rand(5, 1, 4, 4).bernoulli()
    torch.manual_seed(1)
    expected = vaekit.log_likelihood(model, x, 7)
    torch.manual_seed(1)
    torch.testing.assert_close(vaekit.log_likelihood(loaded, x, 7), expected)
    assert json.loads((tmp_path / "config.json").read_text())["options"]["top_latent_dim"] == 2
    with pytest.raises(ConfigError, match="top_latent_dim"):
        vaekit.create("hvae", input_shape=(1, 4, 4), top_latent_dim=0)


@pytest.mark.parametrize("name", ["vae", "iwae", "beta_vae", "vamp_vae"])
def test_vamp_prior_option_on_variational_presets(tmp_path, name):
    options = {} if name == "vamp_vae" else {"prior": "vamp"}
    model = vaekit.create(name, input_shape=(1, 4, 4), latent_dim=2, arch="mlp", hidden_dims=(8,), pseudo_inputs=3, **options)
    assert isinstance(model.prior_module, VampPrior) and model.config["prior"] == "vamp"
    x = torch.rand(6, 1, 4, 4).bernoulli()
    assert torch.isfinite(model.loss(x)["loss"])
    model.save(tmp_path)
    loaded = vaekit.load(tmp_path)
    assert isinstance(loaded.prior_module, VampPrior)
    torch.testing.assert_close(loaded.prior_module.pseudo_inputs, model.prior_module.pseudo_inputs)
    torch.manual_seed(2)
    expected = model.loss(x)["loss"]
    torch.manual_seed(2)
    torch.testing.assert_close(loaded.loss(x)["loss"], expected)


@pytest.mark.parametrize("name, options, message", [
    ("ae", {}, "no prior"),
    ("auxiliary_vae", {}, "its own prior"),
    ("vae", {"posterior": "iaf"}, "Gaussian posterior"),
    ("vae", {"num_classes": 3}, "unconditional"),
    ("beta_tc_vae", {}, "factorised"),
])
def test_vamp_prior_is_refused_where_it_cannot_apply(name, options, message):
    with pytest.raises(ConfigError, match=message):
        vaekit.create(name, input_shape=(1, 4, 4), latent_dim=2, prior="vamp", **options)
    with pytest.raises(ConfigError, match="unknown prior"):
        vaekit.create("vae", input_shape=(1, 4, 4), prior="mog")


def test_cli_trains_hvae_on_digits(tmp_path):
    out = tmp_path / "hvae"
    code = main(["train", "hvae", "--data", "digits", "--epochs", "1", "--arch", "gated_mlp", "--hidden-dims", "16", "--latent-dim", "2",
                 "--top-latent-dim", "2", "--prior", "vamp", "--pseudo-inputs", "5", "--warmup-epochs", "1", "--grad-norm", "unit",
                 "--nll-samples", "3", "--batch-size", "256", "--quiet", "--out", str(out)])
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["model"], config["prior"], config["arch"]) == ("hvae", "vamp", "gated_mlp")
    assert "log_likelihood" in json.loads((out / "metrics.json").read_text())
    assert isinstance(vaekit.load(out).prior_module, VampPrior)


def test_cli_continues_an_elbo_run_on_the_iwae_bound_with_init_from(tmp_path, capsys):
    """`--init-from RUN --num-samples k`: the new run starts from RUN's weights (lr 1e-12: it ends where it began)
    and trains on the k-sample bound; weights that do not fit, or no weights, are one line and nothing written."""
    from vaekit.objectives import ImportanceWeightedBound

    shape = ["--data", "digits", "--arch", "gated_mlp", "--hidden-dims", "16", "--latent-dim", "2", "--top-latent-dim", "2",
             "--prior", "vamp", "--pseudo-inputs", "5", "--batch-size", "256", "--nll-samples", "0", "--quiet"]
    assert main(["train", "hvae", *shape, "--epochs", "1", "--out", str(tmp_path / "elbo")]) == 0
    assert main(["train", "hvae", *shape, "--epochs", "1", "--lr", "1e-12", "--num-samples", "3",
                 "--init-from", str(tmp_path / "elbo"), "--out", str(tmp_path / "iwae")]) == 0
    start, tuned = vaekit.load(tmp_path / "elbo"), vaekit.load(tmp_path / "iwae")
    assert isinstance(tuned.objective, ImportanceWeightedBound) and tuned.objective.num_samples == 3
    for k, v in start.state_dict().items():
        torch.testing.assert_close(tuned.state_dict()[k], v, rtol=0, atol=1e-9, msg=k)
    assert (tmp_path / "iwae" / "train.yaml").read_text().count(f"init_from: {tmp_path / 'elbo'}") == 1
    capsys.readouterr()
    for source, message in ((tmp_path / "elbo", "its weights do not fit this hvae"), (tmp_path / "nowhere", "no model.safetensors there")):
        wider = [*shape[:5], "32", *shape[6:]] if source.name == "elbo" else shape
        assert main(["train", "hvae", *wider, "--epochs", "1", "--init-from", str(source), "--out", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
        assert not (tmp_path / "bad").exists()


def test_the_iwae_bound_over_both_layers_rises_from_the_elbo_to_the_exact_marginal():
    """num_samples = k: the k-sample bound over (z₁, z₂) drawn ancestrally from q. In expectation it is
    the ELBO at k = 1 (which HierarchicalELBO computes with the bottom KL in closed form), it rises
    with k, and it stays below, and approaches, the exact log p(x) of the linear-Gaussian model."""
    from vaekit.objectives import ImportanceWeightedBound

    torch.manual_seed(0)
    model, marginal = linear_two_layer_model()
    x = marginal.sample((1,))
    exact = float(marginal.log_prob(x))
    bounds = {}
    with torch.no_grad():
        for k, repeats in ((1, 40_000), (10, 4_000), (1000, 40)):
            model.objective = ImportanceWeightedBound(num_samples=k)
            bounds[k] = float(model.loss(x.expand(repeats, M))["iwae"])
        model.objective = HierarchicalELBO()
        elbo = float(model.loss(x.expand(40_000, M))["elbo"])
    assert bounds[1] == pytest.approx(elbo, abs=0.03)
    assert bounds[1] < bounds[10] - 0.01 < bounds[1000] - 0.01 and bounds[1000] < exact + 0.01
    assert bounds[1000] == pytest.approx(exact, abs=0.02)


def test_hvae_num_samples_trains_the_vamp_hvae_on_the_iwae_bound(tmp_path):
    from vaekit.objectives import ImportanceWeightedBound

    torch.manual_seed(0)
    options = dict(arch="gated_mlp", hidden_dims=(16,), latent_dim=2, top_latent_dim=2, prior="vamp", pseudo_inputs=5)
    model = vaekit.create("hvae", (1, 8, 8), num_samples=4, **options)
    assert isinstance(model.objective, ImportanceWeightedBound) and model.objective.num_samples == 4
    assert isinstance(vaekit.create("hvae", (1, 8, 8), **options).objective, HierarchicalELBO)
    x = vaekit.data.load_digits("train").x[:32].bernoulli()
    out = model.loss(x)
    out["loss"].backward()
    assert float(out["iwae"].detach()) >= float(out["elbo"].detach())  # log-mean-exp ≥ mean, draw by draw
    for name, p in model.named_parameters():  # every part learns from the bound, pseudo-inputs included
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    # an ELBO-trained run continues on the IWAE bound: the same weights under the other objective
    elbo_model = vaekit.create("hvae", (1, 8, 8), **options)
    elbo_model.save(tmp_path / "run")
    tuned = vaekit.load(tmp_path / "run", num_samples=8)
    assert isinstance(tuned.objective, ImportanceWeightedBound) and tuned.config["options"]["num_samples"] == 8
    for k, v in elbo_model.state_dict().items():
        torch.testing.assert_close(tuned.state_dict()[k], v)
    with pytest.raises(ConfigError, match="no KL weight to warm up"):
        vaekit.create("hvae", (1, 8, 8), num_samples=4, warmup_steps=10, **options)
    with pytest.raises(ConfigError, match="num_samples must be a positive integer"):
        vaekit.create("hvae", (1, 8, 8), num_samples=0, **options)
    with pytest.raises(ConfigError, match="no KL weight to warm up"):
        vaekit.fit(model, x, epochs=1, warmup_epochs=2, quiet=True)


def test_hvae_without_hidden_dims_is_a_config_error_naming_the_option():
    """hidden_dims=() leaves the dense layers between z₁ and z₂ without a width: a ConfigError, not an IndexError."""
    with pytest.raises(ConfigError, match="hidden_dims"):
        vaekit.create("hvae", input_shape=(4,), latent_dim=2, top_latent_dim=2, hidden_dims=())
    assert vaekit.create("hvae", input_shape=(4,), latent_dim=2, top_latent_dim=2, hidden_dims=(8,)).latent_dim == 4
