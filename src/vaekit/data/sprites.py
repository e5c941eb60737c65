"""Procedural dSprites-style sprites: binary images rendered exactly from five factors.

The factors and their grids follow dSprites (Matthey, Higgins, Hassabis & Lerchner, 2017,
https://github.com/deepmind/dsprites-dataset):

=============  ======  ===============================================
factor         values  grid
=============  ======  ===============================================
shape          3       0 square, 1 ellipse, 2 heart
scale          6       0.5, 0.6, ..., 1.0
orientation    40      2πk/40, k = 0..39 (radians, counter-clockwise)
position_x     32      0, 1/31, ..., 1 (left to right)
position_y     32      0, 1/31, ..., 1 (top to bottom)
=============  ======  ===============================================

3 · 6 · 40 · 32 · 32 = 737 280 combinations.

**Geometry.** The image is the unit square [0, 1]²; pixel (i, j) (row i, column j) of an
S × S image has its centre at ((j + ½)/S, (i + ½)/S). Every shape is defined in its own
frame (u, v) (v pointing up) inside the unit disc, scaled by ``scale · RADIUS`` (so a
shape's bounding disc has radius 0.2 · scale image widths), rotated counter-clockwise by
the orientation and centred at ``MARGIN + position · (1 − 2 · MARGIN)`` with MARGIN =
RADIUS: every sprite lies wholly inside the image. The shapes in their frame:

* square: max(|u|, |v|) ≤ 1/√2 (its corners on the unit circle; area 2);
* ellipse: u² + (v/½)² ≤ 1 (semi-axes 1 and ½, long axis horizontal at orientation 0;
  area π/2);
* heart: the classic construction, a square standing on a corner with a disc on each of
  its two upper sides (diameter = the side), pointing down at orientation 0, scaled and
  shifted so that its smallest enclosing disc centred on its axis is the unit disc.

**Rendering is exact point-in-shape:** a pixel is 1 when its centre lies in the shape and 0
otherwise (no anti-aliasing, no supersampling), evaluated in float64. So an image is a
deterministic function of its factor values, and a pixel changes only when the shape's
boundary crosses its centre.

**Memory.** All 737 280 combinations at 64 × 64 are 3 GB as uint8 pixels and 12 GB as the
float32 tensors vaekit trains on; :func:`load_sprites` therefore draws a seeded subset by
default (20 000 training and 5 000 test images of 32 × 32, 100 MB), and the metrics in
:mod:`vaekit.eval.disentanglement` render the images they need on demand with
:meth:`Sprites.render`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vaekit.data._splits import check_split
from vaekit.data.dataset import Dataset
from vaekit.errors import DataError

__all__ = [
    "Sprites",
    "SpritesDataset",
    "load_sprites",
    "parse_sprites_source",
    "is_sprites_source",
    "FACTOR_NAMES",
    "FACTOR_SIZES",
    "SHAPES",
    "NUM_COMBINATIONS",
    "SIZE_RANGE",
    "DEFAULT_SIZE",
    "DEFAULT_SUBSET",
    "DEFAULT_TEST_SIZE",
    "RADIUS",
]

#: The names of the five factors, in the order of the columns of ``factors``.
FACTOR_NAMES = ("shape", "scale", "orientation", "position_x", "position_y")
#: The number of values of each factor (dSprites' grid).
FACTOR_SIZES = (3, 6, 40, 32, 32)
#: The shapes, by shape index.
SHAPES = ("square", "ellipse", "heart")
#: The number of factor combinations, 737 280.
NUM_COMBINATIONS = math.prod(FACTOR_SIZES)
#: Image sizes accepted (pixels per side).
SIZE_RANGE = (16, 256)
#: Defaults of :func:`load_sprites` and ``--data sprites``: 32 × 32, 20 000 train, 5 000 test images.
DEFAULT_SIZE, DEFAULT_SUBSET, DEFAULT_TEST_SIZE = 32, 20_000, 5_000
#: Radius of a scale-1 sprite's bounding disc, in image widths; also the margin kept free at the borders.
RADIUS = 0.2

_SOURCE_NAMES = ("sprites", "dsprites")
_FORMAT = "sprites[:SIZE[:N]] (e.g. sprites, sprites:64, sprites:32:50000, sprites:16:all)"
_RENDER_CHUNK = 2048  # images evaluated at once by render_values (bounds the float64 temporaries)

# The heart in its own frame, with d = 1: the square |X| + |Y| ≤ 2 (side 2√2, standing on its
# bottom corner (0, −2)) and the discs of radius √2 centred at (∓1, 1), the midpoints of its
# upper sides. Its enclosing disc centred at (0, y0) touches the bottom corner (distance
# y0 + 2) and the far side of both discs (distance √(1 + (1 − y0)²) + √2); equal when
# (y0 + c)² = 1 + (1 − y0)² with c = 2 − √2, i.e. y0 = (2 − c²) / (2(c + 1)).
_HEART_C = 2.0 - math.sqrt(2.0)
_HEART_Y0 = (2.0 - _HEART_C**2) / (2.0 * (_HEART_C + 1.0))
_HEART_R = _HEART_Y0 + 2.0  # the enclosing radius: the heart's frame is (u, v) = ((X, Y) − (0, y0)) / R


class Sprites:
    """The sprites' factor grid and exact renderer, at one image size.

    Metrics that need images for chosen factor values ("fix one factor, vary the rest")
    call :meth:`sample_factors` and :meth:`render`; nothing is stored.

    Arguments:
        size: pixels per side S, in :data:`SIZE_RANGE` (64 is dSprites; 32 is the default,
            for CPU runs).

    Example:
        >>> sprites = Sprites(size=32)
        >>> indices = sprites.sample_factors(4, np.random.default_rng(0))
        >>> sprites.render(indices).shape
        torch.Size([4, 1, 32, 32])
    """

    factor_names = FACTOR_NAMES
    factor_sizes = FACTOR_SIZES
    shapes = SHAPES

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = _check_int("size", size, *SIZE_RANGE)
        centres = (np.arange(self.size, dtype=np.float64) + 0.5) / self.size
        self._columns = centres  # x of each column's pixel centres
        self._rows = centres  # y (downwards) of each row's pixel centres

    @property
    def num_factors(self) -> int:
        return len(FACTOR_SIZES)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (1, self.size, self.size)

    def __repr__(self) -> str:
        return f"Sprites(size={self.size})"

    # -- factors ------------------------------------------------------------------------
    @staticmethod
    def factor_values(factor_indices: np.ndarray | torch.Tensor) -> np.ndarray:
        """The factor values (N, 5) float64 of factor indices (N, 5): shape index, scale,
        orientation in radians, position x and y in [0, 1] (see the module docstring)."""
        idx = _check_indices(factor_indices)
        values = np.empty(idx.shape, dtype=np.float64)
        values[:, 0] = idx[:, 0]
        values[:, 1] = 0.5 + 0.1 * idx[:, 1]
        values[:, 2] = 2.0 * math.pi * idx[:, 2] / FACTOR_SIZES[2]
        values[:, 3] = idx[:, 3] / (FACTOR_SIZES[3] - 1)
        values[:, 4] = idx[:, 4] / (FACTOR_SIZES[4] - 1)
        return values

    @staticmethod
    def sample_factors(n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """``n`` factor combinations (N, 5) int64, each factor uniform over its values, independently."""
        n = _check_int("n", n, 0, None)
        rng = np.random.default_rng(rng)
        return np.stack([rng.integers(0, k, size=n) for k in FACTOR_SIZES], axis=1).astype(np.int64)

    @staticmethod
    def combination_indices(factor_indices: np.ndarray | torch.Tensor) -> np.ndarray:
        """The position (N,) of each factor combination in the full grid, shape varying slowest
        (the order of dSprites' file); the inverse of :meth:`factors_of_combinations`."""
        idx = _check_indices(factor_indices)
        return np.ravel_multi_index(tuple(idx.T), FACTOR_SIZES)

    @staticmethod
    def factors_of_combinations(combinations: np.ndarray | Sequence[int]) -> np.ndarray:
        """The factor indices (N, 5) of grid positions in ``0 .. NUM_COMBINATIONS − 1``."""
        flat = np.asarray(combinations, dtype=np.int64).reshape(-1)
        if flat.size and (flat.min() < 0 or flat.max() >= NUM_COMBINATIONS):
            raise DataError(f"sprite combination indices must lie in 0..{NUM_COMBINATIONS - 1}")
        return np.stack(np.unravel_index(flat, FACTOR_SIZES), axis=1).astype(np.int64)

    # -- rendering ----------------------------------------------------------------------
    def render(self, factor_indices: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Images (N, 1, S, S) float32 in {0, 1} of factor indices (N, 5)."""
        values = self.factor_values(factor_indices)
        return self.render_values(values[:, 0].astype(np.int64), *values[:, 1:].T)

    def render_values(
        self,
        shape: np.ndarray | Sequence[int] | int,
        scale: np.ndarray | Sequence[float] | float,
        orientation: np.ndarray | Sequence[float] | float,
        x: np.ndarray | Sequence[float] | float,
        y: np.ndarray | Sequence[float] | float,
    ) -> torch.Tensor:
        """Images (N, 1, S, S) of arbitrary factor values (broadcast to a common length N).

        Arguments:
            shape: shape indices (0 square, 1 ellipse, 2 heart).
            scale: in (0, 1]: the bounding disc has radius ``scale · RADIUS``.
            orientation: radians, counter-clockwise.
            x, y: positions in [0, 1] (x to the right, y downwards); the centre is at
                ``RADIUS + position · (1 − 2 · RADIUS)``.
        """
        arrays = np.broadcast_arrays(*(np.atleast_1d(np.asarray(a, dtype=np.float64)) for a in (shape, scale, orientation, x, y)))
        shape_, scale_, angle, px, py = (a.reshape(-1) for a in arrays)
        if not np.all(np.isin(shape_, np.arange(len(SHAPES)))):
            raise DataError(f"sprite shape indices must be 0, 1 or 2 ({', '.join(SHAPES)})")
        checks = (("scale", scale_, 0.0, 1.0, False), ("x", px, 0.0, 1.0, True), ("y", py, 0.0, 1.0, True))
        for name, a, low, high, closed in checks:
            if not np.all(np.isfinite(a)) or np.any(a > high) or np.any(a < low if closed else a <= low):
                raise DataError(f"sprite {name} values must lie in {'[' if closed else '('}{low:g}, {high:g}]")
        if not np.all(np.isfinite(angle)):
            raise DataError("sprite orientations must be finite (radians)")
        n = shape_.shape[0]
        out = torch.empty((n, 1, self.size, self.size), dtype=torch.float32)
        for start in range(0, n, _RENDER_CHUNK):
            part = slice(start, start + _RENDER_CHUNK)
            mask = self._inside(shape_[part].astype(np.int64), scale_[part], angle[part], px[part], py[part])
            out[part, 0] = torch.from_numpy(mask)
        return out

    def _inside(self, shape: np.ndarray, scale: np.ndarray, angle: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
        """(B, S, S) booleans: the pixel centres inside each sprite, in the sprite's own frame."""
        reach = 1.0 - 2.0 * RADIUS
        cx, cy = RADIUS + px * reach, RADIUS + py * reach
        radius = (scale * RADIUS)[:, None, None]
        dx = self._columns[None, None, :] - cx[:, None, None]  # (B, 1, S): to the right
        dy = cy[:, None, None] - self._rows[None, :, None]  # (B, S, 1): upwards
        cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
        # rotate the pixel back by −θ into the sprite's frame, then undo the scale
        u = (cos * dx + sin * dy) / radius
        v = (cos * dy - sin * dx) / radius
        result = np.zeros(u.shape, dtype=bool)
        for index, test in enumerate((_in_square, _in_ellipse, _in_heart)):
            chosen = shape == index
            if chosen.any():
                result[chosen] = test(u[chosen], v[chosen])
        return result


def _in_square(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    half = 1.0 / math.sqrt(2.0)
    return (np.abs(u) <= half) & (np.abs(v) <= half)


def _in_ellipse(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u * u + 4.0 * v * v <= 1.0


def _in_heart(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    X, Y = u * _HEART_R, v * _HEART_R + _HEART_Y0
    lobes = np.minimum((X + 1.0) ** 2, (X - 1.0) ** 2) + (Y - 1.0) ** 2 <= 2.0
    return lobes | (np.abs(X) + np.abs(Y) <= 2.0)


# -- the dataset -------------------------------------------------------------------------------
@dataclass(eq=False, repr=False)
class SpritesDataset(Dataset):
    """A :class:`~vaekit.data.Dataset` of sprites that keeps each image's factors beside it.

    ``x`` is (N, 1, S, S) float32 in {0, 1}, ``y`` the shape index (so ``classify`` and
    conditional models work), ``classes`` the shape names. Subsets (``data[index]``,
    ``train_val_split``) keep the factors of their images.

    Arguments (beyond :class:`Dataset`'s):
        factors: (N, 5) float32 factor values (see :meth:`Sprites.factor_values`).
        factor_indices: (N, 5) int64 factor indices.
        sprites: the :class:`Sprites` renderer of this size.
    """

    factors: torch.Tensor | None = None
    factor_indices: torch.Tensor | None = None
    sprites: Sprites | None = None

    factor_names = FACTOR_NAMES
    factor_sizes = FACTOR_SIZES

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("factors", "factor_indices"):
            value = getattr(self, name)
            if value is None or value.shape != (self.x.shape[0], len(FACTOR_SIZES)):
                raise DataError(f"SpritesDataset {self.name!r}: {name} must have shape ({self.x.shape[0]}, {len(FACTOR_SIZES)})")

    def __getitem__(self, index: Any) -> "SpritesDataset":
        base = super().__getitem__(index)
        positions = Dataset(torch.arange(len(self)))[index].x  # the same index rules as Dataset's
        return SpritesDataset(
            base.x, base.y, name=base.name, classes=base.classes, factors=self.factors[positions],
            factor_indices=self.factor_indices[positions], sprites=self.sprites,
        )

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", factors {list(FACTOR_NAMES)})"


def load_sprites(
    split: str = "train",
    size: int = DEFAULT_SIZE,
    subset: int | None = DEFAULT_SUBSET,
    test_size: int = DEFAULT_TEST_SIZE,
    seed: int = 0,
) -> SpritesDataset:
    """Render a seeded subset of the sprites (or every combination).

    The combinations are shuffled once with ``seed``; the test split is the last
    ``test_size`` of that order and the training split the first ``subset`` (every
    combination not in the test split when ``subset`` is None). So the splits never
    overlap, the test split does not depend on ``subset``, and the same arguments give
    the same images on every machine.

    Arguments:
        split: ``"train"``, ``"test"``, or ``"all"`` (``subset`` combinations of the same
            order without a test split, or every combination in grid order when
            ``subset`` is None).
        size: pixels per side, in :data:`SIZE_RANGE`.
        subset: training images, 1 .. 737 280 − test_size (``"all"``: 1 .. 737 280); None:
            all of them (large: 737 280 images of 32 × 32 are 3 GB as float32).
        test_size: test images, 1 .. 737 279.
        seed: seed of the shuffle.

    Example:
        >>> train = load_sprites("train", size=16, subset=100, test_size=10)
        >>> train.x.shape, train.factor_indices.shape, train.num_classes
        (torch.Size([100, 1, 16, 16]), torch.Size([100, 5]), 3)
    """
    check_split(split, ("train", "test", "all"), "sprites")
    sprites = Sprites(size)
    test_size = _check_int("test_size", test_size, 1, NUM_COMBINATIONS - 1)
    available = NUM_COMBINATIONS if split == "all" else NUM_COMBINATIONS - test_size
    if subset is not None:
        subset = _check_int("subset", subset, 1, available)
    seed = _check_int("seed", seed, 0, None)
    if split == "all" and subset is None:
        combinations = np.arange(NUM_COMBINATIONS)
    else:
        order = np.random.default_rng(seed).permutation(NUM_COMBINATIONS)
        if split == "test":
            combinations = order[NUM_COMBINATIONS - test_size :]
        else:
            combinations = order[: available if subset is None else subset]
    indices = Sprites.factors_of_combinations(combinations)
    x = sprites.render(indices)
    index_tensor = torch.from_numpy(indices)
    return SpritesDataset(
        x, index_tensor[:, 0].clone(), name=f"sprites{size}/{split}", classes=list(SHAPES),
        factors=torch.from_numpy(Sprites.factor_values(indices)).float(), factor_indices=index_tensor, sprites=sprites,
    )


# -- the --data value --------------------------------------------------------------------------
def is_sprites_source(source: Any) -> bool:
    """Whether a ``--data`` value names the sprites (``sprites``, ``sprites:64``, ``dsprites:32:1000``, ...)."""
    return isinstance(source, str) and source.strip().lower().split(":", 1)[0] in _SOURCE_NAMES


def parse_sprites_source(source: str) -> dict[str, Any]:
    """The :func:`load_sprites` arguments of a ``--data`` value ``sprites[:SIZE[:N]]``.

    ``N`` is the number of training images, or ``all``. Out-of-range values raise a
    DataError naming the option and its range.

    Example:
        >>> parse_sprites_source("sprites:64:50000")
        {'size': 64, 'subset': 50000}
    """
    parts = source.strip().lower().split(":")
    if parts[0] not in _SOURCE_NAMES or len(parts) > 3:
        raise DataError(f"cannot read {source!r} as sprites; write {_FORMAT}")
    options: dict[str, Any] = {"size": DEFAULT_SIZE, "subset": DEFAULT_SUBSET}
    for key, text in zip(("size", "subset"), parts[1:]):
        if key == "subset" and text == "all":
            options["subset"] = None
            continue
        try:
            options[key] = int(text)
        except ValueError:
            raise DataError(f"sprites {key} must be an integer, got {text!r}; write {_FORMAT}") from None
    _check_int("size", options["size"], *SIZE_RANGE)
    if options["subset"] is not None:
        _check_int("subset", options["subset"], 1, NUM_COMBINATIONS - DEFAULT_TEST_SIZE)
    return options


def _check_int(name: str, value: Any, low: int, high: int | None) -> int:
    """``value`` as an int in [low, high]; else a DataError naming the sprites option and the range."""
    valid = f"an integer ≥ {low}" if high is None else f"an integer in {low}..{high}"
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise DataError(f"sprites {name} must be {valid}, got {value!r}")
    if value < low or (high is not None and value > high):
        raise DataError(f"sprites {name} must be {valid}, got {value}")
    return int(value)


def _check_indices(factor_indices: np.ndarray | torch.Tensor) -> np.ndarray:
    """Factor indices as an (N, 5) int64 array, each column within its factor's range."""
    idx = factor_indices.detach().cpu().numpy() if isinstance(factor_indices, torch.Tensor) else np.asarray(factor_indices)
    if idx.ndim != 2 or idx.shape[1] != len(FACTOR_SIZES):
        raise DataError(f"sprite factor indices must have shape (N, {len(FACTOR_SIZES)}), got {tuple(idx.shape)}")
    if idx.dtype.kind not in "iu":
        if idx.dtype.kind != "f" or not np.array_equal(idx, np.round(idx)):
            raise DataError(f"sprite factor indices must be integers, got dtype {idx.dtype}")
    idx = idx.astype(np.int64)
    for column, (name, k) in enumerate(zip(FACTOR_NAMES, FACTOR_SIZES)):
        if idx.shape[0] and (idx[:, column].min() < 0 or idx[:, column].max() >= k):
            low, high = int(idx[:, column].min()), int(idx[:, column].max())
            raise DataError(f"sprite factor {name} takes indices 0..{k - 1}, got {low}..{high}")
    return idx
