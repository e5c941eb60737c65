"""The explorer's plane through the latent space: a basis, and the map (u, v, rest) ↔ z.

A :class:`Plane` is an origin o ∈ R^D and an orthonormal basis b_1, …, b_D (the rows of a
D × D matrix B). A code z has plane coordinates (u, v) and remaining coordinates
r_1, …, r_{D−2}:

    z = o + u·b_1 + v·b_2 + Σ_k r_k·b_{k+2}        (u, v, r) = B (z − o)

(B is orthogonal, so the inverse is its transpose). Two planes are offered:

* :func:`axis_plane`: two chosen latent dimensions i, j. b_1 = e_i, b_2 = e_j, the other
  unit vectors follow in order; o is the mean code with its i-th and j-th entries set to
  0, so u = z_i and v = z_j exactly and r_k = 0 holds the other dimensions at their mean.
* :func:`pca_plane`: the top two principal directions of the codes (the right singular
  vectors of the centred code matrix, ``torch.linalg.svd``), the others following in order
  of explained variance; o is the mean code, so (u, v) are the first two principal
  component scores and r = 0 holds the remaining components at the mean.

References:
    On Lines and Planes of Closest Fit to Systems of Points in Space (Pearson, 1901),
    Philosophical Magazine 2(11) — principal directions as the best-fitting plane.
    Auto-Encoding Variational Bayes (Kingma & Welling, 2014), arXiv:1312.6114 — fig. 4,
    the decoded plane of a 2-D latent space.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from vaekit.errors import ConfigError, DataError

__all__ = ["Plane", "axis_plane", "pca_plane", "to_latent", "to_plane", "coordinate_ranges"]


@dataclass(frozen=True)
class Plane:
    """An origin and an orthonormal basis of R^D; the first two basis rows span the plane.

    Arguments:
        origin: ``(D,)`` the code at (u, v, r) = 0.
        basis: ``(D, D)`` orthonormal rows b_1, …, b_D.
        names: a name per coordinate (``"z3"`` or ``"PC1"``), for the page's labels.
        kind: ``"dims"`` (two chosen latent dimensions) or ``"pca"``.
    """

    origin: torch.Tensor
    basis: torch.Tensor
    names: tuple[str, ...]
    kind: str

    @property
    def latent_dim(self) -> int:
        return int(self.basis.shape[0])


def _codes(codes: torch.Tensor, what: str = "codes") -> torch.Tensor:
    codes = torch.as_tensor(codes).detach().to(torch.float64).cpu()
    if codes.dim() != 2 or codes.shape[1] < 2:
        raise DataError(f"{what} must be a table of shape (N, latent_dim) with latent_dim >= 2, got shape {tuple(codes.shape)}")
    if codes.shape[0] < 1:
        raise DataError(f"{what} are empty: the plane needs at least one code")
    if not torch.isfinite(codes).all():
        raise DataError(f"{what} contain NaN or infinite values; the model or the data is broken")
    return codes


def axis_plane(codes: torch.Tensor, dims: Sequence[int]) -> Plane:
    """The plane of latent dimensions ``dims = (i, j)``: u = z_i, v = z_j, the others at their mean.

    Arguments:
        codes: ``(N, D)`` codes whose mean fixes the other dimensions.
        dims: two distinct indices in 0..D−1.

    Example:
        >>> p = axis_plane(torch.randn(100, 4), (2, 0))
        >>> p.basis[:2]
        tensor([[0., 0., 1., 0.],
                [1., 0., 0., 0.]], dtype=torch.float64)
    """
    codes = _codes(codes)
    d = codes.shape[1]
    dims = [int(k) for k in dims]
    if len(dims) != 2 or dims[0] == dims[1] or not all(0 <= k < d for k in dims):
        raise ConfigError(f"--dims takes two different latent dimensions in 0..{d - 1} (the model has latent_dim={d}), got {dims}")
    order = dims + [k for k in range(d) if k not in dims]
    basis = torch.eye(d, dtype=torch.float64)[order]
    origin = codes.mean(0)
    origin[dims] = 0.0
    return Plane(origin, basis, tuple(f"z{k}" for k in order), "dims")


def pca_plane(codes: torch.Tensor) -> Plane:
    """The plane of the top two principal directions of ``codes`` (N, D), centred at their mean.

    The basis is V^T from the SVD X − x̄ = U S V^T, each direction's sign chosen so that its
    largest-magnitude entry is positive (scikit-learn's convention), so the plane does not
    flip between runs.

    Example:
        >>> p = pca_plane(torch.randn(200, 5) * torch.tensor([5.0, 1, 1, 1, 0.1]))
        >>> p.names[:2], round(abs(float(p.basis[0, 0])), 1)
        (('PC1', 'PC2'), 1.0)
    """
    codes = _codes(codes)
    if codes.shape[0] < 2:
        raise DataError(f"principal directions need at least 2 codes, got {codes.shape[0]}")
    origin = codes.mean(0)
    _, _, vt = torch.linalg.svd(codes - origin, full_matrices=True)
    signs = torch.sign(vt.gather(1, vt.abs().argmax(1, keepdim=True))).squeeze(1)
    basis = vt * torch.where(signs == 0, torch.ones_like(signs), signs)[:, None]
    return Plane(origin, basis, tuple(f"PC{k + 1}" for k in range(basis.shape[0])), "pca")


def to_latent(plane: Plane, u: torch.Tensor | float, v: torch.Tensor | float, rest: torch.Tensor | Sequence[float] | None = None) -> torch.Tensor:
    """The codes z = o + u·b_1 + v·b_2 + Σ r_k·b_{k+2}: ``(N, D)`` float64 for N values of u and v.

    ``rest`` is ``(D−2,)`` (shared by all points) or ``(N, D−2)``; None or empty holds the
    remaining coordinates at 0 (the mean, for both planes).
    """
    u = torch.as_tensor(u, dtype=torch.float64).reshape(-1)
    v = torch.as_tensor(v, dtype=torch.float64).reshape(-1)
    if u.shape != v.shape:
        raise DataError(f"u and v must have the same number of values, got {u.numel()} and {v.numel()}")
    d = plane.latent_dim
    r = torch.zeros(u.shape[0], d - 2, dtype=torch.float64)
    if rest is not None and len(rest) > 0:
        given = torch.as_tensor(rest, dtype=torch.float64)
        if given.shape[-1] != d - 2 or given.dim() > 2:
            raise DataError(f"rest must hold latent_dim - 2 = {d - 2} coordinates, got shape {tuple(given.shape)}")
        r = r + given
    coords = torch.cat([u[:, None], v[:, None], r], dim=1)
    if not torch.isfinite(coords).all():
        raise DataError("plane coordinates must be finite numbers")
    return plane.origin + coords @ plane.basis


def to_plane(plane: Plane, z: torch.Tensor) -> torch.Tensor:
    """The coordinates (u, v, r_1, …, r_{D−2}) = B (z − o) of codes ``z`` (N, D): ``(N, D)`` float64."""
    z = torch.as_tensor(z).detach().to(torch.float64).cpu()
    if z.dim() != 2 or z.shape[1] != plane.latent_dim:
        raise DataError(f"codes must have shape (N, {plane.latent_dim}), got {tuple(z.shape)}")
    return (z - plane.origin) @ plane.basis.T


def coordinate_ranges(plane: Plane, codes: torch.Tensor, margin: float = 0.1) -> torch.Tensor:
    """``(D, 2)`` slider ranges: each coordinate's [min, max] over ``codes``, widened by ``margin`` of the span.

    The span is at least 1 (codes that barely move still get a usable slider). For the
    remaining coordinates (rows 2…) the range is made symmetric about 0, the value that
    holds them at the mean.
    """
    coords = to_plane(plane, _codes(codes))
    lo, hi = coords.min(0).values, coords.max(0).values
    pad = torch.clamp(hi - lo, min=1.0) * margin
    lo, hi = lo - pad, hi + pad
    half = torch.maximum(lo.abs(), hi.abs())[2:]
    lo[2:], hi[2:] = -half, half
    return torch.stack([lo, hi], dim=1)
