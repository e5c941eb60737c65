"""Image grids: batches of images (or flat vectors) drawn side by side and saved as PNG.

Every function accepts what a model consumes or produces: ``(N, C, H, W)`` images,
``(N, H, W)`` grey images, or ``(N, D)`` flat vectors, as torch tensors or numpy arrays.
:func:`to_images` defines how these become displayable images; the writers build on it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from vaekit.errors import ConfigError, DataError
from vaekit.viz._png import write_png

__all__ = [
    "MIN_TILE_PIXELS",
    "to_images",
    "image_grid",
    "save_image_grid",
    "save_image_rows",
    "save_reconstructions",
]

MIN_TILE_PIXELS = 28
"""Default upscaling makes the longer side of each tile at least this many pixels."""

_LABEL_MARGIN = 6


def to_images(x: torch.Tensor | np.ndarray, input_shape: Sequence[int] | None = None) -> torch.Tensor:
    """A float32 ``(N, C, H, W)`` CPU tensor in [0, 1], ready to draw.

    Shapes:
        * ``(N, C, H, W)`` is kept; ``(N, H, W)`` gains a channel axis.
        * ``input_shape`` — ``(C, H, W)`` or ``(H, W)`` — reshapes each example (row-major)
          when given; the per-example size must match.
        * Without it, a flat ``(N, D)`` batch (or a single ``(D,)`` vector) becomes
          ``(N, 1, h, w)`` with h the largest divisor of D that is ≤ √D and ``w = D // h``:
          a perfect square (784, 64) gives a square image (28×28, 8×8); 10 gives 2×5; a prime
          gives a 1×D strip. Colour images stored flat need ``input_shape``.

    Values:
        ``uint8`` data is divided by 255 and ``bool`` data becomes 0/1. Float data already in
        [0, 1] is kept as is; otherwise the whole batch is min-max scaled to [0, 1] (one
        minimum and maximum for the batch, so examples stay comparable); a constant batch
        outside [0, 1] is clipped. NaN or infinite values raise :class:`~vaekit.errors.DataError`.

    Example:
        >>> to_images(torch.rand(5, 784)).shape
        torch.Size([5, 1, 28, 28])
        >>> to_images(torch.rand(5, 10)).shape
        torch.Size([5, 1, 2, 5])
    """
    return _scale_to_unit(_as_image_batch(x, input_shape))


def image_grid(
    images: torch.Tensor | np.ndarray,
    nrow: int | None = None,
    padding: int = 2,
    pad_value: float = 1.0,
) -> np.ndarray:
    """The images tiled into one ``uint8`` array: ``(H, W)`` for grey, ``(H, W, 3)`` for RGB.

    ``images`` is anything :func:`to_images` accepts, with 1 or 3 channels. ``nrow`` is the
    number of images per grid row (default ``ceil(sqrt(N))``, capped at N); the grid has
    ``rows = ceil(N / nrow)`` rows. Each tile is surrounded by ``padding`` pixels of
    ``pad_value`` (in [0, 1]; 1.0 is white), so the output is
    ``rows * (h + padding) + padding`` by ``nrow * (w + padding) + padding`` pixels, and image
    ``i`` starts at ``(padding + (i // nrow) * (h + padding), padding + (i % nrow) * (w + padding))``.
    Unused slots of the last row are filled with ``pad_value``.

    Example:
        >>> image_grid(torch.rand(16, 1, 8, 8), padding=2).shape
        (42, 42)
        >>> image_grid(torch.rand(3, 3, 8, 8), nrow=3).shape
        (12, 32, 3)
    """
    imgs = to_images(images).numpy()
    n, c, h, w = imgs.shape
    _require_grey_or_rgb(imgs.shape)
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ConfigError(f"padding must be a non-negative integer, got {padding!r}")
    if not 0.0 <= float(pad_value) <= 1.0:
        raise ConfigError(f"pad_value must be in [0, 1] (0 black, 1 white), got {pad_value!r}")
    ncol = math.ceil(math.sqrt(n)) if nrow is None else nrow
    if isinstance(ncol, bool) or not isinstance(ncol, int) or ncol < 1:
        raise ConfigError(f"nrow (images per row) must be a positive integer, got {nrow!r}")
    ncol = min(ncol, n)
    rows = math.ceil(n / ncol)
    p = padding
    tiles = np.full((rows * ncol, c, h + p, w + p), pad_value, dtype=np.float32)
    tiles[:n, :, p:, p:] = imgs
    body = tiles.reshape(rows, ncol, c, h + p, w + p).transpose(2, 0, 3, 1, 4).reshape(c, rows * (h + p), ncol * (w + p))
    canvas = np.full((c, rows * (h + p) + p, ncol * (w + p) + p), pad_value, dtype=np.float32)
    canvas[:, : body.shape[1], : body.shape[2]] = body
    out = np.rint(canvas * 255.0).astype(np.uint8)
    return out[0] if c == 1 else np.ascontiguousarray(out.transpose(1, 2, 0))


def save_image_grid(
    images: torch.Tensor | np.ndarray,
    path: str | os.PathLike,
    nrow: int | None = None,
    scale: int | None = None,
    *,
    padding: int = 2,
    pad_value: float = 1.0,
    input_shape: Sequence[int] | None = None,
) -> Path:
    """Save the images as one PNG grid (see :func:`image_grid`); returns ``Path(path)``.

    Each image is upscaled by the integer ``scale`` (nearest neighbour) before tiling, so the
    padding stays ``padding`` pixels wide. The default scale is the smallest making the longer
    side of a tile at least :data:`MIN_TILE_PIXELS` (28) pixels: 8×8 digits are drawn 32×32,
    28×28 images are not scaled. The parent directory is created and the file is written
    atomically.

    Example:
        >>> save_image_grid(torch.rand(16, 64), "runs/samples.png")  # doctest: +SKIP
        PosixPath('runs/samples.png')
    """
    imgs = to_images(images, input_shape)
    _require_grey_or_rgb(imgs.shape)  # before upscaling, so an error names the shape as given
    imgs = _upscale(imgs, _resolve_scale(scale, imgs))
    return write_png(image_grid(imgs, nrow=nrow, padding=padding, pad_value=pad_value), path)


def save_image_rows(
    rows: Sequence[torch.Tensor | np.ndarray],
    path: str | os.PathLike,
    labels: Sequence[str] | None = None,
    scale: int | None = None,
    *,
    padding: int = 2,
    input_shape: Sequence[int] | None = None,
) -> Path:
    """Save equally sized batches as the rows of one PNG, optionally labelled at the left.

    Typical rows: originals over reconstructions, or noisy / denoised / clean. Every row must
    hold the same number of images of the same height and width (shapes may differ, e.g. flat
    originals and image-shaped reconstructions; grey rows are shown as grey RGB beside colour
    rows). All rows share one [0, 1] scaling (see :func:`to_images`), so their intensities are
    comparable. ``labels`` (one per row) are drawn in black on white in a column to the left,
    with Pillow's default font; the grid itself is as in :func:`save_image_grid` with
    ``nrow = len(rows[0])``. Returns ``Path(path)``.

    Example:
        >>> save_image_rows([noisy, denoised, clean], "denoise.png",
        ...                 labels=["noisy", "denoised", "clean"])  # doctest: +SKIP
        PosixPath('denoise.png')
    """
    if isinstance(rows, (torch.Tensor, np.ndarray)) or len(rows) == 0:
        raise ConfigError("rows must be a non-empty sequence of image batches, one per row")
    if labels is not None:
        if isinstance(labels, str):
            raise ConfigError("labels must be a sequence of strings, one per row, not a single string")
        if len(labels) != len(rows):
            raise ConfigError(f"got {len(labels)} labels for {len(rows)} rows; give one label per row")
    batches = [_as_image_batch(r, input_shape) for r in rows]
    n, _, h, w = batches[0].shape
    for i, b in enumerate(batches[1:], start=1):
        if b.shape[0] != n or b.shape[2:] != (h, w):
            raise DataError(
                f"rows must hold equally sized batches: row 0 has {n} images of {h}×{w}, "
                f"row {i} has {b.shape[0]} of {b.shape[2]}×{b.shape[3]}"
            )
    channels = {b.shape[1] for b in batches}
    if channels == {1, 3}:
        batches = [b.expand(-1, 3, -1, -1) for b in batches]
    elif len(channels) > 1:
        raise DataError(f"rows have different channel counts {sorted(channels)}; cannot stack them")
    imgs = _scale_to_unit(torch.cat(batches))
    _require_grey_or_rgb(imgs.shape)
    s = _resolve_scale(scale, imgs)
    grid = image_grid(_upscale(imgs, s), nrow=n, padding=padding, pad_value=1.0)
    if labels is not None:
        grid = _add_row_labels(grid, [str(label) for label in labels], tile_height=h * s, padding=padding)
    return write_png(grid, path)


def save_reconstructions(
    x: torch.Tensor | np.ndarray,
    xr: torch.Tensor | np.ndarray,
    path: str | os.PathLike,
    n: int = 8,
    *,
    scale: int | None = None,
    input_shape: Sequence[int] | None = None,
) -> Path:
    """Save the first ``n`` originals ``x`` (top row) over their reconstructions ``xr``.

    ``xr`` should be in data space (e.g. Bernoulli means, not logits). The rows are labelled
    "original" and "reconstruction"; see :func:`save_image_rows`. Returns ``Path(path)``.

    Example:
        >>> save_reconstructions(x, model.reconstruct(x), "runs/recon.png")  # doctest: +SKIP
        PosixPath('runs/recon.png')
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"n must be a positive integer, got {n!r}")
    if len(x) != len(xr):
        raise DataError(f"x and xr must pair up: got {len(x)} originals and {len(xr)} reconstructions")
    return save_image_rows(
        [x[:n], xr[:n]], path, labels=["original", "reconstruction"], scale=scale, input_shape=input_shape
    )


def _as_image_batch(x: torch.Tensor | np.ndarray, input_shape: Sequence[int] | None) -> torch.Tensor:
    """Float32 ``(N, C, H, W)`` CPU tensor with the values unchanged (uint8 → /255, bool → 0/1)."""
    t = x.detach().cpu() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.is_complex():
        raise DataError("cannot draw complex-valued images")
    if t.dtype == torch.uint8:
        t = t.to(torch.float32) / 255.0
    else:
        t = t.to(torch.float32)
    if input_shape is not None:
        shape = tuple(int(d) for d in input_shape)
        if len(shape) == 2:
            shape = (1, *shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ConfigError(f"input_shape must be (C, H, W) or (H, W), got {tuple(input_shape)}")
        if t.ndim == 0:
            raise DataError("cannot draw a scalar; give a batch of images")
        per_example = math.prod(t.shape[1:])
        if per_example != math.prod(shape):
            raise DataError(
                f"input_shape {shape} needs {math.prod(shape)} values per example, "
                f"but the batch {tuple(t.shape)} has {per_example}"
            )
        t = t.reshape(t.shape[0], *shape)
    elif t.ndim == 4:
        pass
    elif t.ndim == 3:
        t = t.unsqueeze(1)
    elif t.ndim in (1, 2):
        if t.ndim == 1:
            t = t.unsqueeze(0)
        d = t.shape[1]
        if d == 0:
            raise DataError("cannot draw images with no pixels")
        h = math.isqrt(d)
        while d % h:
            h -= 1
        t = t.reshape(t.shape[0], 1, h, d // h)
    else:
        raise DataError(
            f"cannot draw a tensor of shape {tuple(t.shape)}; expected (N, C, H, W), (N, H, W) or (N, D)"
        )
    if t.shape[0] == 0 or t.numel() == 0:
        raise DataError(f"no images to draw (shape {tuple(t.shape)})")
    return t


def _scale_to_unit(t: torch.Tensor) -> torch.Tensor:
    """Refuse NaN/inf; min-max scale the whole batch to [0, 1] unless already inside it."""
    if torch.isnan(t).any():
        raise DataError("cannot draw images containing NaN")
    if torch.isinf(t).any():
        raise DataError("cannot draw images containing infinite values")
    lo, hi = t.min(), t.max()
    if lo < 0 or hi > 1:
        t = (t - lo) / (hi - lo) if hi > lo else t.clamp(0.0, 1.0)
    return t.contiguous()


def _require_grey_or_rgb(shape: Sequence[int]) -> None:
    """Refuse an ``(N, C, H, W)`` batch whose C is neither 1 (grey) nor 3 (RGB), naming the fix."""
    c = shape[1]
    if c in (1, 3):
        return
    hint = "select channels or pass input_shape (C, H, W)"
    if shape[-1] in (1, 3):
        hint = "this looks channels-last (N, H, W, C): pass x.permute(0, 3, 1, 2) (numpy: x.transpose(0, 3, 1, 2))"
    raise DataError(f"image grids draw 1-channel (grey) or 3-channel (RGB) images, got {c} channels "
                    f"(shape {tuple(shape)} read as (N, C, H, W)); {hint}")


def _resolve_scale(scale: int | None, imgs: torch.Tensor) -> int:
    """The integer upscaling factor: ``scale`` checked, or the default for these images."""
    if scale is None:
        return max(1, math.ceil(MIN_TILE_PIXELS / max(imgs.shape[-2:])))
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ConfigError(f"scale must be a positive integer (nearest-neighbour upscaling), got {scale!r}")
    return scale


def _upscale(imgs: torch.Tensor, scale: int) -> torch.Tensor:
    """Nearest-neighbour upscaling of ``(N, C, H, W)`` by an integer factor."""
    if scale == 1:
        return imgs
    return imgs.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)


def _label_font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font only
        return ImageFont.load_default()


_ASCII_FALLBACKS = {"→": "->", "←": "<-", "–": "-", "—": "-", "−": "-", "×": "x", "σ": "s", "β": "beta", "…": "..."}
"""Stand-ins for characters a label font may lack (Pillow's default font has no arrow)."""


def _has_glyph(font: ImageFont.ImageFont | ImageFont.FreeTypeFont, char: str) -> bool:
    """Whether ``font`` draws ``char`` as itself rather than as its "missing glyph" box."""
    try:
        mask = font.getmask(char)
        missing = font.getmask("\ue000")  # a private-use code point no font maps: the .notdef box
    except (UnicodeEncodeError, OSError, ValueError):
        return False
    return char.isspace() or not (mask.size == missing.size and bytes(mask) == bytes(missing))


def drawable_label(label: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> str:
    """``label`` with every character ``font`` lacks replaced by an ASCII stand-in: a listed
    one ("→" becomes "->"), the letter without its accent ("é" becomes "e"), or "?"."""
    import unicodedata

    def stand_in(c: str) -> str:
        if c in _ASCII_FALLBACKS:
            return _ASCII_FALLBACKS[c]
        plain = "".join(b for b in unicodedata.normalize("NFKD", c) if b.isascii())
        return plain or "?"

    return "".join(c if c.isascii() or _has_glyph(font, c) else stand_in(c) for c in label)


def _add_row_labels(grid: np.ndarray, labels: list[str], tile_height: int, padding: int) -> np.ndarray:
    """Prepend a white column with ``labels[i]`` vertically centred on grid row ``i``."""
    font = _label_font(int(min(16, max(10, 0.4 * tile_height))))
    labels = [drawable_label(label, font) for label in labels]
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    boxes = [probe.textbbox((0, 0), label, font=font) for label in labels]
    label_width = max(box[2] for box in boxes) + 2 * _LABEL_MARGIN
    mode, white, black = ("L", 255, 0) if grid.ndim == 2 else ("RGB", (255, 255, 255), (0, 0, 0))
    canvas = Image.new(mode, (label_width + grid.shape[1], grid.shape[0]), white)
    canvas.paste(Image.fromarray(grid), (label_width, 0))
    draw = ImageDraw.Draw(canvas)
    for i, (label, (_, top, _, bottom)) in enumerate(zip(labels, boxes)):
        centre = padding + i * (tile_height + padding) + tile_height / 2
        draw.text((_LABEL_MARGIN, round(centre - (top + bottom) / 2)), label, fill=black, font=font)
    return np.asarray(canvas)
