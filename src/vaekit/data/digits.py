"""scikit-learn's 8x8 handwritten digits: 1797 images that ship inside scikit-learn.

Reference: E. Alpaydin, C. Kaynak, "Optical Recognition of Handwritten Digits",
UCI Machine Learning Repository, 1998 (the test part of that set, as packaged by
``sklearn.datasets.load_digits``).
"""

from __future__ import annotations

import numpy as np
import torch

from vaekit.data._splits import check_split
from vaekit.data.dataset import Dataset

__all__ = ["load_digits", "digits_split_indices", "DIGITS_TEST_SIZE", "DIGITS_SPLIT_SEED"]

#: Fraction of the digits held out as the fixed test split.
DIGITS_TEST_SIZE = 0.2
#: ``random_state`` of the fixed stratified split.
DIGITS_SPLIT_SEED = 0


def load_digits(split: str = "train") -> Dataset:
    """Load the 8x8 digits: ``x`` is ``(N, 1, 8, 8)`` float32 (pixel counts / 16), ``y`` int64 0..9.

    Arguments:
        split: ``"train"`` (80 %), ``"test"`` (20 %) or ``"all"`` (1797). Train and test
            come from one fixed stratified split (``test_size=0.2``, ``random_state=0``),
            so they never overlap and are the same on every machine.

    Example:
        >>> train, test = load_digits("train"), load_digits("test")
        >>> len(train) + len(test)
        1797
        >>> train.input_shape
        (1, 8, 8)
    """
    from sklearn.datasets import load_digits as sklearn_digits

    check_split(split, ("train", "test", "all"), "digits")
    bunch = sklearn_digits()
    pixels = np.asarray(bunch.data, dtype=np.float32) / 16.0
    labels = np.asarray(bunch.target, dtype=np.int64)
    if split != "all":
        index = digits_split_indices(labels)[split]
        pixels, labels = pixels[index], labels[index]
    x = torch.from_numpy(np.ascontiguousarray(pixels)).reshape(-1, 1, 8, 8)
    return Dataset(x, torch.from_numpy(labels), name=f"digits/{split}")


def digits_split_indices(labels: np.ndarray) -> dict[str, np.ndarray]:
    """The sorted example indices of the fixed stratified train/test split of ``labels``."""
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(
        np.arange(len(labels)), test_size=DIGITS_TEST_SIZE, random_state=DIGITS_SPLIT_SEED, stratify=labels
    )
    return {"train": np.sort(train), "test": np.sort(test)}
