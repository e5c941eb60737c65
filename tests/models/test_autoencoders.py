"""The deterministic autoencoder presets (survey §1.2–1.5)."""

import numpy as np
import pytest
import torch
from scipy.linalg import subspace_angles
from sklearn.decomposition import PCA

import vaekit
from vaekit.apps import normalize_for_pca
from vaekit.data import load_digits
from vaekit.distributions import PointMass
from vaekit.errors import ConfigError
from vaekit.models import get_preset

PRESETS = {
    "ae": {},
    "linear_ae": {},
    "sparse_ae": {"k": 2, "weight": 0.1},
    "denoising_ae": {"noise": "mask", "noise_level": 0.25},
    "contractive_ae": {"weight": 0.2},
}
TERMS = {"sparse_ae": "sparsity", "contractive_ae": "contractive"}


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_presets_build_a_deterministic_model_with_named_terms(name, arch, tmp_path):
    torch.manual_seed(0)
    model = vaekit.create(name, input_shape=(1, 8, 8), latent_dim=4, arch=arch, hidden_dims=(16,), channels=(4, 8), **PRESETS[name])
    assert model.prior_module is None and get_preset(name).family == "autoencoder"
    assert all(get_preset(name).docs.get(option) for option in get_preset(name).defaults)  # every option documented
    x = torch.rand(3, 1, 8, 8)
    q = model.encode(x)
    assert isinstance(q, PointMass) and q.batch_shape == (3,) and q.event_shape == (4,)
    out = model.loss(x)
    assert {"loss", "reconstruction"} <= set(out) and torch.isfinite(out["loss"])
    if name in TERMS:
        assert TERMS[name] in out
    out["loss"].backward()
    assert model.reconstruct(x).shape == x.shape and model.transform(x).shape == (3, 4)
    with pytest.raises(ConfigError, match="deterministic"):
        model.sample(2)
    model.save(tmp_path / name)  # the config rebuilds the same model
    loaded = vaekit.load(tmp_path / name)
    torch.testing.assert_close(loaded.transform(x), model.eval().transform(x))


def test_linear_ae_is_linear_whatever_the_shared_options():
    model = vaekit.create("linear_ae", input_shape=(1, 8, 8), latent_dim=3, hidden_dims=(64, 32), arch="conv", likelihood="bernoulli")
    assert model.config["arch"] == "mlp" and model.config["hidden_dims"] == [] and model.config["likelihood"] == "gaussian"
    a, b = 0.7, -1.3  # affine maps: f(au + bv) = a f(u) + b f(v) + (1 − a − b) f(0)
    encoder, decoder = model.transform, (lambda z: model.decode(z).mean)
    for f, shape in ((encoder, (5, 1, 8, 8)), (decoder, (5, 3))):
        u, v = torch.randn(shape), torch.randn(shape)
        torch.testing.assert_close(f(a * u + b * v), a * f(u) + b * f(v) + (1 - a - b) * f(torch.zeros(shape)))


def test_sparse_ae_codes_have_exactly_k_nonzeros_and_options_are_checked():
    model = vaekit.create("sparse_ae", input_shape=(12,), latent_dim=6, hidden_dims=(10,), k=3)
    x = torch.rand(4, 12)
    out = model.loss(x)  # k > 0: no penalty by default, but the code's L1 norm is still reported
    assert torch.equal(out["loss"], out["reconstruction"])
    torch.testing.assert_close(out["sparsity"], model.transform(x).abs().sum(1).mean())
    assert ((model.transform(torch.rand(50, 12)) != 0).sum(1) == 3).all()
    loaded_options = vaekit.create("sparse_ae", input_shape=(12,), layer_weights="0.5,1").objective.sparsity.layer_weights
    assert loaded_options == (0.5, 1.0)  # the CLI's comma-separated form
    with pytest.raises(ConfigError, match="exceeds latent_dim"):
        vaekit.create("sparse_ae", input_shape=(12,), latent_dim=4, k=5)
    with pytest.raises(ConfigError, match="k > 0.*or weight > 0"):
        vaekit.create("sparse_ae", input_shape=(12,), k=0, weight=0.0)


def test_linear_ae_trained_with_mse_spans_the_pca_subspace():
    """Survey §1.5: on x̂_ij = (x_ij − mean_j)/√M, the linear AE reaches PCA's error and subspace."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        xn, _, m = normalize_for_pca(load_digits("all").x)  # (1797, 64) float64
        x = torch.from_numpy(xn)
        k = 5
        model = vaekit.create("linear_ae", input_shape=(64,), latent_dim=k).double()
        with torch.no_grad():  # biases start at 0 (the data are centred); weights keep their random init
            model.posterior.net.bias.zero_()
            model.decoder.net[0].bias.zero_()
        steps = 800
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 - s / steps)
        for _ in range(steps):  # full batch, deterministic
            optimizer.zero_grad()
            (model.loss(x)["loss"] * m).backward()  # Σ_i ‖x̂_i − D(E(x̂_i))‖²
            optimizer.step()
            schedule.step()
    finally:
        torch.set_num_threads(threads)
    ae_error = float(((x - model.reconstruct(x)) ** 2).sum())
    pca = PCA(n_components=k).fit(xn)
    pca_error = float(((xn - pca.inverse_transform(pca.transform(xn))) ** 2).sum())
    assert ae_error <= 1.02 * pca_error  # within 2 % of PCA's error …
    assert ae_error >= pca_error * (1 - 1e-9)  # … which no rank-k linear map can beat
    decoder = model.decoder.net[0].weight.detach().numpy()  # (64, k): its columns span the AE's subspace
    largest_angle = np.degrees(subspace_angles(decoder, pca.components_.T)).max()
    assert largest_angle < 3.0
