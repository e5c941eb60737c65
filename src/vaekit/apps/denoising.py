"""Image (and signal) denoising with a trained model (survey §1.4.2, §1.5)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vaekit.apps._inputs import Estimator, as_examples, batched, check_model, check_positive_int
from vaekit.apps.image_quality import psnr, ssim
from vaekit.data import corrupt, parse_noise
from vaekit.errors import ConfigError, DataError

__all__ = ["Denoiser"]


class Denoiser(Estimator):
    r"""Denoise with a model: x̃ = T(x) (corruption), x̂ = D(E(x̃)), measured by PSNR and SSIM.

    ``fit(X)`` learns the data range [low, high] of clean data (the PSNR/SSIM peak value
    L = high − low, and the clipping range). ``corrupt`` draws T(x) (Gaussian, masking or
    salt-and-pepper noise, :func:`vaekit.data.corrupt`; seeded); ``transform`` denoises:
    the decoder's mean at the code of the noisy input, clipped to [low, high].
    ``evaluate`` reports PSNR and SSIM of the noisy input (clipped to [low, high], as an
    image would be stored) and of the denoised output against the clean data. Best with a
    ``denoising_ae`` trained with the same noise, but any model works.

    Arguments:
        model: a trained, unconditional vaekit model.
        noise: "gaussian", "mask" or "salt_pepper".
        noise_level: σ (gaussian) or the probability (mask, salt_pepper).
        seed: seed of the corruption.
        batch_size: examples denoised at once.

    Fitted attributes: ``data_min_``, ``data_max_``, ``data_range_``.

    Example:
        >>> denoiser = Denoiser(model, noise="gaussian", noise_level=0.3).fit(x_train)  # doctest: +SKIP
        >>> report = denoiser.evaluate(x_test)  # {"psnr_noisy": …, "psnr_denoised": …, "ssim_…": …}  # doctest: +SKIP
    """

    def __init__(self, model: Any, noise: str = "gaussian", noise_level: float = 0.3, seed: int = 0, batch_size: int = 500):
        self.model = model
        self.noise = noise
        self.noise_level = noise_level
        self.seed = seed
        self.batch_size = batch_size

    def _check_params(self) -> tuple[str, float]:
        check_model(self.model, "Denoiser")
        check_positive_int(self.batch_size, "batch_size")
        try:
            return parse_noise(f"{self.noise}:{self.noise_level}")
        except DataError as e:
            raise ConfigError(f"Denoiser: {e}") from None

    def _check_fitted(self) -> None:
        if not hasattr(self, "data_range_"):
            raise ConfigError("this Denoiser is not fitted yet: call fit(clean_data) first")

    def fit(self, X: Any, y: Any = None) -> "Denoiser":
        """Learn the clean data's range from ``X``."""
        self._check_params()
        x = as_examples(X, self.model)
        self.data_min_, self.data_max_ = float(x.min()), float(x.max())
        if not self.data_max_ > self.data_min_:
            raise DataError("X is constant: a denoiser needs data with a range (max > min)")
        self.data_range_ = self.data_max_ - self.data_min_
        return self

    def corrupt(self, X: Any) -> torch.Tensor:
        """T(x): the corrupted examples (salt-and-pepper uses the fitted min and max)."""
        self._check_fitted()
        noise, level = self._check_params()
        x = as_examples(X, self.model)
        generator = torch.Generator().manual_seed(self.seed)
        return corrupt(x, noise, level, generator=generator, low=self.data_min_, high=self.data_max_)

    def transform(self, X_noisy: Any) -> torch.Tensor:
        """Denoised examples: ``model.reconstruct`` of the noisy input, clipped to the data range."""
        self._check_fitted()
        x = as_examples(X_noisy, self.model, "X_noisy")
        return batched(self.model, self.model.reconstruct, x, self.batch_size).clamp(self.data_min_, self.data_max_)

    def evaluate(self, X: Any) -> dict[str, Any]:
        """Corrupt the clean ``X``, denoise it, and compare both with ``X``.

        Returns mean ``psnr_noisy``, ``psnr_denoised`` (dB) and, for images (C, H, W),
        ``ssim_noisy``, ``ssim_denoised`` (None for vectors), plus ``noisy`` and
        ``denoised`` tensors for pictures.
        """
        x = as_examples(X, self.model)
        noisy = self.corrupt(x)
        denoised = self.transform(noisy)
        shown = noisy.clamp(self.data_min_, self.data_max_)
        images = len(self.model.input_shape) == 3
        result: dict[str, Any] = {
            "noise": self._check_params()[0], "noise_level": float(self.noise_level), "num_examples": x.shape[0],
            "psnr_noisy": _finite_mean(psnr(x, shown, self.data_range_)),
            "psnr_denoised": _finite_mean(psnr(x, denoised, self.data_range_)),
            "ssim_noisy": float(ssim(x, shown, self.data_range_).mean()) if images else None,
            "ssim_denoised": float(ssim(x, denoised, self.data_range_).mean()) if images else None,
        }
        result.update(noisy=shown, denoised=denoised)
        return result

    def score(self, X: Any, y: Any = None) -> float:
        """Mean PSNR (dB) of the denoised output on corrupted ``X`` (higher is better)."""
        return float(self.evaluate(X)["psnr_denoised"])


def _finite_mean(values: torch.Tensor) -> float:
    """Mean over examples; identical pairs (PSNR = +∞) are left out, or +∞ if all are identical."""
    finite = values[torch.isfinite(values)]
    return float(finite.mean()) if finite.numel() else float(np.inf)
