"""as_dataset, check_data and check_labels: what they accept and what they say when they refuse."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaekit.data import Dataset, as_dataset, check_data, check_labels
from vaekit.errors import DataError


def test_as_dataset_accepts_the_documented_forms():
    data = Dataset(torch.zeros(2, 3))
    assert as_dataset(data) is data
    from_numpy = as_dataset(np.arange(6, dtype=np.uint8).reshape(2, 3))
    assert from_numpy.x.dtype == torch.float32 and from_numpy.x.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert from_numpy.y is None
    from_tensor = as_dataset(torch.ones(4, 1, 2, 2, dtype=torch.float64))
    assert from_tensor.x.dtype == torch.float32 and from_tensor.input_shape == (1, 2, 2)
    labelled = as_dataset((np.zeros((3, 2)), np.array([2, 0, 1], dtype=np.int32)))
    assert labelled.y.dtype == torch.int64 and labelled.num_classes == 3
    conditioned = as_dataset((torch.zeros(3, 2), torch.rand(3, 4, dtype=torch.float64)))
    assert conditioned.y.dtype == torch.float32 and conditioned.y.shape == (3, 4)
    assert as_dataset((torch.zeros(3, 2), None)).y is None


@pytest.mark.parametrize("bad", [[1.0, 2.0], "data.npy", 3, {"x": np.zeros(2)}, (np.zeros((2, 2)),)])
def test_as_dataset_refuses_other_things(bad):
    with pytest.raises(DataError, match="a vaekit Dataset, a torch.Tensor, a numpy array, or an \\(x, y\\) tuple"):
        as_dataset(bad, name="train")


def test_as_dataset_checks_labels():
    with pytest.raises(DataError, match="2 entries for 3 examples"):
        as_dataset((np.zeros((3, 2)), np.array([0, 1])))
    with pytest.raises(DataError, match="label -2"):
        as_dataset((np.zeros((3, 2)), np.array([0, -2, 1])))
    with pytest.raises(DataError, match="numeric"):
        as_dataset((np.zeros((2, 2)), np.array(["a", "b"])))


def test_check_data_accepts_good_data():
    check_data(torch.rand(5, 1, 28, 28), input_shape=(1, 28, 28), likelihood="bernoulli")
    check_data(np.random.default_rng(0).normal(size=(4, 3)), likelihood="gaussian")


def test_check_data_messages():
    with pytest.raises(DataError, match=r"data has shape \(5, 784\) but the model expects \(N, 1, 28, 28\); "
                                        r"reshape it with x.reshape\(-1, 1, 28, 28\)"):
        check_data(torch.rand(5, 784), input_shape=(1, 28, 28))
    with pytest.raises(DataError, match=r"has shape \(5, 10\) but the model expects \(N, 1, 28, 28\)$"):
        check_data(torch.rand(5, 10), input_shape=[1, 28, 28])
    with pytest.raises(DataError, match="empty"):
        check_data(torch.zeros(0, 3))
    with pytest.raises(DataError, match="at least 2 dimensions"):
        check_data(torch.zeros(3))
    x = torch.rand(4, 2, 3)
    x[1, 0, 2] = float("nan")
    x[3, 1, 1] = float("inf")
    with pytest.raises(DataError, match=r"val has 2 non-finite value\(s\).*first is at index \(1, 0, 2\)"):
        check_data(x, name="val")
    for likelihood in ("bernoulli", "logistic"):
        with pytest.raises(DataError, match=r"values in \[0, 255\] but the .* needs values in \[0, 1\]; "
                                            r"scale it to \[0, 1\] first \(e.g. divide 8-bit images by 255\), or use likelihood=\"gaussian\""):
            check_data(torch.tensor([[0.0, 255.0]]), likelihood=likelihood)
    check_data(torch.tensor([[0.0, 255.0]]), likelihood="gaussian")  # no range for gaussian
    with pytest.raises(DataError, match=r"\[-0.5, 1\]"):
        check_data(torch.tensor([[-0.5, 1.0]]), likelihood="bernoulli")


def test_check_labels():
    check_labels(torch.tensor([0, 3, 1]), 3)
    check_labels(torch.rand(3, 5), 3)
    with pytest.raises(DataError, match="4 entries for 3 examples"):
        check_labels(torch.tensor([0, 1, 2, 3]), 3)
    with pytest.raises(DataError, match="non-finite.*example 1"):
        check_labels(torch.tensor([[0.0, 1.0], [float("nan"), 0.0]]), 2)
    with pytest.raises(DataError, match="example 2 has label -1"):
        check_labels(np.array([0, 1, -1]), 3)
    with pytest.raises(DataError, match=r"shape \(2,\)"):
        check_labels(torch.zeros(2, 2, dtype=torch.int64), 2)


def test_big_endian_numpy_arrays_are_checked_and_converted_like_native_ones():
    """Big-endian arrays (dtype ">i4", ">f8") against their native-order copies: same result, no torch error."""
    x_be, y_be = np.array([[0.5, 2.0], [0.0, 1.0]], ">f8"), np.array([1, 0], ">i4")
    data = as_dataset((x_be, y_be))
    assert data.y.tolist() == [1, 0] and data.x.tolist() == x_be.astype("<f8").tolist()
    check_labels(y_be, 2)
    with pytest.raises(DataError, match=r"values in \[0, 2\] but the bernoulli"):
        check_data(x_be, likelihood="bernoulli")
    with pytest.raises(DataError, match=r"non-finite.*index \(1, 0\)"):
        check_data(np.array([[0.5, 1.0], [np.nan, 0.0]], ">f4"))
