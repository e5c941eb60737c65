"""Free bits (Kingma et al. 2016, eq. 15) for every posterior family, and the per-coordinate KL it clamps.

The per-coordinate terms of a full-covariance posterior are checked against an independent
computation: the chain rule KL(q ‖ p) = Σ_i E_q[KL(q(z_i | z_<i) ‖ p(z_i))] written with the
Schur complements of Σ = LLᵀ in float64 numpy (conditional variance and the variance of the
conditional mean), not with the Cholesky diagonal the library uses; their sum against
``torch.distributions.kl_divergence`` of two ``MultivariateNormal``s.
"""

import copy

import numpy as np
import pytest
import torch
from torch.distributions import Independent, MultivariateNormal, Normal, kl_divergence

import vaekit
from vaekit.data import load_digits
from vaekit.distributions import FullCovarianceGaussianPosterior, StandardNormalPrior, kl_per_dimension, sample_and_kl
from vaekit.errors import ConfigError
from vaekit.objectives import ELBO, KLCapacity, free_bits_kl

FAMILIES = ["diagonal", "full_covariance", "planar", "radial", "iaf"]
TINY = 1e-12  # free bits λ → 0: nothing is clipped as long as every KL term exceeds it
D = 3


def chain_rule_terms_reference(loc: np.ndarray, cov: np.ndarray, m: np.ndarray, s: np.ndarray) -> np.ndarray:
    """E_{z_<i}[KL(N(c_i(z_<i), v_i) ‖ N(m_i, s_i²))] for one Gaussian N(loc, cov), by Schur complements.

    v_i = Σ_ii − Σ_{i,<i} Σ_{<i,<i}⁻¹ Σ_{<i,i} is the conditional variance; the conditional mean
    c_i has mean loc_i and variance Σ_ii − v_i, so E(c_i − m_i)² = (loc_i − m_i)² + Σ_ii − v_i.
    """
    terms = []
    for i in range(len(loc)):
        if i:
            a, b = cov[:i, :i], cov[i, :i]
            v = cov[i, i] - b @ np.linalg.solve(a, b)
        else:
            v = cov[0, 0]
        expected_sq = (loc[i] - m[i]) ** 2 + cov[i, i] - v
        terms.append(0.5 * ((v + expected_sq) / s[i] ** 2 - 1 - np.log(v / s[i] ** 2)))
    return np.array(terms)


def correlated_posterior(batch: int = 6, d: int = 4, seed: int = 0) -> MultivariateNormal:
    torch.manual_seed(seed)
    head = FullCovarianceGaussianPosterior(5, d)
    with torch.no_grad():
        head.net.bias[2 * d :].uniform_(-1.5, 1.5)  # strong correlations
        head.net.bias[:d].uniform_(-1, 1)
        return head(torch.randn(batch, 5))


# -- the per-coordinate split -------------------------------------------------------------------
@pytest.mark.parametrize("prior", ["standard", "diagonal"])
def test_full_covariance_split_matches_the_chain_rule_and_sums_to_torch_kl(prior):
    q = correlated_posterior()
    d = q.event_shape[0]
    if prior == "standard":
        m, s = torch.zeros(d), torch.ones(d)
    else:
        m, s = torch.tensor([0.5, -1.0, 0.0, 2.0]), torch.tensor([0.7, 1.5, 2.0, 0.4])
    p = Independent(Normal(m, s), 1)
    per_dim = kl_per_dimension(q, p)
    assert per_dim.shape == (6, d)
    cov = q.covariance_matrix.double().numpy()
    for b in range(6):
        expected = chain_rule_terms_reference(q.loc[b].double().numpy(), cov[b], m.double().numpy(), s.double().numpy())
        np.testing.assert_allclose(per_dim[b].numpy(), expected, rtol=1e-4, atol=1e-5)
    torch_kl = kl_divergence(MultivariateNormal(q.loc, scale_tril=q.scale_tril), MultivariateNormal(m, covariance_matrix=torch.diag(s**2)))
    torch.testing.assert_close(per_dim.sum(-1), torch_kl, rtol=1e-5, atol=1e-5)
    assert (per_dim > -1e-6).all()  # each term is an expected KL


