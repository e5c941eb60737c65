"""The VQ-VAE's code prior: the gated PixelCNN's causal mask, its NLL, its fit and its samples."""

import itertools
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import vaekit
from vaekit.distributions import GatedPixelCNN
from vaekit.samplers import fit_prior
from vaekit.samplers.code_prior import fit_code_prior, nll_bits_per_code


@pytest.mark.parametrize("grid, layers, kernel_size", [((5, 5), 2, 5), ((4, 6), 5, 3)])
def test_each_position_depends_on_every_earlier_position_and_on_nothing_else(grid, layers, kernel_size):
    """Autograd: ∂logits(i)/∂input(j) is zero for j ≥ i in raster order and non-zero for every j < i (no blind spot)."""
    torch.manual_seed(0)
    h, w = grid
    net = GatedPixelCNN(4, grid, channels=6, layers=layers, kernel_size=kernel_size).double()
    e = torch.randn(1, 6, h, w, dtype=torch.float64, requires_grad=True)
    logits = net.logits_from_embedding(e)
    for r, c in itertools.product(range(h), range(w)):
        (grad,) = torch.autograd.grad(logits[0, :, r, c].sum(), e, retain_graph=True)
        depends = grad[0].abs().sum(0) > 0  # (h, w): does position (r, c) see this input?
        earlier = torch.arange(h * w).view(h, w) < r * w + c
        assert torch.equal(depends, earlier), f"position {(r, c)} sees {depends.int().tolist()}"


def test_a_too_shallow_network_is_refused():
    with pytest.raises(ValueError, match="layers ≥ 3"):
        GatedPixelCNN(4, (7, 7), layers=2, kernel_size=5)


def test_log_prob_is_a_normalised_distribution_over_all_grids():
    """Σ_k p(k) = 1 over all K^(h·w) grids, which holds only for a causal factorisation."""
    torch.manual_seed(1)
    net = GatedPixelCNN(3, (2, 2), channels=5, layers=1, kernel_size=3).double()
    grids = torch.tensor(list(itertools.product(range(3), repeat=4))).view(-1, 2, 2)  # all 81 grids
    with torch.no_grad():
        total = net().log_prob(grids).exp().sum()
    assert float(total) == pytest.approx(1.0, abs=1e-10)


def test_nll_in_bits_is_the_cross_entropy_over_ln_2():
    torch.manual_seed(2)
    net = GatedPixelCNN(5, (3, 4), channels=8, layers=3, kernel_size=3)
    grids = torch.randint(0, 5, (7, 3, 4))
    logits = net.logits(grids).detach().double().numpy()  # (7, 5, 3, 4)
    log_softmax = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    picked = np.take_along_axis(log_softmax, grids.numpy()[:, None], axis=1)
    expected = -picked.mean() / math.log(2)
    assert nll_bits_per_code(net, grids) == pytest.approx(expected, rel=1e-5)
    with torch.no_grad():
        cross_entropy = float(F.cross_entropy(net.logits(grids), grids))
    assert nll_bits_per_code(net, grids) == pytest.approx(cross_entropy / math.log(2), rel=1e-5)


def _diagonal_pattern(n, k=4, size=4, seed=0):
    """Grids k[r, c] = (s + r + c) mod K with one random shift s per grid: log2 K bits for the first code, 0 after."""
    s = torch.randint(0, k, (n, 1, 1), generator=torch.Generator().manual_seed(seed))
    r, c = torch.arange(size).view(size, 1), torch.arange(size).view(1, size)
    return (s + r + c) % k


def test_the_prior_learns_a_deterministic_pattern_and_samples_it():
    train, test = _diagonal_pattern(256), _diagonal_pattern(64, seed=1)
    prior, history = fit_code_prior(train, 4, test, epochs=8, batch_size=64, lr=2e-2, channels=16, layers=2, kernel_size=5)
    # the entropy is log2(4) / 16 = 0.125 bits per code (first code uniform, the rest determined); uniform codes score 2
    assert history[-1]["test_nll_bits"] < 0.3 < history[0]["test_nll_bits"]
    torch.manual_seed(3)
    samples = prior().sample((50,))
    assert samples.shape == (50, 4, 4) and samples.dtype == torch.long
    assert int(samples.min()) >= 0 and int(samples.max()) < 4
    following = (samples - samples[:, :1, :1] - torch.arange(4).view(4, 1) - torch.arange(4).view(1, 4)) % 4 == 0
    assert following.float().mean() > 0.95  # the samples continue the pattern from their first code


