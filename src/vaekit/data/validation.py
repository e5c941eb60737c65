"""Checks that turn bad data into one clear :class:`~vaekit.errors.DataError` before training starts."""

from __future__ import annotations

import math

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from vaekit.data.dataset import Dataset
from vaekit.errors import DataError

__all__ = ["as_dataset", "check_data", "check_labels", "as_label_tensor", "UNIT_INTERVAL_LIKELIHOODS"]

#: Likelihoods whose observations must lie in ``[0, 1]``.
UNIT_INTERVAL_LIKELIHOODS = ("bernoulli", "continuous_bernoulli", "logistic", "discretized_logistic")

_ACCEPTED = "a vaekit Dataset, a torch.Tensor, a numpy array, or an (x, y) tuple of those"


def as_dataset(data: Any, name: str = "data") -> Dataset:
    """Turn what a user passes as training data into a :class:`Dataset`.

    Arguments:
        data: a :class:`Dataset` (returned as it is), a tensor or numpy array of examples,
            or an ``(x, y)`` tuple whose ``y`` may be ``None``.
        name: what to call the data in error messages (``"train"``, ``"val"``).

    ``x`` becomes float32 (values unchanged: no scaling). ``y`` becomes int64 class labels
    when its dtype is an integer type, float32 condition vectors otherwise; it is checked
    with :func:`check_labels`.

    Example:
        >>> data = as_dataset((np.zeros((4, 3)), np.array([0, 1, 1, 0])))
        >>> data.x.dtype, data.y.dtype, data.num_classes
        (torch.float32, torch.int64, 2)
    """
    if isinstance(data, Dataset):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2 and _is_array(data[0]):
        x, y = data
    elif _is_array(data):
        x, y = data, None
    else:
        raise DataError(f"{name}: cannot use a {type(data).__name__} as data; give {_ACCEPTED}")
    x_t = _float_tensor(x, name)
    if x_t.dim() == 0:
        raise DataError(f"{name}: x is a scalar; give an array with one row per example")
    y_t = None
    if y is not None:
        y_t = as_label_tensor(y, f"{name} labels")
        check_labels(y_t, x_t.shape[0], name=f"{name} labels")
    return Dataset(x_t, y_t, name=name)


def check_data(
    x: torch.Tensor | np.ndarray,
    *,
    input_shape: Sequence[int] | None = None,
    likelihood: str | None = None,
    name: str = "data",
) -> None:
    """Raise a DataError if ``x`` cannot be fed to a model; return ``None`` if it can.

    Checks, in order: at least 2 dimensions ``(N, ...)``; at least one example; each
    example of shape ``input_shape`` (when given); every value finite; values in
    ``[0, 1]`` for the likelihoods in :data:`UNIT_INTERVAL_LIKELIHOODS`.

    Example:
        >>> check_data(torch.rand(5, 784), input_shape=(1, 28, 28))
        Traceback (most recent call last):
        ...
        vaekit.errors.DataError: data has shape (5, 784) but the model expects (N, 1, 28, 28); reshape it with x.reshape(-1, 1, 28, 28)
    """
    x = torch.as_tensor(_native(x)) if isinstance(x, np.ndarray) else x
    if not isinstance(x, torch.Tensor):
        raise DataError(f"{name} must be a tensor or numpy array, got {type(x).__name__}")
    shape = tuple(x.shape)
    if x.dim() < 2:
        raise DataError(
            f"{name} has shape {shape} but needs at least 2 dimensions (N, ...), one row per example; "
            "for a single example use x.unsqueeze(0), for N scalars x.unsqueeze(1)"
        )
    if shape[0] == 0:
        raise DataError(f"{name} is empty (0 examples, shape {shape})")
    if input_shape is not None:
        expected = tuple(int(d) for d in input_shape)
        if shape[1:] != expected:
            message = f"{name} has shape {shape} but the model expects (N, {', '.join(map(str, expected))})"
            if int(np.prod(shape[1:])) == int(np.prod(expected)):
                message += f"; reshape it with x.reshape(-1, {', '.join(map(str, expected))})"
            raise DataError(message)
    low = high = None
    if x.is_floating_point() and x.numel():
        low, high = (float(v) for v in torch.aminmax(x))  # one pass: NaN propagates, ±inf shows in the extremes
    if x.is_complex() or (low is not None and not (math.isfinite(low) and math.isfinite(high))):
        bad = ~torch.isfinite(x)
        count = int(bad.sum())
        if count:
            first = np.unravel_index(int(bad.flatten().nonzero()[0]), shape)
            raise DataError(
                f"{name} has {count} non-finite value(s) (NaN or infinity); the first is at index "
                f"{tuple(int(i) for i in first)}; remove or impute them"
            )
    if likelihood in UNIT_INTERVAL_LIKELIHOODS:
        if low is None:
            low, high = (float(v) for v in torch.aminmax(x.float()))
        if low < 0.0 or high > 1.0:
            raise DataError(
                f"{name} has values in [{low:g}, {high:g}] but the {likelihood} likelihood needs values "
                "in [0, 1]; scale it to [0, 1] first (e.g. divide 8-bit images by 255), "
                'or use likelihood="gaussian" (--likelihood gaussian) for real-valued data'
            )


