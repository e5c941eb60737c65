"""Compression with a trained model, and the PCA baseline it should beat (survey §1.5)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from vaekit.apps._inputs import Estimator, as_examples, batched, check_model, check_positive_int, flat_array
from vaekit.errors import ConfigError, DataError

__all__ = ["Compressor", "UniformQuantizer", "pca_reconstruction_errors", "compare_with_pca", "normalize_for_pca"]


class UniformQuantizer(Estimator):
    r"""Per-dimension uniform quantiser with 2^bits levels over the range seen in ``fit``.

    q = round((c − low) / (high − low) · (2^bits − 1)), clipped to [0, 2^bits − 1];
    dequantised ĉ = low + q (high − low) / (2^bits − 1). A constant dimension maps to 0 and
    back to its value. The worst-case error per dimension is (high − low) / (2 (2^bits − 1)).
    Codes: tensors or numpy arrays, shape (N, D).
    """

    def __init__(self, bits: int = 8):
        self.bits = bits

    def fit(self, codes: torch.Tensor) -> "UniformQuantizer":
        if not 1 <= check_positive_int(self.bits, "bits") <= 32:
            raise ConfigError(f"bits must be in 1..32, got {self.bits}")
        codes = torch.as_tensor(codes)
        if codes.dim() < 1 or codes.shape[0] == 0:
            raise DataError(f"UniformQuantizer.fit needs a non-empty batch of codes (N, D), got shape {tuple(codes.shape)}")
        self.low_ = codes.amin(0)
        self.high_ = codes.amax(0)
        self.levels_ = 2**self.bits - 1
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "levels_"):
            raise ConfigError("this UniformQuantizer is not fitted yet: call fit(codes) first")

    def quantize(self, codes: torch.Tensor) -> torch.Tensor:
        self._check_fitted()
        codes = torch.as_tensor(codes)
        span = (self.high_ - self.low_).to(torch.float64)
        unit = torch.where(span > 0, (codes.double() - self.low_.double()) / span.clamp_min(1e-300), torch.zeros_like(span))
        return (unit * self.levels_).round().clamp(0, self.levels_).to(torch.int64)

    def dequantize(self, q: torch.Tensor) -> torch.Tensor:
        self._check_fitted()
        q = torch.as_tensor(q)
        span = (self.high_ - self.low_).double()
        return (self.low_.double() + q.double() * span / self.levels_).to(self.low_.dtype)


class Compressor(Estimator):
    r"""Lossy compression x → code → x̂ with a trained model's encoder and decoder.

    The code of x is the model's latent code (``model.transform``: the point of a
    deterministic AE, the posterior mean of a VAE), quantised to ``bits`` bits per
    dimension (:class:`UniformQuantizer`, range learned in ``fit``), or kept as float32 with
    ``bits=None``. Storage is ``bits_per_code_`` = D·bits (D·32 for float codes); the
    reconstruction is the decoder's mean at the (dequantised) code.

    Arguments:
        model: a trained, unconditional vaekit model.
        bits: bits per code dimension (1–32), or None for float32 codes.
        batch_size: examples encoded at once.

    Fitted attributes: ``quantizer_`` (None for float codes), ``bits_per_code_``, ``latent_dim_``.

    Example:
        >>> compressor = Compressor(model, bits=8).fit(x_train)  # doctest: +SKIP
        >>> codes = compressor.transform(x_test)                 # int64 (N, D) in 0..255  # doctest: +SKIP
        >>> x_hat = compressor.inverse_transform(codes)          # doctest: +SKIP
        >>> compressor.mse(x_test)                                # doctest: +SKIP
    """

    def __init__(self, model: Any, bits: int | None = 8, batch_size: int = 500):
        self.model = model
        self.bits = bits
        self.batch_size = batch_size

    def _codes(self, X: Any) -> torch.Tensor:
        check_model(self.model, "Compressor")
        check_positive_int(self.batch_size, "batch_size")
        return batched(self.model, self.model.transform, as_examples(X, self.model), self.batch_size)

    def fit(self, X: Any, y: Any = None) -> "Compressor":
        """Learn the quantiser's per-dimension code range on ``X``."""
        codes = self._codes(X)
        self.latent_dim_ = codes.shape[1]
        self.quantizer_ = None if self.bits is None else UniformQuantizer(self.bits).fit(codes)
        self.bits_per_code_ = self.latent_dim_ * (32 if self.bits is None else int(self.bits))
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "bits_per_code_"):
            raise ConfigError("this Compressor is not fitted yet: call fit(X) first")

    def transform(self, X: Any) -> torch.Tensor:
        """The stored codes: int64 (N, D) levels, or float32 (N, D) codes when ``bits=None``."""
        self._check_fitted()
        codes = self._codes(X)
        return codes if self.quantizer_ is None else self.quantizer_.quantize(codes)

    def inverse_transform(self, codes: torch.Tensor) -> torch.Tensor:
        """Reconstructions (N, *input_shape) from stored codes."""
        self._check_fitted()
        codes = torch.as_tensor(codes)
        if codes.dim() != 2 or codes.shape[1] != self.latent_dim_:
            raise DataError(f"codes must have shape (N, {self.latent_dim_}), got {tuple(codes.shape)}")
        z = codes.to(torch.float32) if self.quantizer_ is None else self.quantizer_.dequantize(codes).to(torch.float32)
        return batched(self.model, lambda zb: self.model.decode(zb).mean, z, self.batch_size)

    def reconstruct(self, X: Any) -> torch.Tensor:
        """x̂ = decode(quantise(encode(x)))."""
        return self.inverse_transform(self.transform(X))

    def errors(self, X: Any) -> np.ndarray:
        """Per-example mean squared error (1/M) Σ_j (x_j − x̂_j)², shape (N,)."""
        x = as_examples(X, self.model)
        return (x - self.reconstruct(x)).pow(2).flatten(1).mean(1).double().numpy()

    def mse(self, X: Any) -> float:
        """Mean squared error per value over ``X``."""
        return float(self.errors(X).mean())

    def score(self, X: Any, y: Any = None) -> float:
        """−MSE (higher is better, as scikit-learn scores are)."""
        return -self.mse(X)

    def compression_ratio(self, bits_per_value: int = 8) -> float:
        """Raw size (M values × ``bits_per_value``) over ``bits_per_code_``."""
        self._check_fitted()
        return float(np.prod(self.model.input_shape)) * bits_per_value / self.bits_per_code_


