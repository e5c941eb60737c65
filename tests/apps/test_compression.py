"""Compression: quantiser, codes and reconstructions, the PCA comparison."""

import numpy as np
import pytest
import torch

import vaekit
from tests.apps.models import orthonormal, projector
from vaekit.apps import Compressor, UniformQuantizer, compare_with_pca, normalize_for_pca, pca_reconstruction_errors
from vaekit.errors import ConfigError, DataError


def test_uniform_quantizer_levels_and_error_bound():
    torch.manual_seed(0)
    codes = torch.randn(500, 3) * torch.tensor([1.0, 10.0, 0.0])  # the last dimension is constant
    for bits in (1, 4, 8):
        quantizer = UniformQuantizer(bits).fit(codes)
        levels = quantizer.quantize(codes)
        assert levels.dtype == torch.int64 and levels.min() >= 0 and levels.max() <= 2**bits - 1
        error = (quantizer.dequantize(levels) - codes).abs()
        half_step = (codes.amax(0) - codes.amin(0)) / (2 * (2**bits - 1))
        assert torch.all(error <= half_step + 1e-5)
        assert torch.all(levels[:, 2] == 0) and torch.all(quantizer.dequantize(levels)[:, 2] == 0)
    assert UniformQuantizer(8).fit(codes).quantize(codes.amax(0, keepdim=True) + 5).tolist() == [[255, 255, 0]]  # clipped


def test_float_codes_reproduce_the_model_and_bits_are_counted():
    torch.manual_seed(0)
    model = vaekit.create("ae", input_shape=(1, 4, 4), latent_dim=3, hidden_dims=(8,), arch="mlp")
    x = torch.rand(20, 1, 4, 4)
    exact = Compressor(model, bits=None).fit(x)
    torch.testing.assert_close(exact.transform(x), model.transform(x))
    torch.testing.assert_close(exact.reconstruct(x), model.reconstruct(x))
    assert exact.bits_per_code_ == 3 * 32
    compact = Compressor(model, bits=6).fit(x)
    assert compact.bits_per_code_ == 18 and compact.compression_ratio(8) == pytest.approx(16 * 8 / 18)
    np.testing.assert_allclose(compact.errors(x), ((x - compact.reconstruct(x)) ** 2).mean((1, 2, 3)).double().numpy(), rtol=1e-6)
    assert compact.score(x) == pytest.approx(-compact.mse(x))
    with pytest.raises(DataError, match="codes must have shape"):
        compact.inverse_transform(torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ConfigError, match="not fitted"):
        Compressor(model).transform(x)
    with pytest.raises(ConfigError, match="bits must be in 1..32"):
        Compressor(model, bits=40).fit(x)


def test_pca_errors_match_an_svd_and_a_pca_projector_matches_pca():
    g = torch.Generator().manual_seed(0)
    train = torch.randn(300, 10, generator=g) @ torch.diag(torch.linspace(3, 0.1, 10)) + 1.0
    test = torch.randn(100, 10, generator=g) @ torch.diag(torch.linspace(3, 0.1, 10)) + 1.0
    xtr, xte = train.double().numpy(), test.double().numpy()
    mean = xtr.mean(0)
    _, _, vt = np.linalg.svd(xtr - mean, full_matrices=False)
    for n in (1, 4):
        recon = (xte - mean) @ vt[:n].T @ vt[:n] + mean
        assert pca_reconstruction_errors(train, test, [n])[n] == pytest.approx(((xte - recon) ** 2).mean(), rel=1e-9)
    # A model that is exactly PCA's projection (on centred data) has exactly PCA's error.
    centred_tr, centred_te = train - torch.from_numpy(mean).float(), test - torch.from_numpy(mean).float()
    model = projector(torch.from_numpy(vt[:4].T.copy()).float())
    report = compare_with_pca(model, centred_tr, centred_te, bits=None)
    assert report["model_mse"] == pytest.approx(report["pca_mse"], rel=1e-4)
    assert sorted(report["pca_curve"]) == [1, 2, 4, 8] and report["latent_dim"] == 4
    # A model on another subspace does worse than PCA.
    other = compare_with_pca(projector(orthonormal(10, 4)), centred_tr, centred_te, bits=8)
    assert other["model_mse"] > other["pca_mse"] and "pca_mse_quantized" in other


def test_normalisation_of_survey_section_1_5():
    x = torch.tensor([[1.0, 2.0], [3.0, 6.0], [5.0, 10.0], [7.0, 2.0]])
    xn, mean, m = normalize_for_pca(x)
    assert m == 4 and np.allclose(mean, [4.0, 5.0])
    np.testing.assert_allclose(xn.T @ xn, np.cov(x.numpy().T, bias=True))  # X̂ᵀX̂ is the covariance
    test_n, _, _ = normalize_for_pca(x[:1], mean, m)
    np.testing.assert_allclose(test_n, xn[:1])


def test_the_quantizer_takes_numpy_codes_and_refuses_use_before_fit():
    """Levels of numpy codes equal those of the same codes as a tensor; quantize before fit is a ConfigError."""
    codes = np.random.default_rng(0).normal(size=(50, 3))
    from_tensor = UniformQuantizer(4).fit(torch.from_numpy(codes))
    from_numpy = UniformQuantizer(4).fit(codes)
    levels = from_numpy.quantize(codes)
    torch.testing.assert_close(levels, from_tensor.quantize(torch.from_numpy(codes)))
    torch.testing.assert_close(from_numpy.dequantize(levels.numpy()), from_tensor.dequantize(levels))
    with pytest.raises(ConfigError, match="not fitted"):
        UniformQuantizer(4).quantize(torch.zeros(2, 3))
    with pytest.raises(ConfigError, match="not fitted"):
        UniformQuantizer(4).dequantize(torch.zeros(2, 3, dtype=torch.long))


def test_the_compressor_clones_as_a_scikit_learn_estimator_and_empty_dims_are_named():
    """clone / set_params against the constructor's arguments; pca_reconstruction_errors with no dims is a ConfigError."""
    from sklearn.base import clone

    model = projector(orthonormal(6, 2))
    compressor = Compressor(model, bits=6, batch_size=7)
    assert {k: v for k, v in clone(compressor).get_params().items() if k != "model"} == {"bits": 6, "batch_size": 7}
    assert clone(UniformQuantizer(3)).bits == 3
    x = torch.randn(20, 6)
    assert compressor.set_params(bits=4).fit(x).bits_per_code_ == 8
    with pytest.raises(ConfigError, match="dims is empty"):
        pca_reconstruction_errors(x, x, [])
