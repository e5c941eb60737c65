"""Disentanglement metrics: brute-force checks and disentanglement_lib-style sanity tests."""

import json
import math
from collections import Counter

import numpy as np
import pytest
import torch

import vaekit
from vaekit.cli import main
from vaekit.data import Sprites
from vaekit.errors import ConfigError, DataError
from vaekit.eval import betavae_score, dci, disentanglement_scores, factorvae_score, mig, sap
from vaekit.eval.disentanglement import dci_from_importance, histogram_discretize, mutual_information_matrix, sample_codes

FACTOR_SIZES = Sprites.factor_sizes


class IdentityData:
    """Ground truth whose "images" are the factor indices themselves (disentanglement_lib's IdentityObservationsData)."""

    factor_sizes = FACTOR_SIZES

    @staticmethod
    def sample_factors(n, rng):
        return Sprites.sample_factors(n, rng)

    @staticmethod
    def render(indices):
        return torch.as_tensor(np.asarray(indices), dtype=torch.float32)


def identity(x):
    return x


def constant(x):
    return torch.zeros(len(x), 5)


@pytest.fixture(scope="module")
def factors():
    return Sprites.sample_factors(10_000, np.random.default_rng(0))


# -- brute force ------------------------------------------------------------------------------
def entropy_by_hand(labels) -> float:
    n = len(labels)
    return -sum(c / n * math.log(c / n) for c in Counter(labels.tolist()).values())


def mutual_information_by_hand(a, b) -> float:
    n = len(a)
    joint, pa, pb = Counter(zip(a.tolist(), b.tolist())), Counter(a.tolist()), Counter(b.tolist())
    return sum(c / n * math.log((c / n) / (pa[x] / n * pb[y] / n)) for (x, y), c in joint.items())


def bins_by_hand(z, num_bins) -> np.ndarray:
    """Equal-width bins 1..num_bins between the minimum and the maximum (the maximum in the last)."""
    low, high = z.min(), z.max()
    return np.minimum(np.floor((z - low) / (high - low) * num_bins), num_bins - 1).astype(int) + 1


def test_mig_matches_a_brute_force_computation():
    rng = np.random.default_rng(1)
    v = np.stack([rng.integers(0, 3, 600), rng.integers(0, 5, 600), rng.integers(0, 2, 600)], axis=1)
    z = np.stack([v[:, 0] + 0.3 * rng.normal(size=600), v[:, 1] - v[:, 0] + 0.5 * rng.normal(size=600),
                  rng.normal(size=600), v[:, 2] * v[:, 1] + rng.normal(size=600)], axis=1)
    for num_bins in (5, 20):
        discrete = np.stack([bins_by_hand(z[:, j], num_bins) for j in range(z.shape[1])], axis=1)
        np.testing.assert_array_equal(histogram_discretize(z, num_bins), discrete)
        info = np.array([[mutual_information_by_hand(discrete[:, j], v[:, k]) for k in range(3)] for j in range(4)])
        np.testing.assert_allclose(mutual_information_matrix(discrete, v), info, rtol=1e-10, atol=1e-12)
        gaps = []
        for k in range(3):
            best, second = sorted(info[:, k])[-1], sorted(info[:, k])[-2]
            gaps.append((best - second) / entropy_by_hand(v[:, k]))
        assert mig(z, v, num_bins=num_bins) == pytest.approx(np.mean(gaps), rel=1e-10)


def test_mutual_information_of_one_dimensional_samples_is_that_of_one_column():
    """1-d codes and factors are one column each, as in mig: checked against the brute-force sum."""
    rng = np.random.default_rng(8)
    a, b = rng.integers(0, 3, 200), rng.integers(0, 4, 200)
    b = np.where(rng.random(200) < 0.5, a, b)
    info = mutual_information_matrix(a, b)
    assert info.shape == (1, 1) and info[0, 0] == pytest.approx(mutual_information_by_hand(a, b), rel=1e-10)


def test_a_code_whose_range_is_a_few_ulps_is_binned_not_refused():
    """np.histogram refuses 20 bins over a range of a few ulps (or beyond the largest float): the labels are
    the exact equal-width ones, as by hand."""
    eps = np.finfo(float).eps
    z = np.array([1.0, 1.0 + eps, 1.0 + 2 * eps, 1.0, 1.0 + 2 * eps])
    np.testing.assert_array_equal(histogram_discretize(z), bins_by_hand(z, 20)[:, None])  # 1, 11, 20, 1, 20
    np.testing.assert_array_equal(histogram_discretize(np.array([-1e308, 0.0, 1e308])).ravel(), [1, 11, 20])  # range overflows
    rng = np.random.default_rng(9)
    v = rng.integers(0, 3, size=(300, 1))
    codes = np.concatenate([v + 0.1 * rng.normal(size=(300, 1)), 0.3 + eps * rng.integers(0, 3, size=(300, 1))], axis=1)
    assert 0.5 < mig(codes, v) <= 1.0


