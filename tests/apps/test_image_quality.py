"""PSNR and SSIM against their formulas and a hand computation."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vaekit.apps import psnr, ssim
from vaekit.errors import ConfigError, DataError


def test_psnr_is_its_formula():
    torch.manual_seed(0)
    x = torch.rand(3, 1, 5, 5)
    y = (x + 0.05 * torch.randn(3, 1, 5, 5)).double()
    mse = ((x.double() - y) ** 2).mean((1, 2, 3))
    torch.testing.assert_close(psnr(x, y), 10 * torch.log10(1.0 / mse))
    torch.testing.assert_close(psnr(x * 255, y * 255, data_range=255.0), 10 * torch.log10(1.0 / mse))
    assert psnr(x, x).isinf().all()


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), c=st.integers(1, 3), h=st.integers(3, 16), w=st.integers(3, 16))
def test_ssim_of_an_image_with_itself_is_one_and_ssim_is_symmetric(seed, c, h, w):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.rand(2, c, h, w, generator=g), torch.rand(2, c, h, w, generator=g)
    torch.testing.assert_close(ssim(x, x), torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(ssim(x, y), ssim(y, x))
    assert torch.all(ssim(x, y) < 1)


def test_ssim_matches_a_hand_computation_on_one_window():
    # 3×3 images, window 3 with σ = 1.5: one window position, statistics written out by hand.
    x = [[0.1, 0.5, 0.9], [0.3, 0.7, 0.2], [0.8, 0.4, 0.6]]
    y = [[0.2, 0.4, 0.8], [0.3, 0.9, 0.1], [0.7, 0.5, 0.5]]
    g = [math.exp(-(d**2) / (2 * 1.5**2)) for d in (-1, 0, 1)]
    w = [[g[i] * g[j] / sum(g) ** 2 for j in range(3)] for i in range(3)]

    def wmean(f):
        return sum(w[i][j] * f(i, j) for i in range(3) for j in range(3))

    mx, my = wmean(lambda i, j: x[i][j]), wmean(lambda i, j: y[i][j])
    vx = wmean(lambda i, j: (x[i][j] - mx) ** 2)
    vy = wmean(lambda i, j: (y[i][j] - my) ** 2)
    cxy = wmean(lambda i, j: (x[i][j] - mx) * (y[i][j] - my))
    c1, c2 = (0.01 * 1.0) ** 2, (0.03 * 1.0) ** 2
    expected = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    got = ssim(torch.tensor([[x]], dtype=torch.float64), torch.tensor([[y]], dtype=torch.float64), window_size=3)
    assert got.shape == (1,)
    assert float(got[0]) == pytest.approx(expected, rel=1e-10)


def test_ssim_of_a_brightness_shift_is_its_luminance_term():
    torch.manual_seed(1)
    x = torch.rand(1, 1, 11, 11).double()
    y = x + 0.2  # same structure and contrast: SSIM = (2 μx μy + C1) / (μx² + μy² + C1) at the single window
    weights = torch.tensor([math.exp(-(d**2) / 4.5) for d in range(-5, 6)], dtype=torch.float64)
    weights = torch.outer(weights, weights) / weights.sum() ** 2
    mx = float((weights * x[0, 0]).sum())
    my = mx + 0.2
    c1 = 1e-4
    assert float(ssim(x, y)[0]) == pytest.approx((2 * mx * my + c1) / (mx**2 + my**2 + c1), rel=1e-9)


def test_bad_shapes_are_data_errors():
    with pytest.raises(DataError, match="same shape"):
        ssim(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 7))
    with pytest.raises(DataError, match="images"):
        ssim(torch.rand(2, 64), torch.rand(2, 64))


def test_ssim_names_images_and_windows_too_small_for_a_window():
    """A 1×9 image or window_size 2 used to fail with 'window … got 1', a size the caller never gave."""
    with pytest.raises(DataError, match="at least 3×3 pixels.*1×9"):
        ssim(torch.rand(2, 1, 1, 9), torch.rand(2, 1, 1, 9))
    with pytest.raises(ConfigError, match="window_size must be at least 3.*got 2"):
        ssim(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8), window_size=2)
    assert ssim(torch.rand(2, 1, 3, 9), torch.rand(2, 1, 3, 9)).shape == (2,)  # the smallest legal image
