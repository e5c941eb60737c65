"""The in-memory dataset every vaekit loader returns: a float tensor of examples and optional labels."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any

import torch

from vaekit.errors import DataError

__all__ = ["Dataset"]


@dataclass(eq=False, repr=False)
class Dataset:
    """A whole dataset held in memory as tensors.

    Batches are sliced from ``x`` (and ``y``) directly; there is no per-example Python
    object, so a training epoch over 60 000 images costs a permutation and some slicing.

    Arguments:
        x: the examples, ``float32`` of shape ``(N, *input_shape)`` (images are
            ``(N, C, H, W)`` with values in ``[0, 1]``; tables are ``(N, D)``).
        y: ``None``, or one entry per example: ``int64`` class labels of shape ``(N,)``,
            or ``float32`` conditioning vectors of shape ``(N, K)``.
        name: a short human-readable name (``"fashion-mnist/train"``), used in messages.
        classes: the class names, ``classes[i]`` being the name of label ``i``, where
            the source has names (an image folder's subdirectories); else ``None``.

    Example:
        >>> data = Dataset(torch.rand(10, 1, 8, 8), torch.arange(10) % 3, name="toy")
        >>> len(data), data.input_shape, data.num_classes
        (10, (1, 8, 8), 3)
        >>> len(data[:4]), len(data[torch.tensor([0, 2])])
        (4, 2)
    """

    x: torch.Tensor
    y: torch.Tensor | None = None
    name: str = ""
    classes: list[str] | None = field(default=None)

    def __post_init__(self) -> None:
        if not isinstance(self.x, torch.Tensor):
            raise DataError(f"Dataset {self.name!r}: x must be a torch.Tensor, got {type(self.x).__name__}")
        if self.x.dim() < 1:
            raise DataError(f"Dataset {self.name!r}: x must have a leading example dimension, got a scalar")
        if self.y is not None:
            if not isinstance(self.y, torch.Tensor):
                raise DataError(f"Dataset {self.name!r}: y must be a torch.Tensor or None, got {type(self.y).__name__}")
            if self.y.dim() < 1 or self.y.shape[0] != self.x.shape[0]:
                got = self.y.shape[0] if self.y.dim() >= 1 else "a scalar"
                raise DataError(
                    f"Dataset {self.name!r}: x has {self.x.shape[0]} examples but y has {got}; "
                    "give exactly one label (or condition vector) per example"
                )

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one example, ``x.shape[1:]``."""
        return tuple(self.x.shape[1:])

    @property
    def num_classes(self) -> int | None:
        """``max(y) + 1`` for integer class labels (``len(classes)`` if larger); ``None`` otherwise."""
        if self.y is None or self.y.is_floating_point() or self.y.dtype == torch.bool or self.y.dim() != 1:
            return None
        k = int(self.y.max()) + 1 if self.y.numel() else 0
        return max(k, len(self.classes)) if self.classes is not None else k

    def __getitem__(self, index: Any) -> "Dataset":
        """The subset selected by ``index``: a slice (negative steps too, as in Python), an index
        tensor/list/array, or a boolean mask.

        An integer ``i`` gives the one-example subset ``self[i:i+1]`` (``IndexError`` when
        out of range), so every result is a ``Dataset``.
        """
        index = position_as_slice(index, len(self))
        if isinstance(index, slice) and index.step is not None and index.step < 0:  # torch slices only forwards
            positions = range(len(self))[index]
            index = positions.start + positions.step * torch.arange(len(positions), dtype=torch.long)
        if not isinstance(index, (slice, torch.Tensor)):
            index = torch.as_tensor(index)
            if index.numel() == 0 and index.is_floating_point():  # [] becomes a float tensor: select nothing
                index = index.long()
        y = None if self.y is None else self.y[index]
        return Dataset(self.x[index], y, name=self.name, classes=self.classes)

    def __repr__(self) -> str:
        if self.y is None:
            labels = "unlabelled"
        elif self.num_classes is not None:
            labels = f"{self.num_classes} classes"
        else:
            labels = f"conditions {tuple(self.y.shape[1:])}"
        return f"Dataset(name={self.name!r}, n={len(self)}, input_shape={self.input_shape}, {labels})"


def position_as_slice(index: Any, n: int) -> Any:
    """An integer position ``i`` (int, numpy or 0-d tensor) as the one-example slice ``i:i+1`` of ``n`` examples
    (``IndexError`` when out of range); any other index as it is."""
    position = _as_position(index)
    if position is None:
        return index
    if not -n <= position < n:
        raise IndexError(f"index {position} is out of range for a dataset of {n} examples")
    position %= n
    return slice(position, position + 1)


def _as_position(index: Any) -> int | None:
    """``index`` as a Python int when it is a single integer position (int, numpy or 0-d tensor)."""
    if isinstance(index, bool):
        return None
    if isinstance(index, torch.Tensor) and (index.dim() != 0 or index.is_floating_point() or index.dtype == torch.bool):
        return None
    try:
        return operator.index(index)
    except TypeError:
        return None
