"""File-backed datasets (--stream): every read checked against the in-memory loaders (load_dataset)."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from vaekit.data import (
    FileDataset,
    batch_loader,
    estimated_memory_bytes,
    fits_in_memory,
    load_dataset,
    open_file_dataset,
)
from vaekit.data import streaming
from vaekit.errors import DataError


def _same_as_in_memory(path, split="train", image_size=None, seed=0) -> FileDataset:
    """Compare everything a FileDataset reads with load_dataset's tensors, bit for bit."""
    memory = load_dataset(path, split=split, image_size=image_size)
    data = open_file_dataset(path, split=split, image_size=image_size)
    n = len(memory)
    assert len(data) == n and data.input_shape == memory.input_shape and data.name == memory.name
    assert data.classes == memory.classes and data.num_classes == memory.num_classes
    assert (data.y is None) == (memory.y is None)
    if memory.y is not None:
        assert torch.equal(data.y, memory.y)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, n, (2 * n,), generator=g)  # unsorted, with repeats
    assert torch.equal(data.rows(idx), memory.x[idx])
    assert data.rows(idx).dtype == torch.float32
    assert torch.equal(data.rows(idx.numpy()), memory.x[idx]) and torch.equal(data.rows(idx.tolist()), memory.x[idx])
    # subsets of subsets: slice, then index tensor, then mask, then negative positions
    perm = torch.randperm(n, generator=g)
    mask = torch.rand(n - 1, generator=g) < 0.5
    view, expected = data[1:][perm[: n // 2].clamp(max=n - 2)], memory[1:][perm[: n // 2].clamp(max=n - 2)]
    view2, expected2 = data[1:][mask][::-2], memory.x[1:][mask].flip(0)[::2]
    assert len(view) == len(expected) and torch.equal(view.load().x, expected.x)
    if memory.y is not None:
        assert torch.equal(view.y, expected.y) and torch.equal(view.load().y, expected.y)
    assert torch.equal(view2.load().x, expected2)
    assert torch.equal(view.rows([-1, 0, -1]), expected.x[[-1, 0, -1]])
    assert torch.equal(data[3].load().x, memory[3].x)
    # whole load and chunks
    whole = data.load()
    assert torch.equal(whole.x, memory.x) and whole.name == memory.name and whole.classes == memory.classes
    chunks = list(data.chunks(7))
    assert [len(c) for c in chunks[:-1]] == [7] * (len(chunks) - 1)
    assert torch.equal(torch.cat(chunks), memory.x)
    # pickling: a description, not the data
    copy = pickle.loads(pickle.dumps(view))
    assert torch.equal(copy.rows(idx[idx < len(view)]), expected.x[idx[idx < len(view)]])
    if memory.y is not None:
        assert torch.equal(copy.y, expected.y)
    return data


# ---------------------------------------------------------------- arrays


@pytest.mark.parametrize("make", [
    lambda rng: rng.integers(0, 256, (40, 28, 28), dtype=np.uint8),
    lambda rng: rng.normal(size=(33, 5)).astype(np.float32),
    lambda rng: rng.integers(0, 256, (30, 6, 6)).astype(np.int16),      # all in 0..255: 8-bit, /255
    lambda rng: rng.integers(-3, 300, (30, 6, 6)).astype(np.int16),     # not 8-bit: values kept
    lambda rng: rng.integers(0, 256, (25, 8, 8, 3), dtype=np.uint8),    # channels-last -> (3, 8, 8)
    lambda rng: rng.random((12, 9, 7, 4)) < 0.5,                        # booleans, channels-last
], ids=["uint8", "float32", "int16-8bit", "int16-wide", "channels-last", "bool"])
def test_npy_reads_equal_the_in_memory_loader(tmp_path, make):
    array = make(np.random.default_rng(1))
    np.save(tmp_path / "x.npy", array)
    data = _same_as_in_memory(tmp_path / "x.npy")
    assert data._source.eight_bit == (array.dtype == np.uint8 or (array.dtype.kind == "i" and 0 <= array.min()
                                                                     and array.max() <= 255))


def test_npz_with_labels_and_with_two_splits(tmp_path):
    rng = np.random.default_rng(2)
    np.savez(tmp_path / "xy.npz", y=rng.integers(0, 5, 31), x=rng.integers(0, 256, (31, 10, 10), dtype=np.uint8))
    data = _same_as_in_memory(tmp_path / "xy.npz")
    assert data.y.dtype == torch.int64
    np.savez(tmp_path / "split.npz", x_train=rng.normal(size=(20, 6)), y_train=rng.integers(0, 3, 20),
             x_test=rng.integers(0, 256, (17, 5, 5, 1)).astype(np.int32), y_test=rng.integers(0, 4, 17))
    test = _same_as_in_memory(tmp_path / "split.npz", split="test")
    assert test.name == "split/test" and test.input_shape == (1, 5, 5)
    train = _same_as_in_memory(tmp_path / "split.npz", split="train")
    assert len(train) == 20 and train.input_shape == (6,)
    np.savez(tmp_path / "cond.npz", images=rng.random((9, 4)), targets=rng.random((9, 2)))  # condition vectors
    assert _same_as_in_memory(tmp_path / "cond.npz").y.dtype == torch.float32
    with pytest.raises(DataError, match="has no split 'test'"):
        open_file_dataset(tmp_path / "xy.npz", split="test")


def test_npz_member_offset_is_inside_the_zip(tmp_path):
    # Members after the first, with long names: the offset must come from each member's local header.
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (11, 4, 4), dtype=np.uint8)
    np.savez(tmp_path / "m.npz", a_rather_long_member_name_first=np.zeros(3), labels=np.arange(11), data=x)
    data = open_file_dataset(tmp_path / "m.npz")
    raw = np.fromfile(tmp_path / "m.npz", dtype=np.uint8, count=x.nbytes, offset=data._source.offset)
    assert np.array_equal(raw.reshape(x.shape), x)
    assert torch.equal(data.rows(torch.arange(11)), torch.from_numpy(x).float().div(255).unsqueeze(1))


def test_unstreamable_arrays_are_refused_with_the_fix(tmp_path):
    x = np.zeros((6, 4), np.float32)
    np.savez_compressed(tmp_path / "c.npz", x=x)
    with pytest.raises(DataError, match=r"compressed \(np.savez_compressed\).*np.savez.*without --stream"):
        open_file_dataset(tmp_path / "c.npz")
    assert load_dataset(tmp_path / "c.npz").x.shape == (6, 4)  # the in-memory path still reads it
    np.save(tmp_path / "f.npy", np.asfortranarray(np.arange(24.0).reshape(6, 4)))
    with pytest.raises(DataError, match="Fortran.*ascontiguousarray"):
        open_file_dataset(tmp_path / "f.npy")
    np.savez(tmp_path / "fz.npz", x=np.asfortranarray(np.arange(24.0).reshape(6, 4)))
    with pytest.raises(DataError, match="Fortran"):
        open_file_dataset(tmp_path / "fz.npz")
    objects = np.empty((2, 2), dtype=object)
    np.save(tmp_path / "o.npy", objects, allow_pickle=True)
    with pytest.raises(DataError, match="pickled arrays are refused"):
        open_file_dataset(tmp_path / "o.npy")
    np.save(tmp_path / "v.npy", np.arange(5))
    with pytest.raises(DataError, match="at least 2 dimensions"):
        open_file_dataset(tmp_path / "v.npy")
    (tmp_path / "fake.npy").write_bytes(b"hello, not numpy")
    with pytest.raises(DataError, match="not a numpy"):
        open_file_dataset(tmp_path / "fake.npy")
    np.save(tmp_path / "t.npy", np.zeros((100, 50), np.uint8))
    with open(tmp_path / "t.npy", "r+b") as f:
        f.truncate(2000)
    with pytest.raises(DataError, match="truncated"):
        open_file_dataset(tmp_path / "t.npy")


@pytest.mark.parametrize("source", ["fashion-mnist", "digits", "sprites:16", "table.csv", "missing.npy"])
def test_sources_that_cannot_stream_say_so(tmp_path, source):
    if source.endswith(".csv"):
        (tmp_path / source).write_text("a,b\n1,2\n")
    path = source if source in ("fashion-mnist", "digits", "sprites:16") else tmp_path / source
    with pytest.raises(DataError, match="--stream takes a .npy file, an uncompressed .npz"):
        open_file_dataset(path)
    if source in ("fashion-mnist", "digits"):
        with pytest.raises(DataError, match="built-in data sets fit in memory"):
            open_file_dataset(path)


def test_indexing_errors_match_dataset(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((5, 3), np.float32))
    data = open_file_dataset(tmp_path / "x.npy")
    for bad in (5, -6, torch.tensor([0, 5]), [7]):
        with pytest.raises(IndexError):
            data[bad]
    with pytest.raises(IndexError):
        data.rows(torch.tensor([5]))
    with pytest.raises(IndexError, match="boolean mask"):
        data[torch.tensor([True, False])]
    with pytest.raises(IndexError, match="integer"):
        data.rows(torch.tensor([0.5]))
    assert len(data[[]]) == 0 and data.rows([]).shape == (0, 3)


# ---------------------------------------------------------------- image folders


def test_image_folder_reads_equal_the_in_memory_loader(tmp_path):
    rng = np.random.default_rng(4)
    for k, name in enumerate(["cats", "dogs", "owls"]):
        (tmp_path / "grey" / name).mkdir(parents=True)
        (tmp_path / "colour" / name).mkdir(parents=True)
        for i in range(4 + k):
            Image.fromarray(rng.integers(0, 256, (9, 7), dtype=np.uint8)).save(tmp_path / "grey" / name / f"{i}.png")
            size = (9 + i, 7)  # colour images differ in size: resized on read
            pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "colour" / name / f"{i}.png")
    grey = _same_as_in_memory(tmp_path / "grey")
    assert grey.classes == ["cats", "dogs", "owls"] and grey.input_shape == (1, 9, 7) and len(grey) == 15
    colour = _same_as_in_memory(tmp_path / "colour", image_size=(6, 5))
    assert colour.input_shape == (3, 6, 5)
    with pytest.raises(DataError, match="differ in size"):
        open_file_dataset(tmp_path / "colour")
    grey.release()  # a no-op for image folders