def test_fit_prior_attaches_saves_and_reloads_the_prior(tmp_path):
    torch.manual_seed(4)
    model = vaekit.create("vq_vae", input_shape=(1, 8, 8), latent_dim=3, channels=(4, 8), codebook_size=6)
    x = torch.rand(40, 1, 8, 8)
    with pytest.raises(vaekit.ConfigError, match="fit-prior"):
        model.sample(2)
    with pytest.raises(vaekit.ConfigError, match="holds no saved model"):
        fit_prior(model, x, out_dir=tmp_path / "empty")
    model.save(tmp_path / "run")
    fit = fit_prior(model, x, x[:10], epochs=2, channels=8, out_dir=tmp_path / "run")
    assert fit.test_nll_bits == pytest.approx(nll_bits_per_code(fit.prior, model.code_indices(x[:10])))
    assert 0 <= fit.train_nll_bits and [r["epoch"] for r in fit.history] == [1, 2]
    info = json.loads((tmp_path / "run" / "prior.json").read_text())
    assert info["test_nll_bits_per_code"] == pytest.approx(fit.test_nll_bits) and info["network"]["num_codes"] == 6
    assert model.sample(3).shape == (3, 1, 8, 8)

    loaded = vaekit.load(tmp_path / "run")
    assert loaded.code_prior is not None
    grids = model.code_indices(x[:5])
    np.testing.assert_allclose(loaded.code_prior().log_prob(grids).detach().numpy(), fit.prior().log_prob(grids).detach().numpy(), rtol=1e-6)
    torch.manual_seed(5)
    a = loaded.sample(4)
    torch.manual_seed(5)
    np.testing.assert_allclose(a.numpy(), model.sample(4).numpy(), rtol=1e-5, atol=1e-6)

    model.train()
    model.loss(x[:8])  # the model changes (an EMA step): its saved prior no longer belongs to it
    model.save(tmp_path / "run2")
    (tmp_path / "run2" / "prior.safetensors").write_bytes((tmp_path / "run" / "prior.safetensors").read_bytes())
    (tmp_path / "run2" / "prior.json").write_text((tmp_path / "run" / "prior.json").read_text())
    with pytest.warns(UserWarning, match="fitted to other weights"):
        stale = vaekit.load(tmp_path / "run2")
    assert stale.code_prior is None
    with pytest.raises(vaekit.ConfigError, match="differs from the one saved"):
        fit_prior(model.eval(), x, out_dir=tmp_path / "run")

    damaged = bytearray((tmp_path / "run" / "prior.safetensors").read_bytes())
    damaged[-3] ^= 0xFF  # a flipped bit inside the tensor data
    (tmp_path / "run" / "prior.safetensors").write_bytes(bytes(damaged))
    with pytest.warns(UserWarning, match="integrity check"):
        broken = vaekit.load(tmp_path / "run")
    with pytest.raises(vaekit.ConfigError, match="fit-prior"):
        broken.sample(1)


def test_fit_prior_refuses_other_models_and_bad_budgets():
    vae = vaekit.create("vae", input_shape=(4,), latent_dim=2, hidden_dims=(8,))
    with pytest.raises(vaekit.ConfigError, match="vq_vae"):
        fit_prior(vae, torch.rand(5, 4))
    model = vaekit.create("vq_vae", input_shape=(1, 8, 8), latent_dim=2, channels=(4,), codebook_size=4)  # 4×4 grid
    with pytest.raises(vaekit.ConfigError, match="epochs"):
        fit_prior(model, torch.rand(5, 1, 8, 8), epochs=0)
    with pytest.raises(vaekit.ConfigError, match="layers must be an integer ≥ 2"):
        fit_prior(model, torch.rand(5, 1, 8, 8), layers=1)


def test_fit_prior_refuses_non_finite_examples_and_takes_a_dataset():
    """NaN inputs are refused (their codes would be arbitrary indices), naming x or x_test; a vaekit Dataset gives the grids of its x."""
    from vaekit.data import as_dataset

    torch.manual_seed(6)
    model = vaekit.create("vq_vae", input_shape=(1, 8, 8), latent_dim=2, channels=(4,), codebook_size=3)
    x = torch.rand(12, 1, 8, 8)
    bad = x.clone()
    bad[3, 0, 2, 2] = float("nan")
    with pytest.raises(vaekit.DataError, match=r"^x has 1 non-finite value"):
        fit_prior(model, bad, epochs=1, channels=4)
    with pytest.raises(vaekit.DataError, match=r"^x_test has 1 non-finite value"):
        fit_prior(model, x, bad, epochs=1, channels=4)
    with pytest.raises(vaekit.DataError, match=r"^x_test holds no examples"):
        fit_prior(model, x, x[:0], epochs=1, channels=4)
    fit = fit_prior(model, as_dataset(x, name="x"), epochs=1, channels=4)
    assert fit.train_nll_bits == pytest.approx(nll_bits_per_code(fit.prior, model.code_indices(x)))


@pytest.mark.parametrize("budget", [dict(epochs=float("nan")), dict(lr=float("inf")), dict(lr=float("nan")), dict(lr="0.01"),
                                    dict(channels="8"), dict(kernel_size=float("nan")), dict(layers=float("inf"))])
def test_non_finite_or_non_numeric_budgets_are_refused_naming_the_argument(budget):
    """NaN, infinite or string budgets are ConfigErrors naming the argument, not ValueError/TypeError from int() or >."""
    model = vaekit.create("vq_vae", input_shape=(1, 8, 8), latent_dim=2, channels=(4,), codebook_size=4)
    with pytest.raises(vaekit.ConfigError, match=next(iter(budget))):
        fit_prior(model, torch.rand(5, 1, 8, 8), **{"epochs": 1, **budget})


def test_fitting_a_code_prior_leaves_torchs_global_random_state_alone():
    """The prior's weights come from its seed (two fits agree), and draws after a fit are the ones that
    follow the caller's own seed, as without the fit (it used to reseed the global generator)."""
    grids = torch.randint(0, 3, (8, 2, 2), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first, _ = fit_code_prior(grids, 3, epochs=1, batch_size=4, channels=4, quiet=True, seed=5)
    assert torch.equal(torch.rand(3), expected)
    second, _ = fit_code_prior(grids, 3, epochs=1, batch_size=4, channels=4, quiet=True, seed=5)
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)
