"""Tests of vaekit.viz.grids: shapes, scaling, grid geometry, PNG writers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vaekit.errors import ConfigError, DataError
from vaekit.viz import image_grid, save_image_grid, save_image_rows, save_reconstructions, to_images


def _png(path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert("L") if im.mode == "L" else im)


# --- to_images -------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("d", "hw"),
    [(784, (28, 28)), (64, (8, 8)), (10, (2, 5)), (12, (3, 4)), (7, (1, 7))],
)
def test_to_images_flat_vectors_reshape_row_major(d, hw):
    x = torch.rand(3, d)
    out = to_images(x)
    assert out.shape == (3, 1, *hw)
    torch.testing.assert_close(out, x.reshape(3, 1, *hw))


def test_to_images_other_shapes():
    assert to_images(torch.rand(4, 5, 6)).shape == (4, 1, 5, 6)
    assert to_images(torch.rand(2, 3, 5, 6)).shape == (2, 3, 5, 6)
    assert to_images(torch.rand(64)).shape == (1, 1, 8, 8)
    x = torch.rand(2, 48)
    torch.testing.assert_close(to_images(x, input_shape=(3, 4, 4)), x.reshape(2, 3, 4, 4))
    assert to_images(np.random.rand(2, 6, 8), input_shape=(6, 8)).shape == (2, 1, 6, 8)
    with pytest.raises(DataError):
        to_images(x, input_shape=(1, 28, 28))


def test_to_images_scaling():
    x = torch.rand(5, 16)
    torch.testing.assert_close(to_images(x), x.reshape(5, 1, 4, 4))  # in [0, 1]: untouched
    y = torch.tensor([[-1.0, 0.0, 1.0, 3.0]])
    torch.testing.assert_close(to_images(y).flatten(), torch.tensor([0.0, 0.25, 0.5, 1.0]))
    u = torch.tensor([[0, 51, 255, 255]], dtype=torch.uint8)
    torch.testing.assert_close(to_images(u).flatten(), torch.tensor([0.0, 0.2, 1.0, 1.0]))


def test_nan_and_inf_refused(tmp_path):
    x = torch.rand(4, 64)
    x[2, 5] = float("nan")
    with pytest.raises(DataError, match="NaN"):
        to_images(x)
    with pytest.raises(DataError, match="NaN"):
        save_image_grid(x, tmp_path / "nan.png")
    assert not (tmp_path / "nan.png").exists()
    x[2, 5] = float("inf")
    with pytest.raises(DataError, match="infinite"):
        image_grid(x)


# --- image_grid ------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("n", "h", "w", "nrow", "padding", "shape"),
    [
        (5, 2, 3, 3, 1, (2 * 3 + 1, 3 * 4 + 1)),
        (16, 8, 8, None, 2, (4 * 10 + 2, 4 * 10 + 2)),  # default nrow = ceil(sqrt(16)) = 4
        (10, 8, 8, None, 2, (3 * 10 + 2, 4 * 10 + 2)),  # ceil(sqrt(10)) = 4 per row, 3 rows
        (3, 4, 5, None, 0, (2 * 4, 2 * 5)),
        (3, 4, 4, 10, 2, (1 * 6 + 2, 3 * 6 + 2)),  # nrow capped at N
        (1, 28, 28, None, 2, (32, 32)),
    ],
)
def test_grid_geometry(n, h, w, nrow, padding, shape):
    grid = image_grid(torch.rand(n, 1, h, w), nrow=nrow, padding=padding)
    assert grid.dtype == np.uint8
    assert grid.shape == shape


def test_grid_tile_placement_and_padding():
    n, h, w, p, nrow = 5, 2, 3, 1, 3
    imgs = torch.zeros(n, 1, h, w)
    imgs[:, 0] = torch.arange(n, dtype=torch.float32).view(n, 1, 1) / 10  # tile i has base value i/10
    imgs[:, 0, 0, 0] += 0.5  # top-left marker shows orientation
    imgs[:, 0, 1, 2] += 0.3  # bottom-right marker
    grid = image_grid(imgs, nrow=nrow, padding=p, pad_value=1.0)
    expected_tiles = np.rint(imgs.numpy()[:, 0] * 255).astype(np.uint8)
    covered = np.zeros(grid.shape, bool)
    for i in range(n):
        r, c = divmod(i, nrow)
        y, x = p + r * (h + p), p + c * (w + p)
        np.testing.assert_array_equal(grid[y : y + h, x : x + w], expected_tiles[i])
        covered[y : y + h, x : x + w] = True
    assert (grid[~covered] == 255).all()  # padding and the empty 6th slot


def test_grid_rgb_and_pad_value():
    imgs = torch.zeros(2, 3, 4, 4)
    imgs[0, 0] = 1.0  # red
    imgs[1, 2] = 1.0  # blue
    grid = image_grid(imgs, nrow=2, padding=1, pad_value=0.0)
    assert grid.shape == (6, 11, 3)
    assert (grid[1:5, 1:5] == [255, 0, 0]).all()
    assert (grid[1:5, 6:10] == [0, 0, 255]).all()
    assert (grid[0] == 0).all() and (grid[:, 5] == 0).all()


def test_grid_rejects_bad_arguments():
    with pytest.raises(DataError):
        image_grid(torch.rand(2, 2, 4, 4))  # 2 channels
    with pytest.raises(ConfigError):
        image_grid(torch.rand(2, 1, 4, 4), nrow=0)
    with pytest.raises(ConfigError):
        image_grid(torch.rand(2, 1, 4, 4), padding=-1)


# --- writers ---------------------------------------------------------------------------

def test_save_image_grid_default_upscale(tmp_path):
    x = torch.rand(16, 64)  # 8x8 digits -> scale 4 -> 32 px tiles
    path = save_image_grid(x, tmp_path / "sub" / "dir" / "grid.png")
    assert path == tmp_path / "sub" / "dir" / "grid.png"
    img = _png(path)
    assert img.shape == (4 * (32 + 2) + 2, 4 * (32 + 2) + 2)
    tile0 = np.rint(x[0].view(8, 8).numpy() * 255).astype(np.uint8)
    np.testing.assert_array_equal(img[2:34, 2:34], np.kron(tile0, np.ones((4, 4), np.uint8)))
    assert sorted(p.name for p in path.parent.iterdir()) == ["grid.png"]  # no temp files left


def test_save_image_grid_scale_and_nrow(tmp_path):
    img = _png(save_image_grid(torch.rand(6, 28, 28), tmp_path / "g.png", nrow=3))
    assert img.shape == (2 * 30 + 2, 3 * 30 + 2)  # 28x28 is not upscaled by default
    img = _png(save_image_grid(torch.rand(6, 28, 28), tmp_path / "g.png", nrow=6, scale=2))
    assert img.shape == (58 + 2, 6 * 58 + 2)
    with pytest.raises(ConfigError):
        save_image_grid(torch.rand(6, 28, 28), tmp_path / "g.png", scale=0)


def test_save_image_rows_geometry_and_labels(tmp_path):
    rows = [torch.rand(5, 64) for _ in range(3)]
    plain = _png(save_image_rows(rows, tmp_path / "plain.png", scale=2))
    assert plain.shape == (3 * 18 + 2, 5 * 18 + 2)

    labelled = _png(save_image_rows(rows, tmp_path / "labelled.png", labels=["noisy", "denoised", "clean"], scale=2))
    assert labelled.shape[0] == plain.shape[0]
    label_width = labelled.shape[1] - plain.shape[1]
    assert label_width > 20
    np.testing.assert_array_equal(labelled[:, label_width:], plain)  # grid unchanged, at the right
    column = labelled[:, :label_width]
    assert (column < 100).any() and (column == 255).mean() > 0.5  # dark text on white
    other = _png(save_image_rows(rows, tmp_path / "other.png", labels=["a", "b", "c"], scale=2))
    assert other.shape != labelled.shape or not np.array_equal(other, labelled)


def test_save_image_rows_share_one_scaling(tmp_path):
    a = torch.linspace(0, 2, 16).view(1, 16)
    img = _png(save_image_rows([a, 2 * a], tmp_path / "rows.png", scale=1, padding=0))
    assert img.shape == (8, 4)
    assert img[:4].max() == 128  # row 0 spans [0, 2] of the joint range [0, 4]
    assert img[4:].max() == 255


def test_save_image_rows_validation(tmp_path):
    with pytest.raises(DataError):
        save_image_rows([torch.rand(5, 64), torch.rand(4, 64)], tmp_path / "r.png")
    with pytest.raises(DataError):
        save_image_rows([torch.rand(5, 64), torch.rand(5, 100)], tmp_path / "r.png")
    with pytest.raises(ConfigError):
        save_image_rows([torch.rand(5, 64)] * 2, tmp_path / "r.png", labels=["only one"])
    assert not (tmp_path / "r.png").exists()


def test_save_image_rows_mixes_grey_and_rgb(tmp_path):
    with Image.open(save_image_rows([torch.rand(2, 3, 8, 8), torch.rand(2, 8, 8)], tmp_path / "m.png", scale=1)) as im:
        assert im.mode == "RGB" and im.size == (2 * 10 + 2, 2 * 10 + 2)


def test_save_reconstructions(tmp_path):
    x = torch.rand(10, 64)
    xr = (1 - x).view(10, 1, 8, 8)
    img = _png(save_reconstructions(x, xr, tmp_path / "recon.png", n=4, scale=1))
    grid_w = 4 * 10 + 2
    assert img.shape[0] == 2 * 10 + 2 and img.shape[1] > grid_w  # two rows, label column
    grid = img[:, img.shape[1] - grid_w :]
    for i in range(4):
        orig = np.rint(x[i].view(8, 8).numpy() * 255).astype(np.uint8)
        rec = np.rint(xr[i, 0].numpy() * 255).astype(np.uint8)
        np.testing.assert_array_equal(grid[2:10, 2 + 10 * i : 10 + 10 * i], orig)
        np.testing.assert_array_equal(grid[12:20, 2 + 10 * i : 10 + 10 * i], rec)
    with pytest.raises(DataError):
        save_reconstructions(x, xr[:5], tmp_path / "bad.png")


# --- atomic writes ---------------------------------------------------------------------

def test_failed_write_leaves_existing_png_intact(tmp_path, monkeypatch):
    path = tmp_path / "grid.png"
    save_image_grid(torch.rand(4, 64), path)
    before = path.read_bytes()

    def broken_save(self, fp, *args, **kwargs):
        with open(fp, "wb") as f:
            f.write(b"\x89PNG half-written")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_image_grid(torch.rand(4, 64), path)
    with pytest.raises(OSError, match="disk full"):
        save_reconstructions(torch.rand(4, 64), torch.rand(4, 64), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png"]


def test_row_labels_never_draw_missing_glyph_boxes(tmp_path):
    """`interpolate` labels rows "0→1": Pillow's default font has no arrow, which used to render as a box."""
    from PIL import Image

    from vaekit.viz import save_image_rows
    from vaekit.viz.grids import _has_glyph, _label_font, drawable_label

    font = _label_font(12)
    assert _has_glyph(font, "0") and not _has_glyph(font, "\ue001")
    assert all(_has_glyph(font, c) for c in drawable_label("0→1 – é × σ", font))
    rows = [torch.rand(3, 1, 8, 8)]
    arrow = np.asarray(Image.open(save_image_rows(rows, tmp_path / "arrow.png", labels=["0→1"])))
    ascii_ = np.asarray(Image.open(save_image_rows(rows, tmp_path / "ascii.png", labels=["0->1"])))
    assert np.array_equal(arrow, ascii_)  # the arrow is drawn as "->", not as a box


def test_a_wrong_channel_count_names_the_shape_as_given_and_the_fix(tmp_path):
    """The error shows the caller's shape (not the upscaled one) and spots channels-last arrays."""
    with pytest.raises(DataError, match=r"\(2, 8, 8, 3\).*permute\(0, 3, 1, 2\)"):
        save_image_grid(np.random.default_rng(0).random((2, 8, 8, 3)), tmp_path / "g.png")
    with pytest.raises(DataError, match=r"2 channels \(shape \(2, 2, 8, 8\)"):
        save_image_rows([torch.rand(2, 2, 8, 8)], tmp_path / "r.png")