# ---------------------------------------------------------------- pickling, loaders


def test_pickle_is_a_small_description_and_reads_again(tmp_path):
    x = np.random.default_rng(5).integers(0, 256, (12_800, 28, 28), dtype=np.uint8)  # 10 MB
    np.save(tmp_path / "x.npy", x)
    data = open_file_dataset(tmp_path / "x.npy")
    data.rows(torch.arange(100))  # the map is open: it must not travel
    blob = pickle.dumps(data)
    assert len(blob) < 10_000 and len(pickle.dumps(data[100:9000:3])) < 10_000
    copy = pickle.loads(blob)
    assert copy._source._map is None
    idx = torch.tensor([12_799, 5, 5, 0])
    assert torch.equal(copy.rows(idx), torch.from_numpy(x[idx.numpy()]).float().div(255).unsqueeze(1))


def test_batch_loader_with_workers_yields_the_same_batches(tmp_path):
    rng = np.random.default_rng(6)
    np.save(tmp_path / "x.npy", rng.integers(0, 256, (90, 6, 6, 3), dtype=np.uint8))
    data = open_file_dataset(tmp_path / "x.npy")[5:]
    batches = list(torch.randperm(len(data), generator=torch.Generator().manual_seed(0)).split(8))
    serial = list(batch_loader(data, batches, num_workers=0))
    parallel = list(batch_loader(data, batches, num_workers=2, prefetch_factor=2))
    expected = load_dataset(tmp_path / "x.npy")[5:].x
    assert len(serial) == len(parallel) == len(batches)
    for b, s, p in zip(batches, serial, parallel):
        assert torch.equal(s, expected[b]) and torch.equal(p, expected[b])
    assert batch_loader(data, batches).num_workers == 0  # memory-mapped arrays read in this process
    (tmp_path / "img").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "img" / "a.png")
    cpus = len(os.sched_getaffinity(0))
    assert batch_loader(open_file_dataset(tmp_path / "img"), batches[:1]).num_workers == max(0, min(4, cpus - 1))


