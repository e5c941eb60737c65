"""The Dataset container and scikit-learn digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaekit.data import Dataset, load_dataset, load_digits
from vaekit.data.digits import digits_split_indices
from vaekit.errors import DataError


def test_dataset_properties_and_indexing():
    x = torch.arange(10 * 2 * 3, dtype=torch.float32).reshape(10, 2, 3)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 4])
    data = Dataset(x, y, name="toy")
    assert len(data) == 10 and data.input_shape == (2, 3) and data.num_classes == 5
    part = data[2:5]
    assert isinstance(part, Dataset) and len(part) == 3 and part.y.tolist() == [2, 0, 1]
    assert torch.equal(part.x, x[2:5]) and part.name == "toy"
    picked = data[torch.tensor([9, 0])]
    assert picked.y.tolist() == [4, 0] and torch.equal(picked.x[0], x[9])
    assert data[[1, 2]].y.tolist() == [1, 2]
    masked = data[y == 2]
    assert len(masked) == 3 and masked.y.tolist() == [2, 2, 2]
    one = data[-1]
    assert len(one) == 1 and one.y.tolist() == [4]
    assert len(data[np.int64(3)]) == 1
    with pytest.raises(IndexError):
        data[10]
    assert len(list(data)) == 10  # iteration stops
    assert "n=10" in repr(data) and "5 classes" in repr(data)


def test_dataset_without_labels_or_with_conditions():
    assert Dataset(torch.zeros(3, 4)).num_classes is None
    cond = Dataset(torch.zeros(3, 4), torch.zeros(3, 2))
    assert cond.num_classes is None and len(cond[:2].y) == 2
    named = Dataset(torch.zeros(2, 1), torch.tensor([0, 0]), classes=["a", "b", "c"])
    assert named.num_classes == 3


def test_dataset_length_mismatch_names_both_lengths():
    with pytest.raises(DataError, match=r"x has 5 examples but y has 4"):
        Dataset(torch.zeros(5, 3), torch.zeros(4, dtype=torch.int64))
    with pytest.raises(DataError, match="torch.Tensor"):
        Dataset(np.zeros((5, 3)))


def test_digits_splits_are_disjoint_stratified_and_cover_everything():
    train, test, everything = load_digits("train"), load_digits("test"), load_digits("all")
    assert len(train) + len(test) == len(everything) == 1797
    assert len(test) == 360
    assert train.x.shape[1:] == (1, 8, 8) and train.x.dtype == torch.float32 and train.y.dtype == torch.int64
    assert float(everything.x.min()) == 0.0 and float(everything.x.max()) == 1.0
    # The splits are the rows of the full set picked by two disjoint index sets covering it.
    split = digits_split_indices(everything.y.numpy())
    assert not set(split["train"]) & set(split["test"])
    assert sorted([*split["train"], *split["test"]]) == list(range(1797))
    assert torch.equal(train.x, everything.x[split["train"]]) and torch.equal(train.y, everything.y[split["train"]])
    assert torch.equal(test.x, everything.x[split["test"]]) and torch.equal(test.y, everything.y[split["test"]])
    # x is scikit-learn's pixels / 16, labels are its targets.
    from sklearn.datasets import load_digits as sklearn_digits

    raw = sklearn_digits()
    torch.testing.assert_close(everything.x.flatten(1), torch.tensor(raw.data / 16, dtype=torch.float32))
    assert everything.y.tolist() == raw.target.tolist()
    # Stratified: each class contributes about 20 % of its examples to the test split.
    share = test.y.bincount(minlength=10).float() / everything.y.bincount(minlength=10).float()
    assert torch.all((share - 0.2).abs() < 0.02)
    # Fixed: the same on every call.
    assert torch.equal(load_digits("test").x, test.x)


def test_digits_via_load_dataset_and_bad_split():
    assert len(load_dataset("digits", split="test")) == 360
    with pytest.raises(DataError, match="digits has no split 'val'"):
        load_digits("val")


def test_an_empty_index_list_selects_no_examples():
    """data[[]] is the empty subset, as x[torch.tensor([], dtype=torch.long)] would be, not a torch IndexError."""
    data = Dataset(torch.rand(4, 3), torch.tensor([0, 1, 2, 1]))
    for index in ([], np.array([])):
        empty = data[index]
        assert len(empty) == 0 and empty.input_shape == (3,) and empty.y.shape == (0,)


def test_slices_with_negative_steps_select_as_python_does():
    """data[::-1], data[5:1:-2] and data[-1::-3] give the examples (and labels) Python's slicing of the positions gives."""
    from vaekit.data import Dataset

    x, y = torch.arange(8.0).reshape(8, 1), torch.arange(8)
    data = Dataset(x, y)
    for key in (slice(None, None, -1), slice(5, 1, -2), slice(-1, None, -3), slice(2, 5, -1)):
        expected = list(range(8))[key]
        got = data[key]
        assert got.y.tolist() == expected and got.x[:, 0].tolist() == [float(i) for i in expected]
