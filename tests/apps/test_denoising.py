"""Denoising: corruption, the denoised output, PSNR/SSIM before and after."""

import numpy as np
import pytest
import torch

import vaekit
from tests.apps.models import orthonormal, projector
from vaekit.apps import Denoiser, psnr, ssim
from vaekit.data import corrupt
from vaekit.errors import ConfigError


def test_projection_removes_the_off_subspace_part_of_gaussian_noise():
    q = orthonormal(16, 2)
    model = projector(q)
    g = torch.Generator().manual_seed(0)
    clean = torch.randn(200, 2, generator=g) @ q.T
    denoiser = Denoiser(model, noise="gaussian", noise_level=0.5, seed=7).fit(clean)
    assert denoiser.data_range_ == pytest.approx(float(clean.max() - clean.min()))
    noisy = corrupt(clean, "gaussian", 0.5, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(denoiser.corrupt(clean), noisy)  # seeded: the same draw
    denoised = denoiser.transform(noisy)
    torch.testing.assert_close(denoised, (noisy @ q @ q.T).clamp(float(clean.min()), float(clean.max())))
    report = denoiser.evaluate(clean)
    expected_noisy = psnr(clean, noisy.clamp(float(clean.min()), float(clean.max())), denoiser.data_range_).mean()
    assert report["psnr_noisy"] == pytest.approx(float(expected_noisy))
    assert report["psnr_denoised"] == pytest.approx(float(psnr(clean, denoised, denoiser.data_range_).mean()))
    assert report["psnr_denoised"] > report["psnr_noisy"] + 5  # 14 of 16 noise dimensions removed
    assert report["ssim_noisy"] is None  # vectors, not images


def test_image_metrics_and_salt_pepper_use_the_data_range():
    torch.manual_seed(0)
    model = vaekit.create("denoising_ae", input_shape=(1, 12, 12), latent_dim=4, hidden_dims=(16,), arch="mlp")
    clean = torch.rand(6, 1, 12, 12) * 0.6 + 0.2
    denoiser = Denoiser(model, noise="salt_pepper", noise_level=1.0).fit(clean)
    noisy = denoiser.corrupt(clean)
    assert torch.all((noisy == denoiser.data_min_) | (noisy == denoiser.data_max_))
    report = denoiser.evaluate(clean)
    denoised = denoiser.transform(noisy)
    assert report["ssim_denoised"] == pytest.approx(float(ssim(clean, denoised, denoiser.data_range_).mean()))
    assert report["ssim_noisy"] == pytest.approx(float(ssim(clean, noisy, denoiser.data_range_).mean()))
    assert report["noisy"].shape == clean.shape and denoiser.score(clean) == pytest.approx(report["psnr_denoised"])


def test_bad_settings_are_named():
    model = projector(orthonormal(4, 2))
    x = torch.rand(5, 4)
    with pytest.raises(ConfigError, match="unknown noise"):
        Denoiser(model, noise="speckle").fit(x)
    with pytest.raises(ConfigError, match="probability"):
        Denoiser(model, noise="mask", noise_level=2.0).fit(x)
    with pytest.raises(ConfigError, match="not fitted"):
        Denoiser(model).corrupt(x)
    assert np.isfinite(Denoiser(model).fit(x).evaluate(x)["psnr_noisy"])


def test_the_denoiser_clones_as_a_scikit_learn_estimator():
    """clone keeps the constructor's arguments and none of the fitted attributes; set_params returns self."""
    from sklearn.base import clone

    model = projector(orthonormal(4, 2))
    denoiser = Denoiser(model, noise="mask", noise_level=0.2, seed=3).fit(torch.rand(5, 4))
    copy = clone(denoiser)
    assert {k: v for k, v in copy.get_params().items() if k != "model"} == {"noise": "mask", "noise_level": 0.2, "seed": 3, "batch_size": 500}
    assert not hasattr(copy, "data_range_")
    assert denoiser.set_params(noise_level=0.4) is denoiser and denoiser.noise_level == 0.4