def test_the_split_exceeds_the_marginal_kls_by_the_total_correlation():
    q = correlated_posterior(seed=3)
    var = q.covariance_matrix.diagonal(dim1=-2, dim2=-1)
    marginal = kl_divergence(Normal(q.loc, var.sqrt()), Normal(0.0, 1.0))
    total_correlation = 0.5 * (var.log().sum(-1) - torch.logdet(q.covariance_matrix))
    split = kl_per_dimension(q, StandardNormalPrior(4)())
    torch.testing.assert_close(split.sum(-1) - marginal.sum(-1), total_correlation, rtol=1e-4, atol=1e-4)
    assert (total_correlation > 0.1).all()  # the old marginal split lost this much


def test_diagonal_split_is_the_marginal_kl():
    torch.manual_seed(0)
    q = Independent(Normal(torch.randn(5, 3), torch.rand(5, 3) + 0.2), 1)
    m, s = torch.tensor([0.3, 0.0, -1.0]), torch.tensor([1.0, 2.0, 0.5])
    per_dim = kl_per_dimension(q, Independent(Normal(m, s), 1))
    expected = torch.log(s / q.base_dist.scale) + (q.base_dist.scale**2 + (q.base_dist.loc - m) ** 2) / (2 * s**2) - 0.5
    torch.testing.assert_close(per_dim, expected)


# -- free bits: clipping per coordinate ----------------------------------------------------------
def test_free_bits_clip_each_chain_rule_term_of_a_full_covariance_posterior():
    q = correlated_posterior(batch=16)
    p = StandardNormalPrior(4)()
    kl = kl_divergence(q, p)
    cov = q.covariance_matrix.double().numpy()
    zeros, ones = np.zeros(4), np.ones(4)
    reference = np.mean([chain_rule_terms_reference(q.loc[b].double().numpy(), cov[b], zeros, ones) for b in range(16)], axis=0)
    lam = float(np.median(reference))  # some coordinates above λ, some below
    expected = np.maximum(reference, lam).sum()
    assert (reference < lam).any() and (reference > lam).any()
    torch.testing.assert_close(free_bits_kl(q, p, kl, lam), torch.tensor(expected, dtype=torch.float32), rtol=1e-4, atol=1e-4)
    # λ above every term: the constant D·λ, no gradient toward a smaller KL
    loc = q.loc.detach().requires_grad_()
    q_grad = MultivariateNormal(loc, scale_tril=q.scale_tril.detach())
    big = free_bits_kl(q_grad, p, kl_divergence(q_grad, p), 1e3)
    assert big.item() == 4 * 1e3
    big.backward()
    assert loc.grad is None or torch.all(loc.grad == 0)


def test_free_bits_on_a_flow_clip_the_total_at_lambda_times_d():
    torch.manual_seed(0)
    model = vaekit.create("vae", input_shape=(6,), latent_dim=D, hidden_dims=(8,), likelihood="gaussian", posterior="planar", flow_steps=2)
    q, p = model.encode(torch.randn(16, 6)), model.prior()
    with pytest.raises(NotImplementedError):
        kl_per_dimension(q, p)  # a flow has no per-coordinate split
    _, _, kl = sample_and_kl(q, p)
    torch.testing.assert_close(free_bits_kl(q, p, kl, 1e3), torch.tensor(D * 1e3))
    lam = float(kl.detach().mean()) / (2 * D)
    torch.testing.assert_close(free_bits_kl(q, p, kl, lam), kl.mean())


# -- free bits at λ → 0 is the ELBO, for every family and every option that touches the KL ---------
def _model(posterior: str, num_classes: int | None = None, **options) -> vaekit.LatentVariableModel:
    torch.manual_seed(0)
    model = vaekit.create(
        "vae", input_shape=(6,), latent_dim=D, hidden_dims=(8,), likelihood="gaussian", posterior=posterior,
        flow_steps=2, num_classes=num_classes, **options,
    )
    head = model.posterior
    with torch.no_grad():  # a KL well above 0 (even its one-sample estimate), and correlations for full_covariance
        head.net.bias[:D] += 1.5
        if posterior == "full_covariance":
            head.net.bias[2 * D :] = 0.8
    return model


def _loss(model, objective, x, y, seed=1):
    model.objective = objective
    torch.manual_seed(seed)  # the same z for both objectives
    return model.loss(x, y)


