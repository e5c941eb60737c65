"""The explorer's plane: orthonormal bases, the PCA plane against scikit-learn, (u, v, rest) ↔ z."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from vaekit.errors import ConfigError
from vaekit.serve.plane import axis_plane, coordinate_ranges, pca_plane, to_latent, to_plane


def _codes(n: int = 400, d: int = 5, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    scales = torch.tensor([4.0, 2.5, 1.0, 0.5, 0.2][:d])
    mixing = torch.linalg.qr(torch.randn(d, d, generator=g))[0]
    return (torch.randn(n, d, generator=g) * scales) @ mixing.T + torch.arange(d, dtype=torch.float32)


@pytest.mark.parametrize("make", [lambda c: pca_plane(c), lambda c: axis_plane(c, (3, 1))])
def test_basis_is_orthonormal(make):
    plane = make(_codes())
    eye = plane.basis @ plane.basis.T
    assert torch.allclose(eye, torch.eye(5, dtype=torch.float64), atol=1e-10)
    assert len(plane.names) == 5


def test_pca_plane_matches_sklearn():
    codes = _codes()
    plane = pca_plane(codes)
    pca = PCA(n_components=5).fit(codes.double().numpy())
    assert np.allclose(plane.origin.numpy(), pca.mean_)
    for k in range(5):  # the same directions, up to sign
        assert abs(float(plane.basis[k] @ torch.from_numpy(pca.components_[k]))) == pytest.approx(1.0, abs=1e-8)
    scores = to_plane(plane, codes)[:, :2].numpy()
    reference = pca.transform(codes.double().numpy())[:, :2]
    assert np.allclose(np.abs(scores), np.abs(reference), atol=1e-8)
    assert plane.names[:2] == ("PC1", "PC2")
    # variance along the plane's axes is sklearn's explained variance, in decreasing order
    assert np.allclose(scores.var(0, ddof=1), pca.explained_variance_[:2])


def test_axis_plane_reads_the_chosen_dimensions():
    codes = _codes()
    plane = axis_plane(codes, (3, 1))
    coords = to_plane(plane, codes)
    assert torch.allclose(coords[:, 0], codes[:, 3].double()) and torch.allclose(coords[:, 1], codes[:, 1].double())
    z = to_latent(plane, 0.7, -1.2)  # rest held at the mean of the other dimensions
    mean = codes.double().mean(0)
    assert torch.allclose(z[0], torch.tensor([mean[0], -1.2, mean[2], 0.7, mean[4]], dtype=torch.float64))
    assert plane.names[:2] == ("z3", "z1")


@pytest.mark.parametrize("make", [lambda c: pca_plane(c), lambda c: axis_plane(c, (0, 4))])
def test_round_trips(make):
    codes = _codes()
    plane = make(codes)
    g = torch.Generator().manual_seed(1)
    u, v, rest = torch.randn(50, generator=g), torch.randn(50, generator=g), torch.randn(50, 3, generator=g)
    coords = to_plane(plane, to_latent(plane, u, v, rest))
    assert torch.allclose(coords, torch.cat([u[:, None], v[:, None], rest], 1).double(), atol=1e-10)
    assert torch.allclose(to_latent(plane, *to_plane(plane, codes).T[:2], to_plane(plane, codes)[:, 2:]), codes.double(), atol=1e-5)


def test_pca_hold_at_mean_is_the_mean_plus_the_plane():
    codes = _codes()
    plane = pca_plane(codes)
    z = to_latent(plane, torch.tensor([0.0, 2.0]), torch.tensor([0.0, -1.0]))
    assert torch.allclose(z[0], codes.double().mean(0), atol=1e-10)
    # the offset from the mean lies in the span of the top-2 directions of sklearn's PCA
    components = torch.from_numpy(PCA(n_components=2).fit(codes.double().numpy()).components_)
    offset = z[1] - z[0]
    assert torch.allclose(components.T @ (components @ offset), offset, atol=1e-8)


def test_ranges_hold_the_codes():
    codes = _codes()
    plane = pca_plane(codes)
    ranges = coordinate_ranges(plane, codes)
    coords = to_plane(plane, codes)
    assert (coords >= ranges[:, 0]).all() and (coords <= ranges[:, 1]).all()
    assert torch.allclose(ranges[2:, 0], -ranges[2:, 1])  # the other coordinates: symmetric about the mean


def test_bad_dims_and_codes_are_refused():
    codes = _codes()
    with pytest.raises(ConfigError, match="two different latent dimensions in 0..4"):
        axis_plane(codes, (1, 1))
    with pytest.raises(ConfigError, match="0..4"):
        axis_plane(codes, (0, 5))
    with pytest.raises(Exception, match="NaN"):
        pca_plane(torch.full((4, 3), float("nan")))
    with pytest.raises(Exception, match="rest must hold"):
        to_latent(pca_plane(codes), 0.0, 0.0, [1.0])
