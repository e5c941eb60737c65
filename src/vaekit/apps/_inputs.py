"""Input handling shared by the applications: data to tensors, batched model calls, parameter checks."""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator

from vaekit.data import Dataset, as_dataset, check_data
from vaekit.errors import ConfigError, DataError

__all__ = ["Estimator", "as_examples", "as_labels", "batched", "check_model", "check_positive_int", "flat_array"]


class Estimator(BaseEstimator):
    """scikit-learn's ``get_params`` / ``set_params`` for the applications, so ``sklearn.base.clone`` works.

    The parameters are the constructor's arguments, stored unchanged under their own names
    (or under ``_attributes[name]`` where a method has the name, as ``AnomalyDetector.score``).
    """

    _attributes: ClassVar[dict[str, str]] = {}

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's arguments, by name (``deep`` is accepted for scikit-learn; nothing is nested)."""
        return {name: getattr(self, self._attributes.get(name, name)) for name in self._get_param_names()}

    def set_params(self, **params: Any) -> "Estimator":
        """Set constructor arguments by name; returns ``self`` (refit to apply them)."""
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ConfigError(f"{type(self).__name__} has no parameter {name!r}; its parameters are {', '.join(valid)}")
            setattr(self, self._attributes.get(name, name), value)
        return self

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if k != "model")
        return f"{type(self).__name__}({params})"


def check_model(model: Any, owner: str) -> None:
    """``model`` must be an unconditional vaekit model (apps encode x alone)."""
    from vaekit.models import LatentVariableModel

    if not isinstance(model, LatentVariableModel):
        raise ConfigError(f"{owner}: model must be a vaekit model (vaekit.create / vaekit.load), got {type(model).__name__}")
    if model.conditional:
        raise ConfigError(f"{owner}: model is conditional (its codes depend on labels); the applications need an unconditional model")


def as_examples(X: Any, model: Any, name: str = "X") -> torch.Tensor:
    """``X`` (tensor, numpy array or vaekit Dataset) as a float tensor checked against the model's input shape."""
    X = as_dataset(X, name=name).x.detach().to(torch.float32)
    check_data(X, input_shape=model.input_shape, name=name)
    return X


def as_labels(y: Any, X: Any, n: int, name: str = "y") -> np.ndarray:
    """Class labels as a 1-D numpy array of length n (taken from a Dataset ``X`` when ``y`` is None)."""
    if y is None and isinstance(X, Dataset):
        y = X.y
    if y is None:
        raise DataError(f"{name} is missing: give one label per example (or a labelled vaekit Dataset as X)")
    labels = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if labels.ndim != 1 or labels.shape[0] != n:
        raise DataError(f"{name} must hold one label per example: expected shape ({n},), got {labels.shape}")
    return labels


@torch.no_grad()
def batched(model: Any, fn: Callable[[torch.Tensor], torch.Tensor], X: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``fn`` applied to ``X`` in batches on the model's device, in evaluation mode; results on the CPU."""
    was_training = model.training
    model.eval()
    device = model.device
    try:
        out = [fn(X[i : i + batch_size].to(device)).cpu() for i in range(0, X.shape[0], batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out)


def check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def flat_array(X: Any, dtype: type = np.float64) -> np.ndarray:
    """``X`` (tensor, array or Dataset) as a numpy array of flattened examples, shape (N, M)."""
    if isinstance(X, Dataset):
        X = X.x
    array = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
    if array.ndim < 1 or array.shape[0] == 0:
        raise DataError(f"expected a non-empty batch of examples, got shape {array.shape}")
    return array.reshape(array.shape[0], -1).astype(dtype)
