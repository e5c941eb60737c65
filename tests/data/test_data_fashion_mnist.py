"""IDX parsing and the Fashion-MNIST loader: synthetic files, corrupt files, and the real data."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from vaekit.data import load_dataset, load_fashion_mnist, read_idx
from vaekit.data.fashion_mnist import DEFAULT_FASHION_MNIST_DIR, find_fashion_mnist
from vaekit.errors import DataError

TYPE_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype(">i2"): 0x0B, np.dtype(">i4"): 0x0C,
              np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


def idx_bytes(array: np.ndarray, type_code: int | None = None) -> bytes:
    """Encode ``array`` as IDX, written here independently of the parser under test."""
    big = array.astype(array.dtype.newbyteorder(">"))
    code = TYPE_CODES[big.dtype] if type_code is None else type_code
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + big.tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    data = idx_bytes(array)
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data, compresslevel=1)
    path.write_bytes(data)
    return path


def write_fashion(directory: Path, n_train: int = 12, n_test: int = 5, gz: bool = False, seed: int = 0):
    """A tiny Fashion-MNIST look-alike; returns the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        write_idx(directory / f"{prefix}-images-idx3-ubyte", images, gz)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte", labels, gz)
        arrays[prefix] = (images, labels)
    return arrays


# ---------------------------------------------------------------- read_idx

@settings(max_examples=30, deadline=None)
@given(
    array=hnp.arrays(
        dtype=st.sampled_from([np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]),
        shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5),
    ),
    gz=st.booleans(),
)
def test_read_idx_round_trip(tmp_path_factory, array, gz):
    path = write_idx(tmp_path_factory.mktemp("idx") / "a-idx", array, gz)
    back = read_idx(path)
    assert back.shape == array.shape
    assert back.dtype == array.dtype.newbyteorder("=")
    np.testing.assert_array_equal(back, array)
    back[...] = 0  # writable


def test_read_idx_recognises_gzip_from_content_not_name(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "no-suffix"
    path.write_bytes(gzip.compress(idx_bytes(array)))
    np.testing.assert_array_equal(read_idx(path), array)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: b[:-1], "truncated"),
        (lambda b: b + b"\x00", "longer than its header"),
        (lambda b: b[:6], "truncated"),
        (lambda b: b"\x00\x00\x07\x01" + b[4:], "invalid magic"),
        (lambda b: b"\x01\x00" + b[2:], "invalid magic"),
    ],
)
def test_read_idx_rejects_corrupt_files(tmp_path, mutate, message):
    path = tmp_path / "bad"
    path.write_bytes(mutate(idx_bytes(np.zeros((2, 3), np.uint8))))
    with pytest.raises(DataError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_expected_magic_and_bad_gzip(tmp_path):
    path = write_idx(tmp_path / "labels", np.zeros(3, np.uint8))
    assert read_idx(path, expected_magic=2049).shape == (3,)
    with pytest.raises(DataError, match="magic number 2049, expected 2051"):
        read_idx(path, expected_magic=2051)
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(idx_bytes(np.zeros((50, 50), np.uint8)))[:40])
    with pytest.raises(DataError, match="gzip"):
        read_idx(bad)
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "missing")


# ---------------------------------------------------------------- load_fashion_mnist on synthetic files

@pytest.mark.parametrize("gz", [False, True])
def test_load_synthetic_fashion(tmp_path, gz):
    arrays = write_fashion(tmp_path, gz=gz)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        data = load_fashion_mnist(split, data_dir=tmp_path)
        images, labels = arrays[prefix]
        assert data.x.shape == (len(images), 1, 28, 28) and data.x.dtype == torch.float32
        assert data.y.dtype == torch.int64
        torch.testing.assert_close(data.x[:, 0], torch.from_numpy(images).float() / 255, rtol=0, atol=0)
        assert data.y.tolist() == labels.tolist()
    both = load_fashion_mnist("all", data_dir=tmp_path)
    assert len(both) == 17 and both.y[:12].tolist() == arrays["train"][1].tolist()


