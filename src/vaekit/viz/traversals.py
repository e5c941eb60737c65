"""Latent traversals: one code swept along each chosen dimension and decoded.

Row d of a traversal holds the decoder means at the codes z⁽ᵗ⁾ = z with coordinate d
replaced by t, for t on a grid over [−r, r]; the other coordinates stay at z (the code of
one example). A dimension that changes one factor of the picture (and only it) along its
row is what disentanglement papers show as evidence.

References:
    β-VAE: Learning Basic Visual Concepts with a Constrained Variational Framework
    (Higgins et al., 2017), ICLR — latent traversals as in its figures.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from vaekit.errors import ConfigError

__all__ = ["traversal_values", "traversal_rows"]


def traversal_values(range: float = 3.0, steps: int = 9) -> torch.Tensor:
    """The ``steps`` values t = −range … range (evenly spaced) a traversal sweeps each dimension over."""
    r = float(range)
    if not math.isfinite(r) or r <= 0:
        raise ConfigError(f"the traversal range must be a finite number > 0, got {range!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"the traversal needs a positive number of steps, got {steps!r}")
    return torch.linspace(-r, r, steps)


@torch.no_grad()
def traversal_rows(
    model: Any,
    code: torch.Tensor,
    dims: Sequence[int],
    values: torch.Tensor,
    y: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    """One batch of decoded images per dimension in ``dims``: ``code`` with that coordinate set to each of ``values``.

    Arguments:
        model: a vaekit model with a decoder.
        code: the starting code, shape ``(latent_dim,)`` (e.g. ``model.transform(x[:1])[0]``).
        dims: the latent dimensions to sweep, each in ``0 .. latent_dim − 1`` (a list, numpy array or tensor),
            one row each, in this order.
        values: the values each swept coordinate takes, shape ``(steps,)``
            (see :func:`traversal_values`).
        y: for a conditional model, the example's condition, shape ``(1,)`` for a label or
            ``(1, K)`` for a vector; it is repeated along the row.

    Returns:
        ``len(dims)`` tensors of shape ``(steps, *input_shape)`` (decoder means, on the CPU),
        ready for :func:`vaekit.viz.save_image_rows`.

    Example:
        >>> code = model.transform(x[:1])[0]  # doctest: +SKIP
        >>> rows = traversal_rows(model, code, [0, 1], traversal_values(3.0, 9))  # doctest: +SKIP
        >>> save_image_rows(rows, "traverse.png", labels=["z0", "z1"])  # doctest: +SKIP
    """
    latent_dim = int(model.latent_dim)
    dims = [int(d) for d in dims]  # a list, numpy array or tensor of indices
    if any(not 0 <= d < latent_dim for d in dims):
        raise ConfigError(f"traversal dimensions must lie in 0..{latent_dim - 1}, got {dims}")
    if not dims:
        raise ConfigError("give at least one latent dimension to traverse")
    values = torch.as_tensor(values, dtype=code.dtype, device=code.device)
    steps = values.shape[0]
    condition = None if y is None else y.expand(steps, *y.shape[1:])
    rows = []
    for d in dims:
        z = code.repeat(steps, 1)
        z[:, d] = values
        rows.append(model.decode(z, condition).mean.cpu())
    return rows
