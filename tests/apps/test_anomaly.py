"""Anomaly detection: scores against independent computations, thresholds, metrics."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

import vaekit
from tests.apps.models import orthonormal, projector
from tests.linear_gaussian import exact_log_marginal, linear_gaussian_model
from vaekit.apps import AnomalyDetector, anomaly_scores, detection_metrics
from vaekit.errors import ConfigError, DataError


def _subspace_data(q, n_normal=200, n_anomalous=50, seed=0):
    """Normal points in span(Q); anomalies with an added component orthogonal to it."""
    g = torch.Generator().manual_seed(seed)
    m, d = q.shape
    normal = torch.randn(n_normal, d, generator=g) @ q.T
    off = torch.randn(n_anomalous, m, generator=g)
    off = off - off @ q @ q.T  # orthogonal part only
    anomalous = torch.randn(n_anomalous, d, generator=g) @ q.T + off
    return normal, anomalous, off


def test_auroc_and_average_precision_of_a_perfect_score_are_one():
    labels = np.array([0, 0, 1, 0, 1, 1, 0])
    result = detection_metrics(labels, labels * 10.0 + np.arange(7) * 0.01, threshold=5.0)
    assert result["auroc"] == 1.0 and result["average_precision"] == 1.0
    assert result["confusion"] == {"true_negatives": 4, "false_positives": 0, "false_negatives": 0, "true_positives": 3}
    inverted = detection_metrics(labels, -labels * 1.0, threshold=0.0)
    assert inverted["auroc"] == 0.0


def test_reconstruction_scores_separate_off_subspace_points_perfectly():
    q = orthonormal(8, 3)
    model = projector(q)
    normal, anomalous, off = _subspace_data(q)
    detector = AnomalyDetector(model).fit(normal[:100])
    x = torch.cat([normal[100:], anomalous])
    y = np.r_[np.zeros(100), np.ones(50)]
    scores = detector.score(x)
    expected = np.r_[np.zeros(100), (off**2).mean(1).double().numpy()]  # ‖(I − QQᵀ)x‖² / M
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)
    report = detector.evaluate(x, y)
    assert report["auroc"] == 1.0 and report["average_precision"] == 1.0
    assert report["confusion"]["true_positives"] == 50


def test_threshold_is_the_quantile_of_normal_scores_and_predict_uses_it():
    torch.manual_seed(0)
    model = vaekit.create("ae", input_shape=(6,), latent_dim=2, hidden_dims=(5,), likelihood="gaussian")
    normal, test = torch.randn(300, 6), torch.randn(100, 6) * 2
    detector = AnomalyDetector(model, quantile=0.9).fit(normal)
    train_scores = ((normal - model.reconstruct(normal)) ** 2).mean(1).double().numpy()
    np.testing.assert_allclose(detector.train_scores_, train_scores, rtol=1e-6)
    assert detector.threshold_ == pytest.approx(np.quantile(train_scores, 0.9))
    assert np.mean(detector.train_scores_ > detector.threshold_) == pytest.approx(0.1, abs=0.01)
    test_scores = detector.score(test)
    np.testing.assert_array_equal(detector.predict(test), (test_scores > detector.threshold_).astype(int))
    np.testing.assert_allclose(detector.decision_function(test), test_scores - detector.threshold_)
    by_rate = AnomalyDetector(model, false_positive_rate=0.1).fit(normal)
    assert by_rate.threshold_ == pytest.approx(detector.threshold_)
    labels = np.r_[np.zeros(50), np.ones(50)]
    report = detector.evaluate(test, labels)
    assert report["auroc"] == pytest.approx(roc_auc_score(labels, test_scores))
    c = report["confusion"]
    predicted = test_scores > detector.threshold_
    assert c["false_positives"] == int(predicted[:50].sum()) and c["true_positives"] == int(predicted[50:].sum())


@pytest.mark.parametrize("score", ["elbo", "log_likelihood"])
def test_variational_scores_are_minus_log_p_for_an_exact_posterior(score):
    # With q(z|x) = p(z|x) every importance weight equals p(x): −ELBO = −log p(x) exactly.
    model, W, b, sigma = linear_gaussian_model(m=5, d=2, sigma=0.5)
    x = torch.randn(20, 5) * 2 + b
    scores = anomaly_scores(model.eval(), x, score, num_samples=7)
    np.testing.assert_allclose(scores, -exact_log_marginal(x, W, b, sigma).double().numpy(), rtol=1e-4, atol=1e-4)


def test_sampled_scores_are_reproducible_and_need_a_prior():
    torch.manual_seed(0)
    vae = vaekit.create("vae", input_shape=(6,), latent_dim=2, hidden_dims=(5,), likelihood="gaussian")
    x = torch.randn(10, 6)
    detector = AnomalyDetector(vae, score="elbo", seed=3).fit(x)
    np.testing.assert_array_equal(detector.score(x), detector.score(x))
    ae = vaekit.create("ae", input_shape=(6,), latent_dim=2, hidden_dims=(5,))
    with pytest.raises(ConfigError, match="needs a model with a likelihood bound.*reconstruction"):
        AnomalyDetector(ae, score="elbo").fit(x)


def test_bad_arguments_are_named():
    model = vaekit.create("ae", input_shape=(6,), latent_dim=2, hidden_dims=(5,))
    x = torch.rand(10, 6)
    with pytest.raises(ConfigError, match="unknown score"):
        AnomalyDetector(model, score="likelihood").fit(x)
    with pytest.raises(ConfigError, match="not both"):
        AnomalyDetector(model, quantile=0.9, false_positive_rate=0.1).fit(x)
    with pytest.raises(ConfigError, match="quantile"):
        AnomalyDetector(model, quantile=1.5).fit(x)
    with pytest.raises(ConfigError, match="not fitted"):
        AnomalyDetector(model).predict(x)
    with pytest.raises(DataError, match="X has shape"):
        AnomalyDetector(model).fit(torch.rand(10, 5))
    with pytest.raises(DataError, match="both normal"):
        AnomalyDetector(model).fit(x).evaluate(x, np.zeros(10))
    with pytest.raises(DataError, match="one label per example"):
        AnomalyDetector(model).fit(x).evaluate(x, np.zeros(9))
    conditional = vaekit.create("conditional_vae", input_shape=(6,), latent_dim=2, hidden_dims=(5,), num_classes=3)
    with pytest.raises(ConfigError, match="conditional"):
        AnomalyDetector(conditional).fit(x)


def test_the_detector_clones_and_sets_params_as_a_scikit_learn_estimator():
    """get_params / set_params / sklearn.base.clone against the constructor's arguments (score is a method too)."""
    from sklearn.base import clone

    model = projector(orthonormal(6, 2))
    detector = AnomalyDetector(model, score="elbo", quantile=0.9, num_samples=3, seed=4)
    params = detector.get_params()
    assert params == {"model": model, "score": "elbo", "quantile": 0.9, "false_positive_rate": None, "num_samples": 3, "batch_size": 500, "seed": 4}
    copy = clone(detector)
    assert copy.get_params(deep=False).keys() == params.keys() and copy.score_kind == "elbo" and copy.quantile == 0.9
    assert not hasattr(copy, "threshold_")
    detector.set_params(score="reconstruction", quantile=0.8)
    x = torch.randn(20, 6)
    detector.fit(x)  # score is still the method
    assert detector.score_kind == "reconstruction" and detector.threshold_ == pytest.approx(np.quantile(detector.score(x), 0.8))
    with pytest.raises(ConfigError, match="no parameter 'scor'.*quantile"):
        detector.set_params(scor="elbo")


