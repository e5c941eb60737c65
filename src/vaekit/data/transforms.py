"""Tensor transforms for training data: binarisation, scaling, splitting and corruption."""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch

from vaekit.data.dataset import Dataset
from vaekit.errors import DataError

__all__ = [
    "binarize",
    "counter_uniform",
    "binarize_rows",
    "static_binarize",
    "min_max_scale",
    "train_val_split",
    "corrupt",
    "parse_noise",
    "NOISE_TYPES",
]

#: The corruptions :func:`corrupt` applies (survey §1.4.2).
NOISE_TYPES = ("gaussian", "mask", "salt_pepper")


def binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Dynamic binarisation: each entry becomes 1 with probability equal to its value, else 0.

    One vectorised draw over the whole tensor, so a trainer can re-binarise the training
    set every epoch cheaply.

    References:
        R. Salakhutdinov, I. Murray, "On the Quantitative Analysis of Deep Belief
        Networks", ICML 2008 (stochastic binarisation of MNIST).

    Arguments:
        x: floating-point intensities in ``[0, 1]``.
        generator: the random generator to draw from; one on another device than ``x`` (a
            CPU generator for data on the GPU) draws uniforms there and compares them with x.

    Example:
        >>> binarize(torch.tensor([0.0, 1.0, 1.0]))
        tensor([0., 1., 1.])
    """
    _check_probabilities(x)
    if generator is not None and generator.device != x.device:
        uniform = torch.rand(x.shape, generator=generator, device=generator.device, dtype=x.dtype)
        return (uniform.to(x.device) < x).to(x.dtype)
    return torch.bernoulli(x, generator=generator)


_MASK32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """(x · c) mod 2³² for int64 x in [0, 2³²) without int64 overflow: the 16-bit halves of x times c."""
    low, high = x & 0xFFFF, x >> 16
    return ((low * c) + (((high * c) & 0xFFFF) << 16)) & _MASK32


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """The "lowbias32" integer hash (C. Wellons, 2018, hash-prospector), on int64 tensors holding 32-bit values."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def counter_uniform(rows: torch.Tensor, numel: int, seed: int = 0) -> torch.Tensor:
    """Uniform numbers in [0, 1) that depend only on (seed, row, position): shape ``(len(rows), numel)``.

    A counter-based generator (cf. Salmon et al. 2011, "Parallel random numbers: as easy as
    1, 2, 3"): u = hash(hash(hash(seed) ⊕ row) ⊕ position) / 2³². Any subset of rows, in any
    order and batching, gets the numbers the whole set would: what a fixed binarisation of
    a file read batch by batch needs (:func:`static_binarize` draws the whole set at once).
    Resolution 2⁻³².
    """
    rows = rows.to(torch.int64).reshape(-1, 1) & _MASK32
    key = _hash32(torch.tensor(seed & _MASK32, dtype=torch.int64) ^ 0x9E3779B9)
    positions = torch.arange(numel, dtype=torch.int64, device=rows.device)
    bits = _hash32(_hash32(rows ^ key) ^ positions)
    return bits.to(torch.float64).div_(2.0**32).to(torch.float32).clamp_(max=1 - 2**-24)