def test_mig_of_the_factors_is_capped_by_the_discretisation(factors):
    # With 20 bins the 40 orientations and 32 positions share bins: the score of the factors
    # themselves is the mean of H(binned v_k) / H(v_k), computed here for uniform factors.
    def resolved_share(k: int) -> float:
        values = np.arange(k)
        bins = bins_by_hand(values.astype(float), 20) if k > 1 else values
        p = np.bincount(bins) / k
        p = p[p > 0]
        return float(-(p * np.log(p)).sum() / math.log(k))

    ceiling = np.mean([resolved_share(k) for k in FACTOR_SIZES])
    assert ceiling == pytest.approx((1 + 1 + math.log(20) / math.log(40) + 2 * 0.8499) / 5, abs=1e-3)
    assert mig(factors.astype(float), factors) == pytest.approx(ceiling, abs=0.02)


# -- disentanglement_lib-style sanity tests ------------------------------------------------------
def test_the_factors_themselves_score_high(factors):
    assert mig(factors.astype(float), factors, num_bins=40) >= 0.9  # bins that resolve every factor
    assert factorvae_score(identity, IdentityData(), num_train=1000, num_eval=500, num_variance_estimate=2000) >= 0.9
    assert dci(factors.astype(float), factors)["disentanglement"] >= 0.9
    assert betavae_score(identity, IdentityData(), num_train=500, num_eval=300) >= 0.9


def test_a_constant_representation_scores_low(factors):
    codes = np.zeros((len(factors), 5))
    assert mig(codes, factors) <= 0.2
    assert factorvae_score(constant, IdentityData(), num_train=300, num_eval=200, num_variance_estimate=500) <= 0.2
    assert dci(codes, factors)["disentanglement"] <= 0.2
    assert sap(codes, factors) == 0.0
    assert betavae_score(constant, IdentityData(), num_train=300, num_eval=300) <= 0.3  # chance is 1/5


def test_duplicating_a_latent_lowers_mig(factors):
    codes = factors.astype(float)
    duplicated = np.concatenate([codes, codes[:, 1:2]], axis=1)
    assert mig(duplicated, factors) <= mig(codes, factors) - 0.15  # the scale factor's gap is gone: −1/5


def test_a_rotation_lowers_mig_but_not_dci_informativeness(factors):
    rng = np.random.default_rng(2)
    rotation, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    standardised = (factors - factors.mean(axis=0)) / factors.std(axis=0)
    rotated = standardised @ rotation
    assert mig(rotated, factors) <= mig(standardised, factors) - 0.5
    plain, turned = dci(standardised, factors), dci(rotated, factors)
    assert turned["disentanglement"] <= plain["disentanglement"] - 0.5
    assert turned["informativeness"] >= plain["informativeness"] - 0.05  # the lasso penalty shrinks a little
    exact = [dci(z, factors, alpha=1e-6)["informativeness"] for z in (standardised, rotated)]
    assert exact[1] == pytest.approx(exact[0], abs=1e-4)  # least squares: invariant under rotations


# -- DCI and SAP against their formulas ----------------------------------------------------------
def test_dci_scores_follow_the_entropy_formulas():
    rng = np.random.default_rng(3)
    r = rng.random((4, 3)) * (rng.random((4, 3)) > 0.3)
    codes, factors_ = r.shape
    total = r.sum()
    d = sum(r[j].sum() / total * (1 + sum(p * math.log(p, factors_) for p in r[j] / r[j].sum() if p > 0))
            for j in range(codes) if r[j].sum() > 0)
    c = sum(r[:, k].sum() / total * (1 + sum(p * math.log(p, codes) for p in r[:, k] / r[:, k].sum() if p > 0))
            for k in range(factors_) if r[:, k].sum() > 0)
    assert dci_from_importance(r) == pytest.approx((d, c), rel=1e-10)
    assert dci_from_importance(np.eye(3)) == pytest.approx((1.0, 1.0))
    assert dci_from_importance(np.ones((3, 3))) == pytest.approx((0.0, 0.0), abs=1e-12)
    assert dci_from_importance(np.zeros((3, 3))) == (0.0, 0.0)


def test_dci_with_gradient_boosted_trees_finds_the_informative_codes():
    rng = np.random.default_rng(4)
    v = np.stack([rng.integers(0, 3, 400), rng.integers(0, 2, 400)], axis=1)
    z = np.stack([v[:, 1] + 0.1 * rng.normal(size=400), rng.normal(size=400), v[:, 0] + 0.1 * rng.normal(size=400)], axis=1)
    result = dci(z, v, predictor="gbt")
    assert result["informativeness"] == 1.0 and result["disentanglement"] > 0.9 and result["completeness"] > 0.9
    assert np.argmax(result["importance"], axis=0).tolist() == [2, 0]


def test_sap_for_continuous_factors_is_the_gap_in_squared_correlation():
    rng = np.random.default_rng(5)
    v = rng.normal(size=(500, 2))
    z = np.stack([v[:, 0] + 0.5 * rng.normal(size=500), v[:, 0] + v[:, 1], rng.normal(size=500)], axis=1)
    r2 = np.array([[np.corrcoef(z[:, j], v[:, k])[0, 1] ** 2 for k in range(2)] for j in range(3)])
    top = np.sort(r2, axis=0)
    assert sap(z, v, continuous=True) == pytest.approx(np.mean(top[-1] - top[-2]), rel=1e-10)