def test_detection_metrics_take_tensors_and_lists_and_agree_with_scikit_learn():
    """AUROC from tensors and lists against sklearn.metrics.roc_auc_score on numpy arrays."""
    labels, scores = [0, 1, 0, 1, 1], [0.1, 0.7, 0.4, 0.3, 0.9]
    expected = roc_auc_score(np.array(labels), np.array(scores))
    assert detection_metrics(labels, scores, 0.5)["auroc"] == pytest.approx(expected)
    result = detection_metrics(torch.tensor(labels), torch.tensor(scores), 0.5)
    assert result["auroc"] == pytest.approx(expected) and result["confusion"]["true_positives"] == 2
    with pytest.raises(DataError, match="one of each per example"):
        detection_metrics(labels, scores[:4], 0.5)


def test_labels_other_than_0_and_1_are_refused_not_truncated():
    """0.5 used to be cast to 0 (normal) silently and 'normal' failed inside int(): both are named DataErrors now."""
    scores = np.array([0.1, 0.2, 0.9, 0.8])
    with pytest.raises(DataError, match="0 \\(normal\\) or 1 \\(anomalous\\)"):
        detection_metrics([0, 0.5, 1, 1], scores, 0.5)
    with pytest.raises(DataError, match="0 \\(normal\\) or 1 \\(anomalous\\)"):
        detection_metrics(["normal", "normal", "anomalous", "anomalous"], scores, 0.5)
    assert detection_metrics([False, False, True, True], scores, 0.5)["auroc"] == 1.0


def test_anomaly_scores_take_numpy_arrays_and_name_bad_settings():
    """Scores of a numpy array equal those of the tensor; batch_size 0 and a string quantile are ConfigErrors."""
    model = projector(orthonormal(6, 2))
    x = torch.randn(12, 6)
    np.testing.assert_array_equal(anomaly_scores(model, x.numpy()), anomaly_scores(model, x))
    with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
        anomaly_scores(model, x, batch_size=0)
    with pytest.raises(ConfigError, match="quantile must be a number"):
        AnomalyDetector(model, quantile="0.9").fit(x)