@pytest.mark.parametrize("workers", [0, 1])
def test_batch_loader_leaves_the_global_random_state_alone(tmp_path, workers):
    """Iterating a loader draws nothing from torch's global RNG, so a streamed run's noise is the in-memory run's."""
    np.save(tmp_path / "x.npy", np.zeros((10, 3), np.float32))
    data = open_file_dataset(tmp_path / "x.npy")
    torch.manual_seed(0)
    expected = torch.rand(4)
    torch.manual_seed(0)
    assert len(list(batch_loader(data, [torch.tensor([0, 1]), torch.tensor([2])], num_workers=workers))) == 2
    assert torch.equal(torch.rand(4), expected)


# ---------------------------------------------------------------- memory


def _rss_file() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssFile:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no RssFile in /proc/self/status")


def _peak_growth(data: FileDataset, batches: list[torch.Tensor]) -> int:
    start = peak = _rss_file()
    for b in batches:
        data.rows(b)
        peak = max(peak, _rss_file())
    return peak - start


def test_resident_memory_stays_bounded_over_an_epoch(tmp_path, monkeypatch):
    n = 255_000  # 28x28 uint8 rows: 200 MB
    path = tmp_path / "big.npy"
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, 28, 28))
    array[:] = np.arange(784, dtype=np.uint8).reshape(28, 28)
    array.flush()
    del array
    with open(path, "rb") as f:  # in the page cache: the test times reads, not the disk
        while f.read(64 << 20):
            pass
    batches = list(torch.randperm(n, generator=torch.Generator().manual_seed(0)).split(256))
    growth = _peak_growth(open_file_dataset(path), batches)
    assert growth < 60 << 20, f"RssFile grew by {growth / 2**20:.0f} MB"
    monkeypatch.setattr(streaming, "_RELEASE_BYTES", 1 << 62)  # the control: pages never released
    control = open_file_dataset(path)
    assert _peak_growth(control, batches) > 100 << 20
    before = _rss_file()
    control.release()  # and release() itself hands the pages back
    assert before - _rss_file() > 100 << 20


def test_estimated_memory_and_fits_in_memory(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((123, 10, 7, 3), np.uint8))
    assert estimated_memory_bytes(tmp_path / "x.npy") == 123 * 10 * 7 * 3 * 4
    np.savez_compressed(tmp_path / "c.npz", x_train=np.zeros((50, 9)), x_test=np.zeros((8, 9)))
    assert estimated_memory_bytes(tmp_path / "c.npz", split="test") == 8 * 9 * 4  # headers only, even compressed
    data = open_file_dataset(tmp_path / "x.npy")
    assert data.input_shape == (3, 10, 7) and estimated_memory_bytes(data[:23]) == 23 * 210 * 4
    assert fits_in_memory(tmp_path / "x.npy") and not fits_in_memory(tmp_path / "x.npy", fraction=1e-15)
    assert fits_in_memory("fashion-mnist")  # cannot stream: the in-memory loader is its only path