def check_labels(y: torch.Tensor | np.ndarray, n: int, name: str = "labels") -> None:
    """Raise a DataError unless ``y`` has ``n`` finite entries and, if integer, non-negative rank-1 labels."""
    y = torch.as_tensor(_native(y)) if isinstance(y, np.ndarray) else y
    if not isinstance(y, torch.Tensor):
        raise DataError(f"{name} must be a tensor or numpy array, got {type(y).__name__}")
    if y.dim() == 0 or y.shape[0] != n:
        got = "a scalar" if y.dim() == 0 else f"{y.shape[0]} entries"
        raise DataError(f"{name}: {got} for {n} examples; give exactly one label per example")
    if y.is_floating_point():
        bad = ~torch.isfinite(y)
        if bool(bad.any()):
            first = int(bad.flatten().nonzero()[0]) // max(1, y[0].numel())
            raise DataError(f"{name} has {int(bad.sum())} non-finite value(s); the first is in example {first}")
    elif y.dtype != torch.bool:
        if y.dim() != 1:
            raise DataError(
                f"{name}: integer class labels must have shape ({n},), got {tuple(y.shape)}; "
                "give one class index per example (float arrays are taken as condition vectors)"
            )
        if n and int(y.min()) < 0:
            first = int((y < 0).nonzero()[0])
            raise DataError(
                f"{name}: class labels must be 0, 1, ..., K-1 but example {first} has label {int(y[first])}"
            )


def as_label_tensor(y: Any, name: str = "labels") -> torch.Tensor:
    """``y`` as int64 (integer dtypes: class labels) or float32 (anything else numeric: conditions)."""
    if isinstance(y, torch.Tensor):
        tensor = y.detach()
    elif isinstance(y, np.ndarray) or isinstance(y, (list, tuple)):
        array = np.asarray(y)
        _check_numeric(array, name)
        tensor = torch.from_numpy(np.ascontiguousarray(_native(array)))
    else:
        raise DataError(f"{name}: cannot use a {type(y).__name__} as labels; give a tensor or numpy array")
    if tensor.is_complex():
        raise DataError(f"{name}: complex labels are not supported")
    if tensor.is_floating_point() or tensor.dtype == torch.bool:
        return tensor.to(torch.float32)
    return tensor.to(torch.int64)


def _is_array(obj: Any) -> bool:
    return isinstance(obj, (torch.Tensor, np.ndarray))


def _native(array: np.ndarray) -> np.ndarray:
    """``array`` in native byte order (torch refuses big-endian arrays, e.g. from ``dtype=">i4"``)."""
    return array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))


def _check_numeric(array: np.ndarray, name: str) -> None:
    if array.dtype.kind not in "biuf":
        raise DataError(f"{name} must be numeric, got a numpy array of dtype {array.dtype}")


def _float_tensor(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        _check_numeric(x, name)
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if isinstance(x, torch.Tensor):
        if x.is_complex():
            raise DataError(f"{name}: complex tensors are not supported")
        return x.detach().to(torch.float32)
    raise DataError(f"{name}: cannot use a {type(x).__name__} as x; give {_ACCEPTED}")
