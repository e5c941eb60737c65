"""SSIM against scikit-image, MS-SSIM against torchmetrics, the Gaussian window, refusals and gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import structural_similarity
from torch.distributions import Bernoulli, Independent
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as tm_ms_ssim

from vaekit.errors import ConfigError, DataError
from vaekit.objectives import MSSSIMReconstruction, gaussian_window, ms_ssim, ssim
from vaekit.objectives.ssim import MS_SSIM_WEIGHTS, max_scales, ms_ssim_weights


def skimage_window(sigma: float) -> int:
    """The window scikit-image (and torchmetrics) filter with for Gaussian weights: truncate = 3.5."""
    return 2 * int(3.5 * sigma + 0.5) + 1


def structured_pair(rng: np.random.Generator, c: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """A disc on a ramp with stripes, and a darker, lower-contrast, noisy, shifted copy of it."""
    yy, xx = np.mgrid[0:h, 0:w]
    disc = ((yy - h / 2) ** 2 + (xx - w / 3) ** 2 < (min(h, w) / 4) ** 2).astype(float)
    image = 0.5 * disc + 0.3 * xx / w + 0.2 * (np.sin(yy / 1.5) > 0)
    x = np.stack([np.roll(image, k, axis=1) for k in range(c)])
    y = np.clip(0.8 * np.roll(x, 1, axis=2) + 0.05 + 0.05 * rng.normal(size=x.shape), 0, 1)
    return x, y


def random_pair(rng: np.random.Generator, c: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    x = rng.uniform(size=(c, h, w))
    return x, np.clip(x + 0.2 * rng.normal(size=x.shape), 0, 1)


@pytest.mark.parametrize("kind", [random_pair, structured_pair], ids=["random", "structured"])
@pytest.mark.parametrize("c, h, w, sigma", [(1, 28, 28, 1.5), (1, 11, 11, 1.5), (3, 16, 21, 1.5), (1, 12, 9, 0.8), (2, 33, 17, 1.0), (1, 8, 8, 0.5)])
def test_ssim_equals_scikit_image_with_gaussian_weights(kind, c, h, w, sigma):
    rng = np.random.default_rng(h * 100 + w)
    pairs = [kind(rng, c, h, w) for _ in range(3)]
    x = torch.from_numpy(np.stack([p[0] for p in pairs]))
    y = torch.from_numpy(np.stack([p[1] for p in pairs]))
    expected = [structural_similarity(a, b, gaussian_weights=True, sigma=sigma, use_sample_covariance=False, data_range=1.0,
                                      channel_axis=0) for a, b in pairs]
    got = ssim(x, y, window=skimage_window(sigma), sigma=sigma, data_range=1.0)
    assert got.shape == (3,)
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-4)
    # float32, as in training, too
    np.testing.assert_allclose(ssim(x.float(), y.float(), window=skimage_window(sigma), sigma=sigma).numpy(), expected, atol=1e-4)


def test_ssim_defaults_are_wang_et_al():
    rng = np.random.default_rng(1)
    a, b = structured_pair(rng, 1, 32, 32)
    expected = structural_similarity(a[0] * 255, b[0] * 255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=255)
    got = ssim(torch.from_numpy(a[None] * 255), torch.from_numpy(b[None] * 255), data_range=255.0)
    assert float(got[0]) == pytest.approx(expected, abs=1e-4)


def test_window_is_a_normalised_gaussian_peaked_at_the_centre():
    for size, sigma in [(11, 1.5), (7, 1.0), (3, 0.5)]:
        g = gaussian_window(size, sigma)
        c = (size - 1) // 2
        assert g.shape == (size, size)
        assert float(g.sum()) == pytest.approx(1.0, abs=1e-12)
        assert int(g.argmax()) == c * size + c  # the peak is the centre (PyTorch-VAE's exp(+x²) window peaks at the corners)
        assert torch.all(g > 0)
        torch.testing.assert_close(g, g.T)
        torch.testing.assert_close(g, g.flip(0))
        # each step away from the centre multiplies the weight by exp(−((d+1)² − d²) / (2σ²))
        row = g[c]
        for d in range(c):
            assert float(row[c + d + 1] / row[c + d]) == pytest.approx(math.exp(-((d + 1) ** 2 - d**2) / (2 * sigma**2)), rel=1e-12)


@pytest.mark.parametrize("c, h, w, sigma, scales", [(1, 28, 28, 0.8, 3), (1, 64, 64, 1.5, 3), (2, 40, 36, 1.0, 2), (1, 96, 96, 0.8, 4)])
def test_ms_ssim_agrees_with_torchmetrics(c, h, w, sigma, scales):
    """torchmetrics gives the contrast-structure factors of scales 1 … M−1 (its last beta set to 0); the last factor is the
    single-scale SSIM of the M−1 times average-pooled images, from scikit-image (torchmetrics averages that last map over a
    reflect-padded image, Wang et al.'s reference code over the valid positions, as vaekit and scikit-image do)."""
    torch.manual_seed(h + scales)
    x = torch.rand(4, c, h, w, dtype=torch.float64)
    y = (0.7 * x + 0.3 * torch.rand_like(x)).clamp(0, 1)
    window, betas = skimage_window(sigma), ms_ssim_weights(scales)
    cs_part = tm_ms_ssim(x, y, gaussian_kernel=True, sigma=sigma, kernel_size=window, data_range=1.0,
                         betas=betas[:-1] + (0.0,), normalize=None, reduction="none")
    xs, ys = x, y
    for _ in range(scales - 1):
        xs, ys = F.avg_pool2d(xs, 2), F.avg_pool2d(ys, 2)
    last = torch.tensor([structural_similarity(a.numpy(), b.numpy(), gaussian_weights=True, sigma=sigma, use_sample_covariance=False,
                                               data_range=1.0, channel_axis=0) for a, b in zip(xs, ys)], dtype=torch.float64)
    expected = cs_part * last ** betas[-1]
    for normalize in (None, "relu"):  # every factor is positive here: the same value
        got = ms_ssim(x, y, window=window, sigma=sigma, scales=scales, normalize=normalize)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    # the whole of torchmetrics' value differs only through that last average: close, not equal
    whole = tm_ms_ssim(x, y, gaussian_kernel=True, sigma=sigma, kernel_size=window, data_range=1.0, betas=betas, reduction="none")
    assert torch.allclose(got, whole, atol=0.05)


def test_weights_are_wang_et_al_renormalised_and_one_scale_is_ssim():
    assert ms_ssim_weights(5) == MS_SSIM_WEIGHTS  # as published (they sum to 1.0001)
    three = ms_ssim_weights(3)
    assert sum(three) == pytest.approx(1.0) and three == pytest.approx([w / sum(MS_SSIM_WEIGHTS[:3]) for w in MS_SSIM_WEIGHTS[:3]])
    torch.manual_seed(0)
    x = torch.rand(3, 1, 16, 16, dtype=torch.float64)
    y = 0.7 * x + 0.3 * torch.rand_like(x)  # correlated: every factor positive
    torch.testing.assert_close(ms_ssim(x, y, window=7, sigma=1.0, scales=1, normalize=None), ssim(x, y, window=7, sigma=1.0))
    # explicit weights: the product of the factors' powers
    w = (0.2, 0.8)
    cs1 = ms_ssim(x, y, window=5, sigma=1.0, weights=(1.0, 0.0), normalize=None)
    s2 = ssim(F.avg_pool2d(x, 2), F.avg_pool2d(y, 2), window=5, sigma=1.0)
    torch.testing.assert_close(ms_ssim(x, y, window=5, sigma=1.0, weights=w, normalize=None), cs1**0.2 * s2**0.8)


def test_identical_images_give_one():
    torch.manual_seed(0)
    x = torch.rand(3, 2, 28, 28)
    torch.testing.assert_close(ssim(x, x), torch.ones(3))
    torch.testing.assert_close(ms_ssim(x, x, window=7, sigma=1.0, scales=3), torch.ones(3))
    assert torch.all(ms_ssim(x, torch.rand_like(x), window=7, sigma=1.0, scales=3) < 0.5)


def test_negative_factors_are_normalised_as_documented():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 28, 28, dtype=torch.float64)
    y = 1 - x  # anti-correlated: negative contrast-structure at the finest scale
    options = dict(window=7, sigma=1.0, scales=3)
    raw = ms_ssim(x, y, **options, weights=(1.0, 0.0, 0.0), normalize=None)
    assert torch.all(raw < 0)
    assert torch.isnan(ms_ssim(x, y, **options, normalize="none")).all()
    torch.testing.assert_close(ms_ssim(x, y, **options, normalize="relu"), torch.zeros(2, dtype=torch.float64))
    simple = ms_ssim(x, y, **options, normalize="simple")
    assert torch.all((simple > 0) & (simple < 1))
    # relu: finite (zero) gradients where a factor is cut
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(ms_ssim(xr, y, **options).sum(), xr)
    assert torch.isfinite(grad).all()