CASES = {
    # name: (ELBO keyword arguments, model.step, expected loss from the unclipped terms)
    "elbo": ({}, 0, lambda out, kl: out["reconstruction"] + kl),
    "warmup_done": ({"warmup_steps": 10}, 25, lambda out, kl: out["reconstruction"] + kl),
    "warmup_mid": ({"warmup_steps": 10}, 4, lambda out, kl: out["reconstruction"] + 0.4 * kl),
    "beta": ({"beta": 4.0}, 0, lambda out, kl: out["reconstruction"] + 4.0 * kl),
    "capacity": ({"beta": 0.0, "regularisers": [KLCapacity(5.0, 10, gamma=100.0)]}, 3,
                 lambda out, kl: out["reconstruction"] + 100.0 * (kl - 1.5).abs()),
}


@pytest.mark.parametrize("conditional", [False, True], ids=["unconditional", "num_classes"])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("posterior", FAMILIES)
def test_free_bits_at_zero_is_the_unclipped_objective(posterior, case, conditional):
    options, step, expected = CASES[case]
    model = _model(posterior, num_classes=3 if conditional else None)
    model.step = step
    x = torch.randn(16, 6)
    y = torch.arange(16) % 3 if conditional else None
    kwargs = dict(options)
    regularisers = kwargs.pop("regularisers", ())
    out = _loss(model, ELBO(regularisers, free_bits=TINY, **kwargs), x, y)
    plain = _loss(model, ELBO(regularisers, free_bits=0.0, **kwargs), x, y)
    assert out["kl"] > 0.5  # every term far above λ: nothing may be clipped
    torch.testing.assert_close(out["kl"], plain["kl"])  # same z, same KL estimate
    torch.testing.assert_close(out["loss"], plain["loss"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out["loss"], expected(out, out["kl"]), rtol=1e-5, atol=1e-5)
    if case in ("elbo", "warmup_done"):
        torch.testing.assert_close(out["loss"], -out["elbo"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("posterior", FAMILIES)
def test_the_vae_presets_free_bits_option_at_zero_is_the_elbo(posterior):
    x = torch.randn(16, 6)
    for preset, kwargs in (("vae", {}), ("conditional_vae", {"num_classes": 3})):
        torch.manual_seed(0)
        model = vaekit.create(preset, input_shape=(6,), latent_dim=D, hidden_dims=(8,), likelihood="gaussian",
                              posterior=posterior, flow_steps=2, free_bits=TINY, **kwargs)
        with torch.no_grad():
            model.posterior.net.bias[:D] += 1.5
            if posterior == "full_covariance":
                model.posterior.net.bias[2 * D :] = 0.8
        y = torch.arange(16) % 3 if kwargs else None
        torch.manual_seed(1)
        out = model.loss(x, y)
        torch.testing.assert_close(out["loss"], -out["elbo"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("preset", ["iwae", "miwae", "beta_vae"])
def test_presets_without_free_bits_refuse_the_option(preset):
    with pytest.raises(ConfigError, match="unknown option 'free_bits'"):
        vaekit.create(preset, input_shape=(6,), latent_dim=D, hidden_dims=(8,), free_bits=0.5)


def test_free_bits_must_be_a_finite_number_of_nats():
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="free_bits"):
            ELBO(free_bits=bad)


# -- training: free bits no longer cost a full-covariance VAE its correlations ----------------------
def _digits_elbo(free_bits: float, train: torch.Tensor, test: torch.Tensor) -> float:
    torch.manual_seed(0)
    model = vaekit.create("vae", input_shape=(1, 8, 8), latent_dim=8, hidden_dims=(64,), arch="mlp",
                          posterior="full_covariance", free_bits=free_bits)
    vaekit.fit(model, train, epochs=10, batch_size=64, lr=3e-3, quiet=True, seed=0)
    evaluation = copy.copy(model.objective)
    evaluation.free_bits = 0.0
    model.objective = evaluation
    torch.manual_seed(1)
    with torch.no_grad():
        return float(model.loss(test)["elbo"])


@pytest.mark.slow
def test_full_covariance_vae_with_free_bits_trains_as_well_as_without():
    train, test = load_digits("train").x, load_digits("test").x
    plain, clipped = _digits_elbo(0.0, train, test), _digits_elbo(0.01, train, test)
    # 230 steps: the marginal split cost ≈ 10 nats here (≈ 17 after full training); the exact split ≈ 0
    assert clipped > plain - 3.0, (plain, clipped)
