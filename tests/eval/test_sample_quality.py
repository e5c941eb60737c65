"""Sample-quality scores: each formula against an independent computation, then sanity checks on real digits.

The sanity checks use a small CNN trained on the 8×8 digits for a few epochs; the one
Fashion-MNIST check uses the shipped classifier in benchmarks/models/classifier_fmnist.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch

import vaekit
from vaekit.errors import DataError
from vaekit.eval.sample_quality import (
    SAMPLE_QUALITY_KEYS,
    frechet_distance,
    kernel_distance,
    label_entropies,
    precision_recall_density_coverage,
    sample_quality,
    trace_sqrt_product,
)
from vaekit.models import FeatureClassifier, classifier_sha256
from vaekit.train.classifier import classifier_accuracy, train_classifier

ROOT = Path(__file__).resolve().parents[2]


def low_rank_features(n: int, dim: int, rank: int, seed: int, scale: float = 1.0, shift: float = 0.0) -> np.ndarray:
    """n points on a random rank-``rank`` subspace of R^dim: their covariance is singular."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, rank)) @ rng.normal(size=(rank, dim)) * scale + shift


def empirical_cov(x: np.ndarray) -> np.ndarray:
    return np.cov(x, rowvar=False)


# -- the formulas -------------------------------------------------------------------------------
def test_trace_sqrt_product_matches_scipy_sqrtm_and_the_exact_nuclear_norm_on_singular_covariances():
    a, b = low_rank_features(400, 64, 10, seed=0, scale=3.0, shift=2.0), low_rank_features(300, 64, 12, seed=1)
    cov_a, cov_b = empirical_cov(a), empirical_cov(b)
    assert np.linalg.matrix_rank(cov_a) == 10 and np.linalg.matrix_rank(cov_b) == 12
    sqrtm = np.trace(scipy.linalg.sqrtm(cov_a @ cov_b)).real
    # exact: the eigenvalues of Σ_a Σ_b are the squared singular values of A_c B_cᵀ / √((n_a − 1)(n_b − 1))
    ac, bc = a - a.mean(0), b - b.mean(0)
    exact = np.linalg.svd(ac @ bc.T, compute_uv=False).sum() / math.sqrt((len(a) - 1) * (len(b) - 1))
    assert sqrtm == pytest.approx(exact, rel=1e-6)  # scipy's own accuracy here
    assert trace_sqrt_product(torch.from_numpy(cov_a), torch.from_numpy(cov_b)) == pytest.approx(exact, rel=1e-7)
    # from the features, the Fréchet distance never forms Σ and keeps (almost) every digit
    spread = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b)
    assert frechet_distance(a, b) == pytest.approx(spread - 2 * sqrtm, rel=1e-6)
    assert frechet_distance(a, b) == pytest.approx(spread - 2 * exact, rel=1e-12)


def test_frechet_distance_of_a_set_against_itself_is_zero_even_when_singular():
    a = low_rank_features(500, 128, 20, seed=2, scale=3.0, shift=5.0)
    scale = np.trace(empirical_cov(a)) + (a.mean(0) ** 2).sum()
    assert abs(frechet_distance(a, a)) < 1e-12 * scale  # the sqrtm and eigenvalue routes leave ~1e-7 · scale here


def test_frechet_distance_closed_forms_shift_and_scale():
    a = torch.from_numpy(low_rank_features(300, 16, 5, seed=3, shift=1.0))
    shift = torch.linspace(-1, 1, 16, dtype=torch.float64)
    assert frechet_distance(a, a + shift) == pytest.approx(float(shift.square().sum()), rel=1e-10)
    # b = s·a: μ_b = s μ_a, Σ_b = s² Σ_a, so FD = (s − 1)² (‖μ_a‖² + tr Σ_a)
    s = 2.5
    mean, cov = a.mean(0), torch.from_numpy(empirical_cov(a.numpy()))
    expected = (s - 1) ** 2 * float(mean.square().sum() + cov.trace())
    assert frechet_distance(a, s * a) == pytest.approx(expected, rel=1e-10)
    assert frechet_distance(s * a, a) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_agrees_with_torchmetrics_fid_on_full_rank_features():
    from torchmetrics.image.fid import FrechetInceptionDistance

    class Identity(torch.nn.Module):
        num_features = 8

        def forward(self, x):
            return x

    rng = np.random.default_rng(4)
    a = torch.from_numpy(rng.normal(size=(1000, 8)))
    b = torch.from_numpy(rng.normal(size=(800, 8)) @ rng.normal(size=(8, 8)) * 0.5 + 0.3)
    fid = FrechetInceptionDistance(feature=Identity())
    fid.update(a, real=True)
    fid.update(b, real=False)
    assert frechet_distance(a, b) == pytest.approx(float(fid.compute()), rel=1e-6)


