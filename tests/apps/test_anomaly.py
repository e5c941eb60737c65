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