def test_gradient_matches_finite_differences():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 12, 12, dtype=torch.float64)
    y = (0.6 * x + 0.4 * torch.rand_like(x)).requires_grad_(True)
    # fast mode compares u·J·v for random u, v (numerically and by autograd): the same check at two
    # forward passes per random direction instead of two per input value (it took 46 s on a busy machine)
    assert torch.autograd.gradcheck(lambda t: ms_ssim(t, x, window=3, sigma=0.8, scales=2), (y,), eps=1e-6, atol=1e-6, fast_mode=True)


def test_reconstruction_cost_is_one_minus_ms_ssim_of_the_decoder_mean():
    torch.manual_seed(0)
    x = torch.rand(3, 1, 28, 28)
    px = Independent(Bernoulli(logits=torch.randn(3, 1, 28, 28)), 3)
    cost = MSSSIMReconstruction(window=7, sigma=1.0, scales=3)
    torch.testing.assert_close(cost(px, x), 1 - ms_ssim(px.mean, x, window=7, sigma=1.0, scales=3))
    assert cost(Independent(Bernoulli(probs=x), 3), x).abs().max() < 1e-6  # a perfect mean costs nothing


def test_images_too_small_for_the_window_or_scales_are_refused():
    assert max_scales(28, 28, 7) == 3 and max_scales(8, 8, 3) == 2 and max_scales(8, 8, 7) == 1 and max_scales(5, 9, 7) == 0
    x = torch.rand(2, 1, 28, 28)
    with pytest.raises(ConfigError, match=r"scales=4 does not fit 28×28 images with window=7.*scales must be from 1 to 3"):
        ms_ssim(x, x, window=7, sigma=1.0, scales=4)
    with pytest.raises(ConfigError, match=r"scales=3 .* from 1 to 2"):
        ms_ssim(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8), window=3, sigma=0.5, scales=3)
    with pytest.raises(ConfigError, match=r"window=11 does not fit 8×8 images.*from 3 to 8"):
        ssim(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8))
    with pytest.raises(ConfigError, match="odd"):
        ssim(x, x, window=6)
    with pytest.raises(ConfigError, match="scales must be an integer from 1 to 5"):
        ms_ssim(x, x, scales=6)
    with pytest.raises(ConfigError, match="normalize"):
        ms_ssim(x, x, window=7, scales=3, normalize="sigmoid")
    with pytest.raises(ConfigError, match="sigma"):
        ssim(x, x, sigma=0.0)
    with pytest.raises(DataError, match=r"\(B, C, H, W\)"):
        ssim(torch.rand(2, 28, 28), torch.rand(2, 28, 28))
    with pytest.raises(DataError, match="same shape"):
        ssim(x, torch.rand(2, 1, 28, 27))


def test_integer_images_give_the_values_of_their_float_copies():
    """uint8 and int64 images against the same pixels as float64: x² must not wrap around in uint8 (0.13 too high)
    and the 2×2 means of MS-SSIM must not be integer divisions (or refused for uint8)."""
    torch.manual_seed(0)
    x = torch.randint(0, 256, (2, 1, 28, 28))
    y = (0.7 * x + 0.3 * torch.randint(0, 256, x.shape)).round()
    options = dict(window=7, sigma=1.0, data_range=255.0)
    for dtype in (torch.uint8, torch.int64):
        xi, yi = x.to(dtype), y.to(dtype)
        torch.testing.assert_close(ssim(xi, yi, **options), ssim(xi.double(), yi.double(), **options).float())
        torch.testing.assert_close(ms_ssim(xi, yi, **options, scales=3), ms_ssim(xi.double(), yi.double(), **options, scales=3).float())
