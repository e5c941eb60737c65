"""vaekit.viz.latent_map: PCA / t-SNE / UMAP maps of codes, their plot, and the decoded manifold of a 2-D latent space."""

import sys

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.decomposition import PCA

import vaekit
from vaekit.errors import ConfigError, DataError
from vaekit.viz.latent_map import (
    check_method,
    latent_codes,
    latent_map,
    manifold_codes,
    manifold_grid,
    manifold_problem,
    manifold_range,
    map_axis_names,
    plot_latent_map,
    save_manifold,
    tsne_perplexity,
)


def tiny(name="vae", latent_dim=2, input_shape=(1, 4, 4), **options):
    torch.manual_seed(0)
    return vaekit.create(name, input_shape=input_shape, latent_dim=latent_dim, arch="mlp", hidden_dims=(8,), **options)


def two_clusters(n=30, d=6, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.zeros((2, d))
    centres[1, 0] = 20.0
    labels = np.repeat([0, 1], n)
    return centres[labels] + rng.normal(size=(2 * n, d)), labels


def test_pca_map_is_sklearn_pca_and_the_top_two_singular_directions():
    codes = np.random.default_rng(1).normal(size=(80, 5)) * np.array([5.0, 3.0, 1.0, 0.5, 0.1])
    points = latent_map(codes, method="pca")
    np.testing.assert_allclose(points, PCA(n_components=2).fit_transform(codes), atol=1e-10)
    centred = codes - codes.mean(0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    expected = u[:, :2] * s[:2]
    signs = np.sign((points * expected).sum(0))  # principal directions are defined up to sign
    np.testing.assert_allclose(points * signs, expected, atol=1e-8)
    assert points[:, 0].var() > points[:, 1].var()


def test_a_latent_space_of_at_most_two_dimensions_is_drawn_as_it_is():
    codes = torch.tensor([[1.0], [2.0], [6.0]])
    np.testing.assert_allclose(latent_map(codes), [[1.0, 0.0], [2.0, 0.0], [6.0, 0.0]])
    codes = np.random.default_rng(0).normal(size=(10, 2))
    np.testing.assert_array_equal(latent_map(codes), codes)
    assert map_axis_names("pca", 2) == ("z1", "z2") and map_axis_names("pca", 8) == ("PC 1", "PC 2")
    assert map_axis_names("tsne", 2) == ("t-SNE 1", "t-SNE 2")


def test_tsne_returns_finite_points_that_keep_separated_clusters_apart():
    codes, labels = two_clusters()
    points = latent_map(codes, labels, method="tsne", seed=0)
    assert points.shape == (60, 2) and np.isfinite(points).all()
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    assert (labels[distances.argmin(1)] == labels).all()  # every point's nearest neighbour is in its own cluster
    np.testing.assert_allclose(latent_map(codes, method="tsne", seed=0), points)  # seeded


def test_tsne_perplexity_stays_below_the_number_of_points():
    assert tsne_perplexity(1000) == 30.0
    for n in (3, 5, 10, 50):
        assert 1.0 <= tsne_perplexity(n) < n
    assert latent_map(np.random.default_rng(0).normal(size=(4, 3)), method="tsne").shape == (4, 2)


def test_umap_without_umap_learn_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # as if umap-learn were not installed
    with pytest.raises(ConfigError, match="pip install umap-learn") as error:
        latent_map(np.zeros((10, 3)), method="umap")
    assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="pip install umap-learn"):
        check_method("umap")


def test_bad_codes_labels_and_methods_are_refused():
    with pytest.raises(ConfigError, match="pca, tsne, umap"):
        latent_map(np.zeros((5, 2)), method="lda")
    with pytest.raises(DataError, match="at least 3"):
        latent_map(np.zeros((2, 4)))
    with pytest.raises(DataError, match="NaN"):
        latent_map(np.array([[0.0, 1.0], [np.nan, 1.0], [1.0, 2.0]]))
    with pytest.raises(DataError, match="one value per code"):
        latent_map(np.zeros((5, 2)), labels=[0, 1])
    with pytest.raises(DataError, match=r"\(N, latent_dim\)"):
        latent_map(np.zeros(5))


def test_latent_codes_are_the_posterior_means():
    model = tiny()
    x = torch.rand(7, 1, 4, 4)
    codes = latent_codes(model, x)
    torch.testing.assert_close(codes, model.encode(x).mean.detach())


def test_plot_latent_map_names_classes_in_a_legend(tmp_path, saved_figures):
    points = np.random.default_rng(0).normal(size=(30, 2))
    path = plot_latent_map(points, np.arange(30) % 3, tmp_path / "map.png", "codes", class_names=["cat", "dog", "owl"],
                           axis_names=map_axis_names("pca", 5))
    assert Image.open(path).size == (640, 500)
    (ax,) = saved_figures[-1]
    assert ax["legend"] == ["cat", "dog", "owl"] and ax["title"] == "codes" and ax["xlabel"] == "PC 1"


def test_plot_latent_map_without_labels_says_so_and_many_classes_get_a_colour_bar(tmp_path, saved_figures):
    points = np.random.default_rng(0).normal(size=(40, 2))
    plot_latent_map(points, None, tmp_path / "plain.png", "codes")
    assert saved_figures[-1][0]["title"] == "codes (no labels: one colour)" and saved_figures[-1][0]["legend"] == []
    plot_latent_map(points, np.arange(40), tmp_path / "bar.png", "codes", axis_names=map_axis_names("tsne", 5))
    assert len(saved_figures[-1]) == 2 and saved_figures[-1][0]["xlabel"] == "t-SNE 1"  # the scatter and its colour bar


def test_manifold_codes_run_left_to_right_and_bottom_to_top():
    codes = manifold_codes(3, 2.0)
    expected = [[x, y] for y in (2.0, 0.0, -2.0) for x in (-2.0, 0.0, 2.0)]
    torch.testing.assert_close(codes, torch.tensor(expected))
    with pytest.raises(ConfigError, match=">= 2"):
        manifold_codes(1)
    with pytest.raises(ConfigError, match="> 0"):
        manifold_codes(5, -1.0)


def test_manifold_grid_decodes_the_grid_it_claims():
    model = tiny().eval()
    n, r = 4, 1.5
    images = manifold_grid(model, n=n, range=r)
    assert images.shape == (n * n, 1, 4, 4)
    step = 2 * r / (n - 1)
    for i in range(n):
        for j in range(n):
            z = torch.tensor([[-r + j * step, r - i * step]])
            with torch.no_grad():
                torch.testing.assert_close(images[i * n + j], model.decode(z).mean[0])


def test_save_manifold_writes_an_n_by_n_grid(tmp_path):
    path = save_manifold(tiny(), tmp_path / "manifold.png", n=5)
    tile = 28  # 4×4 images are upscaled 7× to the 28-pixel minimum tile
    assert Image.open(path).size == (5 * (tile + 2) + 2, 5 * (tile + 2) + 2)


def test_models_without_a_drawable_manifold_are_named():
    assert manifold_problem(tiny()) is None
    assert "latent_dim=3" in manifold_problem(tiny(latent_dim=3))
    assert "conditional" in manifold_problem(tiny("conditional_vae", num_classes=3))
    assert "vectors" in manifold_problem(tiny(input_shape=(6,)))
    assert "not real-valued" in manifold_problem(tiny("categorical_vae", latent_dim=1, categories=2))
    with pytest.raises(ConfigError, match="latent_dim=3"):
        manifold_grid(tiny(latent_dim=3))


def test_manifold_range_is_three_with_a_prior_and_the_codes_extent_without():
    assert manifold_range(tiny()) == 3.0
    codes = torch.linspace(-1.2, 1.2, 101).reshape(-1, 1).repeat(1, 2)
    assert manifold_range(tiny("ae"), codes) == 1.5  # 99th percentile of |z| = 1.18..., rounded up to 0.5


def test_text_labels_are_classes_in_a_legend(tmp_path, saved_figures):
    """Class names given per point (strings) get a legend entry each, not a crash converting them to numbers."""
    points = np.random.default_rng(0).normal(size=(6, 2))
    plot_latent_map(points, ["dog", "cat", "dog", "owl", "cat", "owl"], tmp_path / "map.png", "codes")
    assert saved_figures[-1][0]["legend"] == ["cat", "dog", "owl"]
    with pytest.raises(DataError, match="too many for a legend.*integer class indices"):
        plot_latent_map(np.zeros((30, 2)), [f"c{i}" for i in range(30)], tmp_path / "many.png", "codes")