def test_data_dir_may_hold_a_fashion_mnist_subfolder_and_env_var_is_used(tmp_path, monkeypatch):
    (tmp_path / "fashion-mnist").mkdir()
    write_fashion(tmp_path / "fashion-mnist")
    assert len(load_fashion_mnist("train", data_dir=tmp_path)) == 12
    monkeypatch.setenv("VAEKIT_DATA", str(tmp_path))
    assert find_fashion_mnist() == tmp_path / "fashion-mnist"
    assert len(load_fashion_mnist("test")) == 5
    monkeypatch.setenv("VAEKIT_DATA", str(tmp_path / "fashion-mnist"))
    assert find_fashion_mnist() == tmp_path / "fashion-mnist"
    monkeypatch.setenv("VAEKIT_DATA", str(tmp_path / "elsewhere"))
    assert find_fashion_mnist() == DEFAULT_FASHION_MNIST_DIR


def test_missing_files_name_directory_file_and_fix(tmp_path):
    with pytest.raises(DataError) as info:
        load_fashion_mnist("train", data_dir=tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and "train-images-idx3-ubyte" in message
    assert "apt-get install dataset-fashion-mnist" in message and "--data-dir" in message
    assert "VAEKIT_DATA" in message


def _corrupt_magic(directory: Path) -> str:
    path = directory / "train-images-idx3-ubyte"
    data = bytearray(path.read_bytes())
    data[3] = 2  # 0x0802: a 2-D array instead of 3-D images
    path.write_bytes(bytes(data))
    return path.name


def _truncate(directory: Path) -> str:
    path = directory / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    return path.name


def _count_mismatch(directory: Path) -> str:
    write_idx(directory / "train-labels-idx1-ubyte", np.zeros(11, np.uint8))
    return "train-labels-idx1-ubyte"


def _wrong_size(directory: Path) -> str:
    write_idx(directory / "train-images-idx3-ubyte", np.zeros((12, 28, 27), np.uint8))
    return "train-images-idx3-ubyte"


def _label_range(directory: Path) -> str:
    write_idx(directory / "train-labels-idx1-ubyte", np.full(12, 10, np.uint8))
    return "train-labels-idx1-ubyte"


@pytest.mark.parametrize("damage, expected", [
    (_corrupt_magic, "magic number 2050, expected 2051"),
    (_truncate, "truncated"),
    (_count_mismatch, "11 labels for 12 images"),
    (_wrong_size, r"\(12, 28, 27\)"),
    (_label_range, "out of range"),
])
def test_corrupt_files_raise_data_error_naming_directory_and_file(tmp_path, damage, expected):
    write_fashion(tmp_path)
    name = damage(tmp_path)
    load_fashion_mnist("test", data_dir=tmp_path)  # the undamaged split still loads
    with pytest.raises(DataError, match=expected) as info:
        load_fashion_mnist("train", data_dir=tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and name in message
    assert "apt-get install dataset-fashion-mnist" in message


def test_unknown_split(tmp_path):
    write_fashion(tmp_path)
    with pytest.raises(DataError, match="'validation'"):
        load_fashion_mnist("validation", data_dir=tmp_path)


# ---------------------------------------------------------------- the real data (CI installs it; must not skip)

def test_real_fashion_mnist():
    train = load_fashion_mnist("train", data_dir=DEFAULT_FASHION_MNIST_DIR)
    test = load_dataset("fashion-mnist", split="test", data_dir=DEFAULT_FASHION_MNIST_DIR)
    assert train.x.shape == (60000, 1, 28, 28) and test.x.shape == (10000, 1, 28, 28)
    assert train.x.dtype == test.x.dtype == torch.float32
    for data, n in ((train, 6000), (test, 1000)):
        assert data.y.dtype == torch.int64
        assert data.y.bincount().tolist() == [n] * 10  # labels 0..9, balanced
        assert data.num_classes == 10
        assert float(data.x.min()) == 0.0 and float(data.x.max()) == 1.0
    # x is exactly bytes / 255: every value times 255 is an integer.
    scaled = train.x[:1000] * 255
    torch.testing.assert_close(scaled, scaled.round(), rtol=0, atol=1e-4)