def test_sap_for_discrete_factors_is_the_gap_in_accuracy():
    rng = np.random.default_rng(6)
    v = rng.integers(0, 2, size=(3000, 1))
    z = np.concatenate([v + 0.1 * rng.normal(size=(3000, 1)), rng.normal(size=(3000, 1))], axis=1)
    assert sap(z, v) == pytest.approx(0.5, abs=0.05)  # 1.0 against chance for a balanced binary factor
    assert sap(np.concatenate([z[:, :1], z[:, :1]], axis=1), v) == pytest.approx(0.0, abs=1e-12)


# -- on the sprites ------------------------------------------------------------------------------
def centroids(images: torch.Tensor) -> torch.Tensor:
    """A hand-made representation: the centroid (column, row) of the lit pixels."""
    size = images.shape[-1]
    grid = torch.arange(size, dtype=torch.float32)
    mass = images.sum(dim=(1, 2, 3))
    return torch.stack([(images.sum(dim=(1, 2)) * grid).sum(-1) / mass, (images.sum(dim=(1, 3)) * grid).sum(-1) / mass], 1)


def test_rendered_positions_are_what_the_metrics_see():
    codes, factors_ = sample_codes(centroids, Sprites(16), 2000, seed=0)
    info = mutual_information_matrix(histogram_discretize(codes), factors_)
    assert info[0, 3] > 5 * info[1, 3] and info[1, 4] > 5 * info[0, 4]  # column ↔ position_x, row ↔ position_y
    assert info[:, :3].max() < 0.2 * min(info[0, 3], info[1, 4])


def test_all_scores_of_a_model_on_the_sprites():
    torch.manual_seed(0)
    model = vaekit.create("vae", input_shape=(1, 16, 16), latent_dim=3, arch="mlp", hidden_dims=(32,))
    scores = disentanglement_scores(model, Sprites(16), num_codes=600, num_test_codes=300, num_train=40, num_eval=40,
                                    num_variance_estimate=300)
    assert list(scores) == ["betavae_score", "factorvae_score", "mig", "sap", "dci_disentanglement", "dci_completeness",
                            "dci_informativeness"]
    assert all(math.isfinite(v) for v in scores.values()) and all(0 <= scores[k] <= 1 for k in list(scores)[:-1])


def test_bad_arguments_are_refused():
    with pytest.raises(DataError, match="discrete indices"):
        mig(np.zeros((10, 2)), np.full((10, 1), 0.5))
    with pytest.raises(DataError, match="rows"):
        mig(np.zeros((10, 2)), np.zeros((9, 1), dtype=int))
    with pytest.raises(ConfigError, match="predictor"):
        dci(np.zeros((10, 2)), np.zeros((10, 1), dtype=int), predictor="forest")
    with pytest.raises(ConfigError, match="num_train"):
        betavae_score(identity, IdentityData(), num_train=0)
    with pytest.raises(ConfigError, match="sample_factors"):
        factorvae_score(identity, object())


def test_the_factorvae_score_refuses_a_variance_estimate_from_one_image():
    """One image has no variance (ddof = 1 gives NaN): refused, where it used to prune every code and score 0."""
    with pytest.raises(ConfigError, match="num_variance_estimate"):
        factorvae_score(identity, IdentityData(), num_train=5, num_eval=5, num_variance_estimate=1)
    assert factorvae_score(identity, IdentityData(), num_train=20, num_eval=20, num_variance_estimate=2) >= 0.0


def test_the_disentanglement_command(tmp_path, capsys, monkeypatch):
    import vaekit.eval.disentanglement as module

    def saved_run(name: str, data: str, input_shape: tuple) -> str:
        torch.manual_seed(0)
        folder = tmp_path / name
        vaekit.create("vae", input_shape=input_shape, latent_dim=3, arch="mlp", hidden_dims=(16,)).save(str(folder))
        (folder / "train.yaml").write_text(f"model: vae\ndata: '{data}'\n")  # what `vaekit train` records
        return str(folder)

    monkeypatch.setattr(module, "QUICK_SAMPLE_SIZES", {"num_codes": 300, "num_test_codes": 150, "num_train": 20,
                                                        "num_eval": 20, "num_variance_estimate": 200})
    run = saved_run("vae", "sprites:16:300", (1, 16, 16))
    assert main(["disentanglement", run, "--quick", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert json.loads((tmp_path / "vae" / "disentanglement.json").read_text()) == result  # for `vaekit report`
    assert {"mig", "sap", "dci_disentanglement", "betavae_score", "factorvae_score"} <= set(result) and result["quick"]
    assert result["data"] == "sprites:16:300" and result["sample_sizes"]["num_codes"] == 300
    assert main(["disentanglement", saved_run("digits", "digits", (1, 8, 8)), "--quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "trained on digits" in err and "--data sprites" in err
    assert main(["disentanglement", str(tmp_path / "missing")]) == 2
    assert "no run folder" in capsys.readouterr().err