def binarize_rows(x: torch.Tensor, rows: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Fixed binarisation of the examples ``x`` at positions ``rows`` of their set: entry j of example r becomes 1
    when :func:`counter_uniform` (seed, r, j) < its value. The same result in any batch, order or process, so a
    set read batch by batch from a file is binarised once and for all, as :func:`static_binarize` does one in memory.
    ``x`` must hold values in [0, 1]; unlike :func:`binarize` this is not checked here (a check is a host sync, and
    the trainer calls this once per batch on data it checked before training)."""
    uniform = counter_uniform(rows, x[0].numel() if len(x) else 0, seed).to(x.device).view_as(x)
    return (uniform < x).to(x.dtype)


def static_binarize(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Binarise ``x`` once with a fixed seed (the usual binarised test set): same seed, same result."""
    generator = torch.Generator(device=x.device).manual_seed(seed)
    return binarize(x, generator=generator)


def min_max_scale(
    x: torch.Tensor,
    low: torch.Tensor | None = None,
    high: torch.Tensor | None = None,
    clip: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scale each feature (each position of ``x[0]``) to ``[0, 1]``.

    Arguments:
        x: ``(N, ...)`` floating-point data.
        low, high: per-feature minimum and maximum of shape ``x.shape[1:]``; computed
            from ``x`` when not given (pass the training set's to scale test data alike).
        clip: clamp the result to ``[0, 1]`` (useful with given statistics, where new
            data can fall outside the training range).

    Returns:
        ``(scaled, low, high)``. A constant feature (``high == low``) maps to 0.

    Example:
        >>> scaled, low, high = min_max_scale(torch.tensor([[0.0, 5.0], [2.0, 5.0]]))
        >>> scaled
        tensor([[0., 0.],
                [1., 0.]])
    """
    if not x.is_floating_point():
        raise DataError(f"min_max_scale needs floating-point data, got {x.dtype}")
    if x.dim() < 1 or x.shape[0] == 0:
        raise DataError("min_max_scale needs at least one example")
    low = x.amin(dim=0) if low is None else torch.as_tensor(low, dtype=x.dtype, device=x.device)
    high = x.amax(dim=0) if high is None else torch.as_tensor(high, dtype=x.dtype, device=x.device)
    span = high - low
    constant = span <= 0
    scaled = torch.where(constant, torch.zeros_like(x), (x - low) / torch.where(constant, torch.ones_like(span), span))
    if clip:
        scaled = scaled.clamp_(0.0, 1.0)
    return scaled, low, high


def train_val_split(data: Dataset, val_fraction: float = 0.1, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Split ``data`` at random into a training part and a validation part.

    Arguments:
        data: the dataset (labels, if any, follow their examples).
        val_fraction: the share of examples for validation, in ``(0, 1)``; the validation
            part has ``round(N * val_fraction)`` examples.
        seed: seed of the permutation; the same seed gives the same split.

    Returns:
        ``(train, val)``, disjoint and together covering ``data``; each keeps the order
        of ``data``.

    Example:
        >>> train, val = train_val_split(Dataset(torch.rand(10, 3)), val_fraction=0.2)
        >>> len(train), len(val)
        (8, 2)
    """
    if not isinstance(data, Dataset) and not hasattr(data, "rows"):  # a Dataset, or a FileDataset (split as views)
        raise DataError(f"train_val_split needs a vaekit Dataset or FileDataset, got {type(data).__name__}")
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, numbers.Real):
        raise DataError(f"val_fraction must be a number strictly between 0 and 1, got {val_fraction!r}")
    val_fraction = float(val_fraction)  # numpy scalars too
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction!r}")
    n = len(data)
    n_val = round(n * val_fraction)
    if n_val == 0 or n_val == n:
        part = "validation" if n_val == 0 else "training"
        raise DataError(
            f"splitting {n} examples with val_fraction={val_fraction} leaves the {part} part empty; "
            "use more data or another val_fraction"
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val_index, _ = order[:n_val].sort()
    train_index, _ = order[n_val:].sort()
    device = data.x.device if isinstance(data, Dataset) else torch.device("cpu")
    train, val = data[train_index.to(device)], data[val_index.to(device)]
    base = data.name or "data"
    train.name, val.name = f"{base}[train]", f"{base}[val]"
    return train, val


def corrupt(
    x: torch.Tensor,
    noise: str,
    level: float,
    generator: torch.Generator | None = None,
    low: float | None = None,
    high: float | None = None,
) -> torch.Tensor:
    """Corrupt ``x`` as a denoising autoencoder's input (survey §1.4.2); ``x`` is not modified.

    References:
        P. Vincent, H. Larochelle, I. Lajoie, Y. Bengio, P.-A. Manzagol, "Stacked
        Denoising Autoencoders", JMLR 2010, §4.2 (additive Gaussian, masking and
        salt-and-pepper noise).

    Arguments:
        x: floating-point data.
        noise: ``"gaussian"`` adds N(0, level²) noise to every entry; ``"mask"`` sets each
            entry to 0 with probability ``level``; ``"salt_pepper"`` sets each entry with
            probability ``level`` to ``low`` or ``high`` (equally likely).
        level: σ ≥ 0 for ``"gaussian"``, a probability in ``[0, 1]`` otherwise.
        generator: the random generator to draw from; one on another device than ``x`` (a
            CPU generator for data on the GPU) draws uniforms there and compares them with x.
        low, high: the salt-and-pepper values; default ``x.min()`` and ``x.max()``.

    Example:
        >>> corrupt(torch.ones(2, 3), "mask", 1.0)
        tensor([[0., 0., 0.],
                [0., 0., 0.]])
    """
    noise = _check_noise(noise, level)
    if not x.is_floating_point():
        raise DataError(f"corrupt needs floating-point data, got {x.dtype}")
    device = x.device if generator is None else generator.device  # draw where the generator lives
    if noise == "gaussian":
        return x + level * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=device).to(x.device)
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=device).to(x.device)
    if noise == "mask":
        return x.masked_fill(u < level, 0.0)
    if x.numel() == 0:
        return x.clone()
    low = float(x.min()) if low is None else float(low)
    high = float(x.max()) if high is None else float(high)
    # One uniform draw per entry: u < level/2 -> low ("pepper"), level/2 <= u < level -> high ("salt").
    return x.masked_fill(u < level / 2, low).masked_fill((u >= level / 2) & (u < level), high)


def parse_noise(spec: str) -> tuple[str, float]:
    """Parse a command-line corruption ``"name:level"``, e.g. ``"gaussian:0.3"`` -> ``("gaussian", 0.3)``.

    ``-`` may stand for ``_`` in the name (``"salt-pepper:0.1"``).
    """
    name, sep, value = str(spec).partition(":")
    if not sep:
        raise DataError(f"noise {spec!r} must be NAME:LEVEL, e.g. gaussian:0.3, mask:0.25 or salt_pepper:0.1")
    try:
        level = float(value)
    except ValueError:
        raise DataError(f"noise level in {spec!r} must be a number, got {value!r}") from None
    return _check_noise(name, level), level


def _check_noise(noise: Any, level: Any) -> str:
    name = str(noise).strip().lower().replace("-", "_")
    if name not in NOISE_TYPES:
        raise DataError(f"unknown noise {noise!r}; choose one of {', '.join(NOISE_TYPES)}")
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not math.isfinite(level):
        raise DataError(f"noise level must be a finite number, got {level!r}")
    if name == "gaussian" and level < 0:
        raise DataError(f"gaussian noise level is a standard deviation and must be >= 0, got {level}")
    if name != "gaussian" and not 0.0 <= level <= 1.0:
        raise DataError(f"{name} noise level is a probability and must lie in [0, 1], got {level}")
    return name


def _check_probabilities(x: torch.Tensor) -> None:
    if not x.is_floating_point():
        raise DataError(f"binarize needs floating-point intensities in [0, 1], got {x.dtype}")
    if x.numel():
        low, high = torch.aminmax(x)
        if bool(low < 0) or bool(high > 1) or bool(torch.isnan(low) | torch.isnan(high)):
            raise DataError(
                f"binarize needs values in [0, 1] (probabilities) but they lie in [{float(low):g}, {float(high):g}]; "
                "scale the data first, e.g. divide 8-bit images by 255"
            )
