"""Loading the user's own files: .npy/.npz arrays, image folders, CSV tables, and load_dataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vaekit.data import has_test_split, load_array, load_csv, load_dataset, load_image_folder
from vaekit.data.arrays import array_to_examples
from vaekit.errors import DataError

# ---------------------------------------------------------------- .npy / .npz


def test_npy_uint8_is_scaled_and_gets_a_channel(tmp_path):
    images = np.arange(5 * 4 * 3, dtype=np.uint8).reshape(5, 4, 3) * 4
    np.save(tmp_path / "x.npy", images)
    data = load_array(tmp_path / "x.npy")
    assert data.x.shape == (5, 1, 4, 3) and data.x.dtype == torch.float32 and data.y is None
    torch.testing.assert_close(data.x[:, 0], torch.from_numpy(images).float() / 255, rtol=0, atol=0)


def test_npy_floats_and_large_ints_are_kept(tmp_path):
    floats = np.linspace(-3, 7, 20, dtype=np.float64).reshape(4, 5)
    np.save(tmp_path / "f.npy", floats)
    torch.testing.assert_close(load_array(tmp_path / "f.npy").x, torch.tensor(floats, dtype=torch.float32))
    big = np.array([[0, 300], [5, 1]], dtype=np.int64)
    np.save(tmp_path / "i.npy", big)
    assert load_array(tmp_path / "i.npy").x.tolist() == [[0.0, 300.0], [5.0, 1.0]]
    small = np.array([[0, 255], [5, 1]], dtype=np.int64)  # ints in 0..255 count as 8-bit
    np.save(tmp_path / "s.npy", small)
    expected = torch.tensor([[0.0, 255.0], [5.0, 1.0]]) / 255
    assert torch.equal(load_array(tmp_path / "s.npy").x, expected)


@pytest.mark.parametrize("shape, expected", [
    ((6, 28, 28, 1), (6, 1, 28, 28)),
    ((6, 32, 32, 3), (6, 3, 32, 32)),
    ((6, 9, 7, 4), (6, 4, 9, 7)),
    ((6, 3, 32, 32), (6, 3, 32, 32)),  # already channels-first
    ((6, 1, 28, 28), (6, 1, 28, 28)),
    ((6, 3, 8, 3), (6, 3, 8, 3)),  # ambiguous: channels-first wins
    ((6, 10), (6, 10)),
])
def test_layout_rule(shape, expected):
    array = np.random.default_rng(0).random(shape).astype(np.float32)
    out = array_to_examples(array)
    assert tuple(out.shape) == expected
    if shape[-1] in (1, 3, 4) and shape[1] not in (1, 3, 4):
        torch.testing.assert_close(out, torch.from_numpy(array).permute(0, 3, 1, 2))
    else:
        torch.testing.assert_close(out.reshape(shape), torch.from_numpy(array))


def test_npz_keys_labels_and_splits(tmp_path):
    x = np.random.default_rng(0).random((7, 3)).astype(np.float32)
    np.savez(tmp_path / "a.npz", images=x, labels=np.array([0, 1, 2, 0, 1, 2, 3]))
    data = load_array(tmp_path / "a.npz")
    assert data.y.dtype == torch.int64 and data.num_classes == 4
    torch.testing.assert_close(data.x, torch.from_numpy(x))
    np.savez(tmp_path / "c.npz", X=x, y=np.ones((7, 2), dtype=np.float64))
    cond = load_array(tmp_path / "c.npz")
    assert cond.y.dtype == torch.float32 and cond.y.shape == (7, 2)
    np.savez(tmp_path / "s.npz", x_train=np.zeros((4, 2)), y_train=np.arange(4), x_test=np.ones((3, 2)),
             y_test=np.array([1, 1, 0]))
    train, test = load_array(tmp_path / "s.npz", "train"), load_array(tmp_path / "s.npz", "test")
    assert len(train) == 4 and train.y.tolist() == [0, 1, 2, 3] and float(train.x.sum()) == 0
    assert len(test) == 3 and test.y.tolist() == [1, 1, 0] and float(test.x.sum()) == 6
    np.savez(tmp_path / "arr.npz", np.zeros((2, 5)))
    assert load_array(tmp_path / "arr.npz").x.shape == (2, 5)


def test_pickled_object_arrays_are_refused(tmp_path):
    objects = np.empty(2, dtype=object)
    objects[:] = [{"a": 1}, [2]]
    np.save(tmp_path / "obj.npy", objects, allow_pickle=True)
    with pytest.raises(DataError, match="pickled arrays are refused"):
        load_array(tmp_path / "obj.npy")
    np.savez(tmp_path / "obj.npz", x=objects)
    with pytest.raises(DataError, match="pickled arrays are refused"):
        load_array(tmp_path / "obj.npz")


def test_array_errors(tmp_path):
    np.savez(tmp_path / "nokey.npz", weights=np.zeros((2, 2)))
    with pytest.raises(DataError, match="weights"):
        load_array(tmp_path / "nokey.npz")
    np.savez(tmp_path / "len.npz", x=np.zeros((3, 2)), y=np.arange(2))
    with pytest.raises(DataError, match="2 entries for 3 examples"):
        load_array(tmp_path / "len.npz")
    np.save(tmp_path / "flat.npy", np.zeros(5))
    with pytest.raises(DataError, match="at least 2 dimensions"):
        load_array(tmp_path / "flat.npy")
    (tmp_path / "text.npy").write_text("hello")
    with pytest.raises(DataError, match="not a numpy"):
        load_array(tmp_path / "text.npy")
    np.save(tmp_path / "one.npy", np.zeros((2, 2)))
    with pytest.raises(DataError, match="no split 'test'"):
        load_array(tmp_path / "one.npy", split="test")
    with pytest.raises(DataError, match="no such file"):
        load_array(tmp_path / "missing.npy")


def test_npz_with_big_endian_labels_loads_them_in_native_order(tmp_path):
    """An .npz whose arrays are big-endian (">f4", ">i4") loads as its native-order copy does."""
    x, y = np.array([[0.5, 1.0], [2.0, 3.0]], ">f4"), np.array([1, 0], ">i4")
    np.savez(tmp_path / "be.npz", x=x, y=y)
    data = load_array(tmp_path / "be.npz")
    assert data.x.tolist() == x.astype("<f4").tolist() and data.y.tolist() == [1, 0]


# ---------------------------------------------------------------- image folders


def _save(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)


def test_image_folder_with_classes(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for cls in ("cat", "ant"):
        for i in range(3):
            a = rng.integers(0, 256, size=(5, 6), dtype=np.uint8)
            arrays[(cls, i)] = a
            _save(tmp_path / cls / f"{i}.png", a)
    (tmp_path / "ant" / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden").mkdir()
    data = load_image_folder(tmp_path)
    assert data.classes == ["ant", "cat"] and data.y.tolist() == [0, 0, 0, 1, 1, 1]
    assert data.x.shape == (6, 1, 5, 6) and data.x.dtype == torch.float32
    torch.testing.assert_close(data.x[3, 0], torch.from_numpy(arrays[("cat", 0)]).float() / 255, rtol=0, atol=0)
    assert data.num_classes == 2


def test_image_folder_unlabelled_rgb_and_resize(tmp_path):
    rgb = np.zeros((4, 4, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    _save(tmp_path / "a.png", rgb)
    _save(tmp_path / "sub" / "b.bmp", np.full((8, 2), 128, dtype=np.uint8))
    with pytest.raises(DataError, match=r"differ in size.*4x4.*2x8|differ in size.*2x8.*4x4"):
        load_image_folder(tmp_path)
    data = load_image_folder(tmp_path, image_size=(3, 5))
    assert data.y is None and data.classes is None  # a.png sits at the top level
    assert data.x.shape == (2, 3, 3, 5)  # one colour image -> RGB for all
    torch.testing.assert_close(data.x[0, 0], torch.ones(3, 5))
    torch.testing.assert_close(data.x[0, 1], torch.zeros(3, 5))
    torch.testing.assert_close(data.x[1], torch.full((3, 3, 5), 128 / 255))
    grey = load_image_folder(tmp_path, image_size=(3, 5), mode="L")
    assert grey.x.shape == (2, 1, 3, 5)


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match="no image files"):
        load_image_folder(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load_image_folder(tmp_path / "missing")
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match="broken.png"):
        load_image_folder(tmp_path)
    with pytest.raises(DataError, match="mode"):
        load_image_folder(tmp_path, mode="CMYK")


def test_sixteen_bit_greyscale(tmp_path):
    a = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    Image.fromarray(a).save(tmp_path / "deep.png")
    data = load_image_folder(tmp_path)
    torch.testing.assert_close(data.x[0, 0], torch.from_numpy(a.astype(np.float32) / 65535))


# ---------------------------------------------------------------- CSV


def test_csv_with_header_and_label_column(tmp_path):
    (tmp_path / "t.csv").write_text("a, b ,label\n0.5,1,0\n\n2,-3e2,2\n")
    data = load_csv(tmp_path / "t.csv", label_column="label")
    assert data.x.tolist() == [[0.5, 1.0], [2.0, -300.0]] and data.x.dtype == torch.float32
    assert data.y.tolist() == [0, 2] and data.y.dtype == torch.int64
    by_index = load_csv(tmp_path / "t.csv", label_column=-1)
    assert by_index.y.tolist() == [0, 2]
    (tmp_path / "first.csv").write_text("3,0.5,1\n1,2,2\n")
    first = load_csv(tmp_path / "first.csv", label_column=0)
    assert first.x.tolist() == [[0.5, 1.0], [2.0, 2.0]] and first.y.tolist() == [3, 1]


def test_csv_without_header(tmp_path):
    (tmp_path / "n.csv").write_text("1,2,3\n4,5,6\n")
    data = load_csv(tmp_path / "n.csv")
    assert data.x.tolist() == [[1, 2, 3], [4, 5, 6]] and data.y is None


@pytest.mark.parametrize("text, label, message", [
    ("a,b\n1,2\n3\n", None, r"line 3: 1 cells but the header has 2"),
    ("a,b\n1,2\n3,nan\n", None, r"line 3, column 2 \('b'\).*not finite"),
    ("1,2\n3,x\n", None, r"line 2, column 2: 'x' is not a number"),
    ("a,b\n1,2\n3,\n", None, r"line 3, column 2 \('b'\): '' is not a number"),
    ("a,b\n1,0.5\n", "b", r"integer class labels"),
    ("a,b\n1,-1\n", "b", r"label -1"),
    ("a,b\n1,1\n", "c", r"no column 'c'"),
    ("1,1\n", "c", r"no header"),
    ("a,b\n", None, r"no data rows"),
    ("", None, r"empty"),
])
def test_csv_errors(tmp_path, text, label, message):
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(DataError, match=message):
        load_csv(tmp_path / "bad.csv", label_column=label)


def test_csv_label_column_given_as_an_index_string_with_a_header(tmp_path):
    """--label-column passes a string: "0" or "-1" names a column by index when no header cell is called that."""
    (tmp_path / "t.csv").write_text("label,a,b\n1,0.5,2\n0,3,4\n")
    for column in ("0", "-3", 0):
        data = load_csv(tmp_path / "t.csv", label_column=column)
        assert data.y.tolist() == [1, 0] and data.x.tolist() == [[0.5, 2.0], [3.0, 4.0]]
    (tmp_path / "named.csv").write_text("a,0\n5,1\n6,0\n")  # a column named "0" wins over index 0
    assert load_csv(tmp_path / "named.csv", label_column="0").y.tolist() == [1, 0]


def test_csv_quoted_cells_after_a_space_are_unquoted(tmp_path):
    """'a, "b"' is the header ['a', 'b'] and ' "2"' the number 2, as csv.reader(skipinitialspace=True) reads them."""
    (tmp_path / "q.csv").write_text('"a", "label"\n"1.5", "1"\n 2, "0"\n')
    data = load_csv(tmp_path / "q.csv", label_column="label")
    assert data.x.tolist() == [[1.5], [2.0]] and data.y.tolist() == [1, 0]


# ---------------------------------------------------------------- load_dataset


def test_load_dataset_dispatches_on_path(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 4), np.float32))
    (tmp_path / "t.csv").write_text("f,g\n1,0\n2,1\n")
    _save(tmp_path / "imgs" / "a.png", np.zeros((2, 2), np.uint8))
    assert load_dataset(tmp_path / "x.npy").x.shape == (3, 4)
    assert load_dataset(str(tmp_path / "t.csv"), label_column="g").y.tolist() == [0, 1]
    assert load_dataset(tmp_path / "imgs", image_size=(3, 3)).x.shape == (1, 1, 3, 3)
    with pytest.raises(DataError, match="no split 'test'"):
        load_dataset(tmp_path / "t.csv", split="test")
    np.savez(tmp_path / "two.npz", x_train=np.zeros((3, 4), np.float32), x_test=np.ones((2, 4), np.float32))
    np.savez(tmp_path / "one.npz", x=np.zeros((3, 4), np.float32))
    assert [has_test_split(tmp_path / f) for f in ("two.npz", "one.npz", "x.npy", "t.csv", "imgs")] == [True, False, False, False, False]
    assert has_test_split("digits") and has_test_split("fashion-mnist")


def test_load_dataset_errors(tmp_path):
    with pytest.raises(DataError, match=r"no such file or directory: .*nope\.npy; --data takes fashion-mnist, digits"):
        load_dataset(str(tmp_path / "nope.npy"))
    (tmp_path / "model.pt").write_bytes(b"\x00")
    with pytest.raises(DataError, match=r"unknown file type '\.pt'"):
        load_dataset(tmp_path / "model.pt")


def test_has_test_split_is_false_for_a_broken_or_misnamed_npz_and_load_dataset_says_why(tmp_path):
    """A truncated, empty or .npy-under-.npz-name file: has_test_split answers False (no crash) and
    load_dataset raises a DataError (or, for the misnamed .npy, loads it) as it does without has_test_split."""
    np.savez(tmp_path / "good.npz", x_train=np.zeros((3, 2)), x_test=np.zeros((2, 2)))
    whole = (tmp_path / "good.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "empty.npz").write_bytes(b"")
    np.save(tmp_path / "single.npy", np.zeros((3, 2), np.float32))
    (tmp_path / "single.npz").write_bytes((tmp_path / "single.npy").read_bytes())
    for name in ("truncated.npz", "empty.npz", "single.npz"):
        assert has_test_split(tmp_path / name) is False
    for name in ("truncated.npz", "empty.npz"):
        with pytest.raises(DataError, match="npz"):
            load_dataset(tmp_path / name)
    assert load_dataset(tmp_path / "single.npz").x.shape == (3, 2)


def test_load_dataset_refuses_a_data_dir_it_would_not_read(tmp_path):
    """data_dir locates the Fashion-MNIST IDX files; for the digits, an array or a CSV it is refused, not ignored."""
    from vaekit.data import load_dataset
    from vaekit.errors import ConfigError

    np.save(tmp_path / "x.npy", np.zeros((4, 3), dtype=np.float32))
    for source in ("digits", tmp_path / "x.npy"):
        with pytest.raises(ConfigError, match="data_dir .*does not read it"):
            load_dataset(source, data_dir=tmp_path)
    assert load_dataset(tmp_path / "x.npy").x.shape == (4, 3)
