"""Procedural sprites: exact rendering from the factors, seeded subsets, and refused options."""

import math

import numpy as np
import pytest
import torch

from vaekit.cli import main
from vaekit.data import Sprites, SpritesDataset, has_test_split, load_dataset, load_sprites, train_val_split
from vaekit.data.sprites import FACTOR_SIZES, NUM_COMBINATIONS, RADIUS, parse_sprites_source
from vaekit.errors import DataError

SQUARE, ELLIPSE, HEART = 0, 1, 2


def lit_coordinates(image: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(x, y-up) of the lit pixel centres of an (S, S) image, in image widths."""
    size = image.shape[-1]
    rows, cols = np.nonzero(image.reshape(size, size).numpy())
    return (cols + 0.5) / size, 1.0 - (rows + 0.5) / size


def centre(position: float) -> float:
    return RADIUS + position * (1 - 2 * RADIUS)


@pytest.mark.parametrize("scale,x,y", [(1.0, 0.5, 0.5), (0.5, 0.0, 1.0), (0.8, 13 / 31, 2 / 31)])
def test_an_upright_square_lights_exactly_the_pixel_centres_inside_it(scale, x, y):
    size = 64
    image = Sprites(size).render_values(SQUARE, scale, 0.0, x, y)[0, 0].numpy()
    half = scale * RADIUS / math.sqrt(2)  # the corners lie on the bounding circle
    centres = (np.arange(size) + 0.5) / size
    columns = np.abs(centres - centre(x)) <= half
    rows = np.abs(centres - centre(y)) <= half
    np.testing.assert_array_equal(image, np.outer(rows, columns).astype(np.float32))


def test_area_grows_as_the_square_of_the_scale_and_matches_the_closed_forms():
    size = 128
    sprites = Sprites(size)
    scales = np.linspace(0.5, 1.0, 6)
    closed_form = {SQUARE: 2.0, ELLIPSE: math.pi / 2}  # areas in the shape's unit-disc frame
    for shape in (SQUARE, ELLIPSE, HEART):
        areas = sprites.render_values(shape, scales, 0.3, 0.5, 0.5).sum(dim=(1, 2, 3)).numpy() / size**2
        np.testing.assert_allclose(areas / areas[-1], scales**2, rtol=0.04)
        if shape in closed_form:
            np.testing.assert_allclose(areas, closed_form[shape] * (scales * RADIUS) ** 2, rtol=0.04)


@pytest.mark.parametrize("shape", [SQUARE, ELLIPSE, HEART])
def test_every_shape_fits_its_bounding_disc_and_touches_it(shape):
    size = 128
    for angle in np.linspace(0, 2 * np.pi, 7):
        x, y = lit_coordinates(Sprites(size).render_values(shape, 1.0, angle, 0.5, 0.5)[0, 0])
        distance = np.hypot(x - 0.5, y - 0.5)
        assert distance.max() <= RADIUS + 0.5 / size * math.sqrt(2)
        assert distance.max() >= RADIUS - 1.5 / size


def test_position_moves_the_centroid_linearly():
    size = 64
    sprites = Sprites(size)
    steps = np.arange(FACTOR_SIZES[3])
    indices = np.zeros((steps.size, 5), dtype=np.int64)
    indices[:, 1] = 5  # scale 1
    indices[:, 4] = 10
    for column, flip in ((3, False), (4, True)):
        chosen = indices.copy()
        chosen[:, column] = steps
        images = sprites.render(chosen)
        centroids = []
        for image in images:
            x, y = lit_coordinates(image)
            centroids.append(x.mean() if not flip else 1.0 - y.mean())  # position_y grows downwards
        expected = np.array([centre(s / 31) for s in steps])
        np.testing.assert_allclose(centroids, expected, atol=0.5 / size)
        slope = np.polyfit(steps, centroids, 1)[0]
        assert slope == pytest.approx((1 - 2 * RADIUS) / 31, rel=0.01)


def test_orientation_rotates_the_ellipse_counter_clockwise():
    size = 128
    for k in (0, 3, 7, 12, 25, 33):
        angle = 2 * math.pi * k / 40
        x, y = lit_coordinates(Sprites(size).render_values(ELLIPSE, 1.0, angle, 0.5, 0.5)[0, 0])
        cov = np.cov(np.stack([x, y]))
        values, vectors = np.linalg.eigh(cov)
        long_axis = vectors[:, np.argmax(values)]
        measured = math.atan2(long_axis[1], long_axis[0]) % math.pi
        difference = abs(measured - angle % math.pi)
        assert min(difference, math.pi - difference) < math.radians(2)
        assert values.max() / values.min() == pytest.approx(4.0, rel=0.1)  # semi-axes 1 and 1/2


def test_the_heart_is_mirror_symmetric_with_its_point_down():
    size = 64
    sprites = Sprites(size)
    heart = sprites.render_values(HEART, 1.0, 0.0, 0.5, 0.5)[0, 0].numpy()
    np.testing.assert_array_equal(heart, heart[:, ::-1])
    rows = np.flatnonzero(heart.any(axis=1))
    widths = heart[rows].sum(axis=1)
    assert widths[-1] <= 2 and widths.max() >= 20  # a point at the bottom, wide at the lobes
    top = heart[rows[0]]
    runs = np.flatnonzero(np.diff(np.concatenate([[0], top, [0]])) == 1)
    assert len(runs) == 2  # two lobes with the notch between them
    upside_down = sprites.render_values(HEART, 1.0, math.pi, 0.5, 0.5)[0, 0].numpy()
    assert np.mean(upside_down != heart[::-1, ::-1]) < 0.002  # equal up to pixels on the boundary


def test_dataset_images_are_the_renderings_of_their_factors():
    data = load_sprites("train", size=16, subset=300, test_size=50, seed=3)
    assert isinstance(data, SpritesDataset) and data.x.shape == (300, 1, 16, 16) and data.x.dtype == torch.float32
    assert set(torch.unique(data.x).tolist()) == {0.0, 1.0}
    torch.testing.assert_close(data.x, data.sprites.render(data.factor_indices))
    torch.testing.assert_close(data.factors, torch.from_numpy(Sprites.factor_values(data.factor_indices)).float())
    assert torch.equal(data.y, data.factor_indices[:, 0]) and data.num_classes == 3
    assert data.classes == ["square", "ellipse", "heart"] and data.factor_sizes == (3, 6, 40, 32, 32)
    values = Sprites.factor_values(np.array([[2, 5, 10, 31, 0]]))[0]
    np.testing.assert_allclose(values, [2, 1.0, math.pi / 2, 1.0, 0.0])


def test_subsets_are_seeded_reproducible_and_disjoint_from_the_test_split():
    def combos(d):
        return set(Sprites.combination_indices(d.factor_indices).tolist())

    a = load_sprites("train", size=16, subset=200, test_size=100, seed=0)
    b = load_sprites("train", size=16, subset=200, test_size=100, seed=0)
    c = load_sprites("train", size=16, subset=200, test_size=100, seed=1)
    test = load_sprites("test", size=16, subset=50, test_size=100, seed=0)
    assert torch.equal(a.factor_indices, b.factor_indices) and torch.equal(a.x, b.x)
    assert not torch.equal(a.factor_indices, c.factor_indices)
    assert len(combos(a)) == 200 and not combos(a) & combos(test)
    assert combos(load_sprites("train", size=16, subset=100, test_size=100, seed=0)) < combos(a)  # a prefix of one order
    assert torch.equal(test.factor_indices, load_sprites("test", size=16, subset=7, test_size=100, seed=0).factor_indices)
    some = np.random.default_rng(0).integers(0, NUM_COMBINATIONS, 1000)
    np.testing.assert_array_equal(Sprites.combination_indices(Sprites.factors_of_combinations(some)), some)
    np.testing.assert_array_equal(Sprites.factors_of_combinations([NUM_COMBINATIONS - 1])[0], np.array(FACTOR_SIZES) - 1)


def test_subsets_and_splits_keep_their_factors():
    data = load_sprites("train", size=16, subset=100, test_size=10)
    for part in (data[10:20], data[torch.tensor([3, 1, 4])], data[data.y == 2], data[5], *train_val_split(data, 0.2)):
        assert isinstance(part, SpritesDataset) and len(part.factor_indices) == len(part)
        torch.testing.assert_close(part.x, data.sprites.render(part.factor_indices))


def test_load_dataset_reads_sprites_values():
    assert has_test_split("sprites") and has_test_split("sprites:32:1000")
    test = load_dataset("sprites:16:100", split="test")
    assert test.x.shape == (5000, 1, 16, 16)
    assert parse_sprites_source("sprites") == {"size": 32, "subset": 20000}
    assert parse_sprites_source("dsprites:64:all") == {"size": 64, "subset": None}


@pytest.mark.parametrize("call,words", [
    (lambda: load_sprites(size=8), ["size", "16..256", "8"]),
    (lambda: load_sprites(size=32.5), ["size", "integer"]),
    (lambda: load_sprites(subset=0), ["subset", "1..732280"]),
    (lambda: load_sprites(subset=NUM_COMBINATIONS), ["subset", "1..732280"]),
    (lambda: load_sprites(test_size=0), ["test_size", "1..737279"]),
    (lambda: load_sprites(seed=-1), ["seed", "≥ 0"]),
    (lambda: load_sprites("val"), ["split", "'train', 'test', 'all'"]),
    (lambda: parse_sprites_source("sprites:4"), ["size", "16..256"]),
    (lambda: parse_sprites_source("sprites:32:lots"), ["subset", "integer", "sprites[:SIZE[:N]]"]),
    (lambda: parse_sprites_source("sprites:32:10:9"), ["sprites[:SIZE[:N]]"]),
    (lambda: Sprites(16).render(np.array([[3, 0, 0, 0, 0]])), ["shape", "0..2"]),
    (lambda: Sprites(16).render(np.zeros((2, 4), dtype=int)), ["(N, 5)"]),
    (lambda: Sprites(16).render_values(0, 1.5, 0, 0, 0), ["scale", "(0, 1]"]),
])
def test_out_of_range_options_are_refused_in_one_line(call, words):
    with pytest.raises(DataError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and all(w in message for w in words), message


def test_the_cli_refuses_a_bad_sprites_option_with_exit_status_2(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "vae", "--data", "sprites:8", "--epochs", "1", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "size" in err and "16..256" in err
    assert not out.exists()