def poly_mmd_by_loops(a: np.ndarray, b: np.ndarray, degree: int = 3) -> float:
    def k(u, v):
        return (u @ v / a.shape[1] + 1.0) ** degree

    m, n = len(a), len(b)
    within_a = sum(k(a[i], a[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    within_b = sum(k(b[i], b[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    across = sum(k(a[i], b[j]) for i in range(m) for j in range(n)) / (m * n)
    return within_a + within_b - 2 * across


def test_kernel_distance_is_the_unbiased_polynomial_mmd():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(25, 3)), rng.normal(size=(25, 3)) + 0.7
    mean, std = kernel_distance(a, b, subsets=4, subset_size=25)  # every subset is the whole set
    assert mean == pytest.approx(poly_mmd_by_loops(a, b), rel=1e-10) and std == pytest.approx(0.0, abs=1e-12)
    quadratic, _ = kernel_distance(a, b, subsets=1, subset_size=25, degree=2)
    assert quadratic == pytest.approx(poly_mmd_by_loops(a, b, degree=2), rel=1e-10)


def test_kernel_distance_is_unbiased_seeded_and_leaves_the_global_rng_alone():
    rng = np.random.default_rng(6)
    a, b, c = rng.normal(size=(1000, 4)), rng.normal(size=(1000, 4)), rng.normal(size=(1000, 4)) + 0.5
    state = torch.get_rng_state()
    same = kernel_distance(a, b, subsets=50, subset_size=200, seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    assert same == kernel_distance(a, b, subsets=50, subset_size=200, seed=1)
    shifted = kernel_distance(a, c, subsets=50, subset_size=200, seed=1)
    assert abs(same[0]) < same[1] and shifted[0] > 10 * same[1]  # ≈ 0 for one distribution, far from it for two


def prdc_by_loops(real: np.ndarray, fake: np.ndarray, k: int) -> dict:
    def radii(x):
        d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
        return np.sort(d, axis=1)[:, k]  # column 0 is the point itself

    r_real, r_fake = radii(real), radii(fake)
    dist = np.sqrt(((real[:, None] - fake[None]) ** 2).sum(-1))  # (N, M)
    inside_real = dist < r_real[:, None]  # fake j in the ball of real i
    return {
        "precision": np.mean([inside_real[:, j].any() for j in range(len(fake))]),
        "recall": np.mean([(dist[i] < r_fake).any() for i in range(len(real))]),
        "density": inside_real.sum() / (k * len(fake)),
        "coverage": np.mean([inside_real[i].any() for i in range(len(real))]),
    }


def test_precision_recall_density_coverage_follow_their_definitions(capsys):
    rng = np.random.default_rng(7)
    real, fake = rng.normal(size=(60, 3)), rng.normal(size=(45, 3)) * 1.5 + 0.4
    for k in (1, 3, 5):
        got = precision_recall_density_coverage(real, fake, k=k)
        want = prdc_by_loops(real, fake, k)
        assert got == pytest.approx(want, abs=1e-12)
    assert capsys.readouterr().out == ""  # prdc's print is kept off stdout


def test_precision_recall_density_coverage_keep_their_digits_under_a_large_offset_and_keep_ties():
    """Features offset far from 0 (float32 has ~1e-3 resolution at 1e4) and integer features with tied
    distances, against the float64 definitions by loops."""
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(60, 4)) * 0.01 + 1e4, rng.normal(size=(50, 4)) * 0.01 + 1e4 + 0.005
    assert precision_recall_density_coverage(real, fake, k=3) == pytest.approx(prdc_by_loops(real, fake, 3), abs=1e-12)
    real, fake = rng.integers(0, 4, size=(30, 2)) + 1000, rng.integers(0, 4, size=(25, 2)) + 1000
    assert precision_recall_density_coverage(real, fake, k=3) == pytest.approx(prdc_by_loops(real, fake, 3), abs=1e-12)


def test_label_entropies_match_scipy():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 3.0, 0.0], [1.0, 1.0, 5.0], [4.0, 0.0, 0.0]])
    p = torch.softmax(logits.double(), 1).numpy()
    got = label_entropies(logits)
    assert got["label_entropy"] == pytest.approx(np.mean([scipy.stats.entropy(row) for row in p]), rel=1e-12)
    assert got["class_entropy"] == pytest.approx(scipy.stats.entropy([2, 1, 1]), rel=1e-12)
    assert label_entropies(torch.tensor([[5.0, 0.0]] * 4))["class_entropy"] == 0.0


def test_bad_features_are_refused():
    with pytest.raises(DataError, match="features per row"):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(DataError, match="NaN"):
        frechet_distance(np.full((5, 3), np.nan), np.zeros((5, 3)))
    with pytest.raises(DataError, match="N ≥ 7"):
        precision_recall_density_coverage(np.zeros((6, 3)), np.zeros((50, 3)), k=5)


# -- sanity on real images --------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_setup():
    train, test = vaekit.data.load_digits("train"), vaekit.data.load_digits("test")
    clf, _ = train_classifier((train.x, train.y), epochs=8, batch_size=32, lr=3e-3, channels=(8, 16), hidden_dims=(32,),
                              seed=0, quiet=True)
    noise = torch.rand(len(test), 1, 8, 8, generator=torch.Generator().manual_seed(0))
    return clf, train, test, noise


def score(images, reference, clf):
    return sample_quality(images, reference, clf, kid_subsets=20, kid_subset_size=300)


def test_test_set_scores_near_the_floor_and_noise_and_blank_far_worse(digits_setup):
    clf, train, test, noise = digits_setup
    assert classifier_accuracy(clf, test.x, test.y) > 0.85
    real = score(test.x, train.x, clf)
    assert tuple(real) == SAMPLE_QUALITY_KEYS and real["n"] == len(test) and real["classifier_sha256"] == classifier_sha256(clf)
    assert real["precision"] > 0.85 and real["recall"] > 0.85 and real["density"] > 0.7
    assert abs(real["kid"]) < 3 * real["kid_std"]
    assert real["class_entropy"] > math.log(10) - 0.05  # every digit is generated
    for bad in (noise, torch.zeros_like(test.x)):
        worse = score(bad, train.x, clf)
        assert worse["fd"] > 20 * real["fd"] and worse["kid"] > 20 * real["kid_std"] + real["kid"]
        assert worse["density"] < real["density"] / 2 and worse["coverage"] < real["coverage"] / 4
        assert worse["precision"] < real["precision"] - 0.2
    assert score(torch.zeros_like(test.x), train.x, clf)["class_entropy"] == 0.0  # one class for every blank image


def test_frechet_distance_rises_as_samples_are_blended_into_noise(digits_setup):
    clf, train, test, noise = digits_setup
    real_feats, _ = clf.outputs(train.x)
    distances = [frechet_distance(real_feats, clf.outputs((1 - t) * test.x + t * noise)[0]) for t in (0, 0.1, 0.25, 0.5, 0.75)]
    assert all(a < b for a, b in zip(distances, distances[1:])), distances
    assert abs(frechet_distance(real_feats, real_feats)) < 1e-9 * float(real_feats.double().var(0).sum())


def test_recall_drops_when_every_sample_is_one_image(digits_setup):
    clf, train, test, _ = digits_setup
    real = score(test.x, train.x, clf)
    collapsed = score(test.x[:1].expand_as(test.x), train.x, clf)
    assert collapsed["recall"] < 0.05 < 0.85 < real["recall"]
    assert collapsed["coverage"] < 0.05 and collapsed["class_entropy"] == 0.0
    assert collapsed["precision"] > 0.9  # the one image is a real digit: fidelity stays, diversity is gone


def test_images_the_classifier_cannot_take_are_refused(digits_setup):
    clf, train, test, _ = digits_setup
    with pytest.raises(DataError, match=r"classifier was trained on \(N, 1, 8, 8\)"):
        sample_quality(torch.rand(20, 1, 28, 28), train.x, clf)
    broken = test.x.clone()
    broken[3, 0, 2, 2] = float("nan")
    with pytest.raises(DataError, match="non-finite"):
        sample_quality(broken, train.x, clf)
    with pytest.raises(DataError, match="more than k"):
        sample_quality(test.x[:4], train.x, clf)
    with pytest.raises(DataError, match=r"uint8 values.*/ 255"):
        sample_quality((test.x * 255).to(torch.uint8), train.x, clf)


def test_the_shipped_fashion_mnist_classifier_is_the_recorded_one_and_scores_sensibly():
    """Needs Fashion-MNIST (fails when it is missing) and benchmarks/models/classifier_fmnist."""
    folder = ROOT / "benchmarks" / "models" / "classifier_fmnist"
    clf = vaekit.load_classifier(folder, device="cpu")
    metrics = json.loads((folder / "metrics.json").read_text())
    assert classifier_sha256(clf) == metrics["sha256"] == json.loads((folder / "config.json").read_text())["weights_sha256"]
    assert isinstance(clf, FeatureClassifier) and (folder / "model.safetensors").stat().st_size < 2_000_000
    test, train = vaekit.data.load_fashion_mnist("test"), vaekit.data.load_fashion_mnist("train")
    assert classifier_accuracy(clf, test.x[:2000], test.y[:2000]) > 0.88
    real = sample_quality(test.x[:1000], train.x[:1000], clf, kid_subsets=10, kid_subset_size=500)
    noise = sample_quality(torch.rand(1000, 1, 28, 28, generator=torch.Generator().manual_seed(0)), train.x[:1000], clf,
                           kid_subsets=10, kid_subset_size=500)
    assert real["precision"] > 0.85 and real["recall"] > 0.85 and 0.8 < real["density"] < 1.2 and real["coverage"] > 0.9
    assert noise["fd"] > 20 * real["fd"] and noise["kid"] > real["kid"] + 20 * noise["kid_std"]
    assert noise["precision"] < real["precision"] - 0.15 and noise["density"] < real["density"] / 2
    assert noise["recall"] < 0.05 and noise["coverage"] < 0.1