def normalize_for_pca(x: np.ndarray | torch.Tensor, mean: np.ndarray | None = None, m: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    r"""x̂_ij = (x_ij − mean_j)/√M (survey §1.5): centred and scaled so X̂ᵀX̂ is the covariance.

    Returns (x̂, mean, M); pass the training set's ``mean`` and ``m`` to normalise test data alike.
    """
    flat = flat_array(x)
    mean = flat.mean(0) if mean is None else mean
    m = flat.shape[0] if m is None else m
    return (flat - mean) / np.sqrt(m), mean, m


def pca_reconstruction_errors(train: Any, test: Any, dims: Sequence[int], bits: int | None = None) -> dict[int, float]:
    """PCA's test mean squared error per value with n components, for each n in ``dims``.

    PCA (scikit-learn) is fitted on ``train``; test codes are optionally quantised to
    ``bits`` bits per component like the model's (:class:`UniformQuantizer` fitted on the
    training codes).
    """
    from sklearn.decomposition import PCA

    if len(dims) == 0:
        raise ConfigError("dims is empty: give the numbers of PCA components to evaluate, e.g. [1, 2, 4]")
    xtr, xte = flat_array(train), flat_array(test)
    limit = min(xtr.shape)
    errors: dict[int, float] = {}
    full = PCA(n_components=min(max(dims), limit), svd_solver="full").fit(xtr)
    for n in sorted(set(int(d) for d in dims)):
        if not 1 <= n <= limit:
            raise ConfigError(f"PCA needs 1 ≤ components ≤ {limit} (min of examples and features), got {n}")
        components = full.components_[:n]
        codes_tr = (xtr - full.mean_) @ components.T
        codes = (xte - full.mean_) @ components.T
        if bits is not None:
            quantizer = UniformQuantizer(bits).fit(torch.from_numpy(codes_tr))
            codes = quantizer.dequantize(quantizer.quantize(torch.from_numpy(codes))).numpy()
        recon = codes @ components + full.mean_
        errors[n] = float(((xte - recon) ** 2).mean())
    return errors


def compare_with_pca(
    model: Any, train: Any, test: Any, bits: int | None = 8, dims: Sequence[int] | None = None, batch_size: int = 500,
) -> dict[str, Any]:
    """The model's compression of ``test`` against PCA with the same number of components.

    Returns a dict: ``latent_dim``, ``bits_per_code``, ``compression_ratio`` (against 8
    bits per value), ``model_mse`` (quantised codes), ``model_mse_float`` (float codes),
    ``pca_mse`` and ``pca_mse_quantized`` at ``pca_components`` = min(D, features, examples) components, and ``pca_curve``
    {n: mse} over ``dims`` (default powers of two up to 2D, with D) for the
    error-vs-dimension plot.
    """
    compressor = Compressor(model, bits=bits, batch_size=batch_size).fit(train)
    d = compressor.latent_dim_
    exact = Compressor(model, bits=None, batch_size=batch_size).fit(train)
    limit = min(flat_array(train).shape)
    if dims is None:
        dims = sorted({n for n in (1, 2, 4, 8, 16, 32, 64, 128, 256) if n <= min(2 * d, limit)} | {min(d, limit)})
    k = min(d, limit)  # PCA of a table narrower than the code keeps every component
    curve = pca_reconstruction_errors(train, test, sorted(set(dims) | {k}))
    result = {
        "latent_dim": d,
        "pca_components": k,
        "bits": bits,
        "bits_per_code": compressor.bits_per_code_,
        "compression_ratio": compressor.compression_ratio(8),
        "model_mse": compressor.mse(test),
        "model_mse_float": exact.mse(test),
        "pca_mse": curve[k],
        "pca_curve": {int(k): v for k, v in curve.items()},
    }
    if bits is not None:
        result["pca_mse_quantized"] = pca_reconstruction_errors(train, test, [k], bits=bits)[k]
    return result
