r"""Structural similarity: SSIM (Wang et al. 2004), multi-scale SSIM (Wang et al. 2003) and 1 − MS-SSIM as a cost.

One implementation, differentiable and batched, used both as a training cost (``mssim_vae``)
and as an image-quality measure (``vaekit.apps.ssim``, the denoising report).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch.distributions import Distribution

from vaekit.errors import ConfigError, DataError

__all__ = [
    "MS_SSIM_WEIGHTS", "MSSSIMReconstruction", "check_ssim_window", "gaussian_window", "max_scales", "ms_ssim",
    "ms_ssim_weights", "ssim",
]

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
"""β_1 … β_5 of Wang et al. (2003), finest scale first, fitted to human quality judgements."""

NORMALIZATIONS = ("relu", "simple", "none")


def gaussian_window(
    size: int = 11, sigma: float = 1.5, *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> torch.Tensor:
    r"""The normalised 2-D Gaussian window w_ij = g_i g_j, g_i ∝ exp(−(i − c)² / (2σ²)), shape (size, size).

    c = (size − 1)/2 is the centre, where the window peaks; the weights sum to 1. It is the
    kernel of ``scipy.ndimage.gaussian_filter(sigma=σ, truncate=t)`` when size = 2⌊tσ + ½⌋ + 1
    (scikit-image's SSIM: t = 3.5, so σ = 1.5 gives the 11-tap window of Wang et al. 2004).
    """
    g = _gaussian_1d(size, sigma, dtype, device)
    return torch.outer(g, g)


def _gaussian_1d(size: int, sigma: float, dtype: torch.dtype, device: torch.device | str | None) -> torch.Tensor:
    offsets = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-offsets.pow(2) / (2 * sigma**2))
    return g / g.sum()


def check_ssim_window(window: int, sigma: float, data_range: float) -> None:
    """Refuse a window that is not an odd size ≥ 3, a σ ≤ 0 or a data range ≤ 0 (one line naming the option)."""
    if isinstance(window, bool) or int(window) != window or window < 3 or window % 2 == 0:
        raise ConfigError(f"window must be an odd number of pixels ≥ 3 (the window has a centre), got {window!r}")
    if not sigma > 0:
        raise ConfigError(f"sigma (the Gaussian window's σ, in pixels) must be > 0, got {sigma!r}")
    if not data_range > 0:
        raise ConfigError(f"data_range (max − min of the pixel values, 1 for images in [0, 1]) must be > 0, got {data_range!r}")


def max_scales(height: int, width: int, window: int) -> int:
    """The most scales an image allows: each scale halves it (⌊·/2⌋) and the coarsest must still hold the window."""
    scales, side = 0, min(height, width)
    while side >= window:
        scales, side = scales + 1, side // 2
    return scales


def ms_ssim_weights(scales: int) -> tuple[float, ...]:
    """The first ``scales`` of Wang et al.'s weights renormalised to sum to 1; 5 scales: the published weights themselves."""
    if isinstance(scales, bool) or int(scales) != scales or not 1 <= scales <= len(MS_SSIM_WEIGHTS):
        raise ConfigError(f"scales must be an integer from 1 to {len(MS_SSIM_WEIGHTS)} (Wang et al.'s weights), got {scales!r}")
    if scales == len(MS_SSIM_WEIGHTS):
        return MS_SSIM_WEIGHTS  # they sum to 1.0001 as published; kept so results match other implementations
    chosen = MS_SSIM_WEIGHTS[: int(scales)]
    return tuple(w / sum(chosen) for w in chosen)


def _check_images(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape != y.shape:
        raise DataError(f"the two batches of images must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.dim() != 4:
        raise DataError(f"SSIM needs a batch of images (B, C, H, W), got shape {tuple(x.shape)}")


def _as_float(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer images (e.g. uint8 in [0, 255]) as float32 before any product or pooling (x², 2×2 means)."""
    dtype = x.dtype if x.is_floating_point() else torch.float32
    return x.to(dtype), y.to(dtype)


def _ssim_maps(
    x: torch.Tensor, y: torch.Tensor, g: torch.Tensor, c1: float, c2: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The SSIM map l·cs and the contrast-structure map cs at every position where the window fits (valid)."""
    b, c = x.shape[:2]
    stacked = torch.cat([x, y, x * x, y * y, x * y])
    kernel_h = g.view(1, 1, -1, 1).expand(c, 1, -1, 1)
    kernel_w = g.view(1, 1, 1, -1).expand(c, 1, 1, -1)
    means = F.conv2d(F.conv2d(stacked, kernel_h, groups=c), kernel_w, groups=c)  # separable Gaussian, no padding
    mu_x, mu_y, xx, yy, xy = means.split(b)
    var_x, var_y, cov = xx - mu_x.pow(2), yy - mu_y.pow(2), xy - mu_x * mu_y
    luminance = (2 * mu_x * mu_y + c1) / (mu_x.pow(2) + mu_y.pow(2) + c1)
    cs = (2 * cov + c2) / (var_x + var_y + c2)
    return luminance * cs, cs


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    window: int = 11,
    sigma: float = 1.5,
    data_range: float = 1.0,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    r"""Structural similarity per image (Wang et al. 2004), shape (B,), differentiable.

    With Gaussian-weighted local statistics (μ, σ², σ_xy with weights w summing to 1, no
    sample-size correction) at every position where the window fits:

        SSIM(x, y) = (2 μ_x μ_y + C₁)(2 σ_xy + C₂) / ((μ_x² + μ_y² + C₁)(σ_x² + σ_y² + C₂)),

    C₁ = (k₁L)², C₂ = (k₂L)², L = ``data_range``, averaged over those positions and the
    channels. This is scikit-image's ``structural_similarity(gaussian_weights=True, sigma=σ,
    use_sample_covariance=False, data_range=L)`` (which filters the whole image and crops a
    border of (window − 1)/2) when window = 2⌊3.5σ + ½⌋ + 1, e.g. 11 for σ = 1.5, 7 for σ = 0.8.

    Arguments:
        x, y: images (B, C, H, W) with H, W ≥ ``window``; integer ones (uint8 in [0, 255]) are
            taken as float32, y in x's precision.
        window: odd side of the Gaussian window (≥ 3).
        sigma: σ of the window, in pixels.
        data_range: L, the dynamic range of the pixel values (1 for [0, 1]).
        k1, k2: the stabilising constants' factors.

    References:
        Image Quality Assessment: From Error Visibility to Structural Similarity (Wang, Bovik,
        Sheikh & Simoncelli, IEEE Transactions on Image Processing 13(4), 2004).

    Example:
        >>> x = torch.rand(2, 1, 16, 16)
        >>> ssim(x, x)
        tensor([1., 1.])
    """
    check_ssim_window(window, sigma, data_range)
    _check_images(x, y)
    if min(x.shape[-2:]) < window:
        raise ConfigError(f"window={window} does not fit {x.shape[-2]}×{x.shape[-1]} images: "
                          f"window must be an odd number from 3 to {min(x.shape[-2:])} for them (or give larger images)")
    x, y = _as_float(x, y)
    g = _gaussian_1d(int(window), sigma, x.dtype, x.device)
    ssim_map, _ = _ssim_maps(x, y, g, (k1 * data_range) ** 2, (k2 * data_range) ** 2)
    return ssim_map.flatten(1).mean(1)


def ms_ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    window: int = 11,
    sigma: float = 1.5,
    data_range: float = 1.0,
    scales: int = 5,
    weights: Sequence[float] | None = None,
    normalize: str | None = "relu",
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    r"""Multi-scale structural similarity per image (Wang, Simoncelli & Bovik 2003), shape (B,), differentiable.

        MS-SSIM(x, y) = [l_M(x, y)]^{β_M} · Π_{j=1}^{M} [cs_j(x, y)]^{β_j}

    Scale 1 is the image; scale j + 1 is scale j average-pooled 2×2 (⌊H/2⌋ × ⌊W/2⌋).
    cs_j is the mean over valid positions of the contrast-structure map
    (2σ_xy + C₂)/(σ_x² + σ_y² + C₂) at scale j, and the last factor l_M^{β_M} cs_M^{β_M} is
    the single-scale SSIM at scale M (the mean of the l·cs map), both with the Gaussian window
    of :func:`ssim` (valid positions only, as in Wang et al.'s reference code). β are Wang et
    al.'s weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333); with M < 5 scales the first M,
    renormalised to sum to 1, so MS-SSIM stays in [0, 1] and equals 1 for identical images.

    A cs_j (or SSIM) can be negative for anti-correlated images, and a negative number to a
    fractional power is undefined. ``normalize`` chooses, as torchmetrics' option of the same
    name: "relu" (default) replaces each negative factor by 0 (MS-SSIM ∈ [0, 1], 0 for such
    images; the value is MS-SSIM itself whenever every factor is positive), "simple" maps each
    factor f to (f + 1)/2 ∈ [0, 1] before the power (smooth, but no longer MS-SSIM), "none"
    leaves them (NaN where a factor is negative).

    Compared with torchmetrics' ``multiscale_structural_similarity_index_measure`` (betas =
    these weights, sigma = σ; its Gaussian kernel's size is 2⌊3.5σ + ½⌋ + 1): the cs factors
    are the same; its last-scale SSIM averages the map over a reflect-padded image instead of
    the valid positions, so the two differ slightly (tests/objectives/test_ssim.py checks both
    parts separately).

    Arguments:
        x, y: images (B, C, H, W), integer ones as in :func:`ssim`; the coarsest scale must still hold the window:
            ⌊min(H, W) / 2^{M−1}⌋ ≥ window (28×28 allows M = 3 with a 7-pixel window).
        window, sigma, data_range, k1, k2: as in :func:`ssim`.
        scales: M, from 1 to 5 (M = 1 is SSIM).
        weights: β_1 … β_M (then ``scales`` is their number); None for Wang et al.'s.
        normalize: "relu", "simple" or "none" (or None), see above.

    References:
        Multiscale Structural Similarity for Image Quality Assessment (Wang, Simoncelli &
        Bovik, 37th Asilomar Conference on Signals, Systems and Computers, 2003).

    Example:
        >>> x = torch.rand(2, 1, 28, 28)
        >>> ms_ssim(x, x, window=7, sigma=1.0, scales=3)
        tensor([1., 1.])
    """
    check_ssim_window(window, sigma, data_range)
    _check_images(x, y)
    betas = tuple(float(w) for w in weights) if weights is not None else ms_ssim_weights(scales)
    if not betas or any(not b >= 0 for b in betas):
        raise ConfigError(f"weights must be one or more numbers ≥ 0 (one per scale), got {weights!r}")
    normalize = "none" if normalize is None else str(normalize).lower()
    if normalize not in NORMALIZATIONS:
        raise ConfigError(f"normalize must be one of {', '.join(NORMALIZATIONS)}, got {normalize!r}")
    check_scales(len(betas), x.shape[-2], x.shape[-1], window)
    x, y = _as_float(x, y)
    g = _gaussian_1d(int(window), sigma, x.dtype, x.device)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    factors = []
    for j in range(len(betas)):
        if j > 0:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        ssim_map, cs_map = _ssim_maps(x, y, g, c1, c2)
        last = j == len(betas) - 1
        factors.append((ssim_map if last else cs_map).flatten(1).mean(1))
    stacked = torch.stack(factors)  # (M, B)
    if normalize == "relu":
        stacked = torch.relu(stacked)
    elif normalize == "simple":
        stacked = (stacked + 1) / 2
    exponents = torch.tensor(betas, dtype=stacked.dtype, device=stacked.device).unsqueeze(1)
    return stacked.pow(exponents).prod(0)


def check_scales(scales: int, height: int, width: int, window: int) -> None:
    """Refuse a number of scales whose coarsest image would be smaller than the window (one line, the valid range)."""
    allowed = min(max_scales(height, width, window), len(MS_SSIM_WEIGHTS))
    if allowed == 0:
        raise ConfigError(f"window={window} does not fit {height}×{width} images: "
                          f"window must be an odd number from 3 to {min(height, width)} for them")
    if scales > allowed:
        raise ConfigError(
            f"scales={scales} does not fit {height}×{width} images with window={window}: each scale halves the image and the "
            f"coarsest must hold the window, so scales must be from 1 to {allowed} (or use a smaller window)"
        )


class MSSSIMReconstruction:
    r"""c(x, x̂) = 1 − MS-SSIM(x̂, x) per image, with x̂ the decoder's mean E[x|z].

    A perceptual reconstruction cost in [0, 1] (with "relu" normalisation) for
    ``ELBO(reconstruction=...)``: loss = 1 − MS-SSIM(x̂, x) + β · KL(q(z|x) ‖ p(z)).
    See :func:`ms_ssim` for the measure and its options.

    Arguments:
        window, sigma, data_range, scales, normalize: as in :func:`ms_ssim`.

    References:
        Learning to Generate Images with Perceptual Similarity Metrics (Snell, Ridgeway, Liao,
        Roads, Mozer & Zemel, ICIP 2017), arXiv:1511.06409.

    Example:
        >>> from vaekit.objectives import ELBO
        >>> objective = ELBO(beta=0.01, reconstruction=MSSSIMReconstruction(window=7, sigma=1.0, scales=3))
    """

    def __init__(self, *, window: int = 11, sigma: float = 1.5, data_range: float = 1.0, scales: int = 5, normalize: str = "relu"):
        check_ssim_window(window, sigma, data_range)
        ms_ssim_weights(scales)
        normalize = str(normalize).lower()
        if normalize not in NORMALIZATIONS:
            raise ConfigError(f"normalize must be one of {', '.join(NORMALIZATIONS)}, got {normalize!r}")
        self.window, self.sigma, self.data_range, self.scales, self.normalize = int(window), float(sigma), float(data_range), int(scales), normalize

    def __call__(self, px: Distribution, x: torch.Tensor) -> torch.Tensor:
        similarity = ms_ssim(px.mean, x, window=self.window, sigma=self.sigma, data_range=self.data_range,
                             scales=self.scales, normalize=self.normalize)
        return 1 - similarity
