"""Image quality: PSNR, and SSIM from :mod:`vaekit.objectives.ssim` (no scikit-image dependency)."""

from __future__ import annotations

import torch

from vaekit.errors import ConfigError, DataError
from vaekit.objectives.ssim import gaussian_window
from vaekit.objectives.ssim import ssim as structural_similarity

__all__ = ["psnr", "ssim", "gaussian_window"]


def _pair(x: torch.Tensor, y: torch.Tensor, images: bool) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(x).detach().cpu().to(torch.float64)
    y = torch.as_tensor(y).detach().cpu().to(torch.float64)
    if x.shape != y.shape:
        raise DataError(f"the two batches must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.dim() < 2 or x.shape[0] == 0:
        raise DataError(f"expected a non-empty batch (N, ...), got shape {tuple(x.shape)}")
    if images:
        if x.dim() == 3:
            x, y = x.unsqueeze(1), y.unsqueeze(1)
        if x.dim() != 4:
            raise DataError(f"SSIM needs images (N, C, H, W) or (N, H, W), got shape {tuple(x.shape)}")
    return x, y


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    r"""Peak signal-to-noise ratio per example, in dB: 10 log₁₀(L² / MSE), shape (N,).

    MSE is the mean squared difference over all of an example's values and L the data
    range (1 for images in [0, 1]); identical examples give +∞.

    Example:
        >>> psnr(torch.zeros(1, 4), torch.full((1, 4), 0.1))
        tensor([20.0000], dtype=torch.float64)
    """
    if not data_range > 0:
        raise ConfigError(f"data_range must be > 0, got {data_range}")
    x, y = _pair(x, y, images=False)
    mse = (x - y).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse)


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 1.0,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    r"""Structural similarity per image (Wang et al. 2004), shape (N,), in float64: a quality score.

    :func:`vaekit.objectives.ssim` (Gaussian-weighted statistics, σ = 1.5, valid positions,
    scikit-image's values) on detached float64 copies, for images (N, C, H, W) or (N, H, W):

        SSIM(x, y) = (2 μ_x μ_y + C₁)(2 σ_xy + C₂) / ((μ_x² + μ_y² + C₁)(σ_x² + σ_y² + C₂)),

    C₁ = (k₁L)², C₂ = (k₂L)², L = ``data_range``. Images smaller than the window (e.g. 8×8
    digits) use the largest odd window that fits, with the same σ; ``window_size`` must be
    at least 3 and images at least 3×3 pixels.

    References:
        Image Quality Assessment: From Error Visibility to Structural Similarity (Wang,
        Bovik, Sheikh & Simoncelli, IEEE Transactions on Image Processing 13(4), 2004).

    Example:
        >>> x = torch.rand(2, 1, 16, 16)
        >>> ssim(x, x)
        tensor([1., 1.], dtype=torch.float64)
    """
    if not data_range > 0:
        raise ConfigError(f"data_range must be > 0, got {data_range}")
    if int(window_size) < 3:
        raise ConfigError(f"window_size must be at least 3 pixels (a window has a centre and a border), got {window_size}")
    x, y = _pair(x, y, images=True)
    if min(x.shape[-2:]) < 3:
        raise DataError(f"SSIM needs images of at least 3×3 pixels (a 3×3 window), got {x.shape[-2]}×{x.shape[-1]}")
    size = min(int(window_size), *x.shape[-2:])
    size -= 1 - size % 2  # odd
    return structural_similarity(x, y, window=size, sigma=sigma, data_range=data_range, k1=k1, k2=k2)
