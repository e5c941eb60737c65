"""Anomaly detection with a trained model (survey §1.5): score, threshold, evaluate."""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np
import torch

from vaekit.apps._inputs import Estimator, as_examples, as_labels, batched, check_model, check_positive_int
from vaekit.errors import ConfigError, DataError
from vaekit.eval.likelihood import has_likelihood

__all__ = ["AnomalyDetector", "anomaly_scores", "detection_metrics", "SCORES"]

SCORES = ("reconstruction", "elbo", "log_likelihood")
"""Anomaly scores; higher always means more anomalous."""

DEFAULT_SAMPLES = {"reconstruction": 1, "elbo": 10, "log_likelihood": 100}


def anomaly_scores(
    model: Any, X: Any, score: str = "reconstruction", num_samples: int | None = None,
    batch_size: int = 500, seed: int = 0,
) -> np.ndarray:
    r"""Per-example anomaly scores (higher = more anomalous), shape (N,).

    * ``"reconstruction"``: the mean squared error (1/M) Σ_j (x_j − x̂_j)², x̂ = ``model.reconstruct(x)``
      (the decoder's mean at the code); any model.
    * ``"elbo"``: −ELBO, averaged over ``num_samples`` draws z_k ~ q(z|x):
      −(1/K) Σ_k [log p(x|z_k) + log p(z_k) − log q(z_k|x)] (nats); models with a prior.
    * ``"log_likelihood"``: −log p(x), importance-sampled with K = ``num_samples``
      (:func:`vaekit.log_likelihood`; nats); models with a prior.

    ``X``: a tensor, numpy array or vaekit Dataset of shape (N, *model.input_shape).
    Draws are seeded with ``seed`` (the global RNG state is restored afterwards).
    """
    if score not in SCORES:
        raise ConfigError(f"unknown score {score!r}; choose one of {', '.join(SCORES)}")
    batch_size = check_positive_int(batch_size, "batch_size")
    X = as_examples(X, model)
    k = DEFAULT_SAMPLES[score] if num_samples is None else check_positive_int(num_samples, "num_samples")
    if score != "reconstruction" and not has_likelihood(model):
        raise ConfigError(
            f"score={score!r} needs a model with a likelihood bound (a VAE); {model.config.get('model', 'this model')} "
            "has none (a deterministic or Wasserstein autoencoder): use score='reconstruction'"
        )
    with torch.random.fork_rng(devices=[model.device] if model.device.type == "cuda" else []):
        torch.manual_seed(seed)
        if score == "reconstruction":
            values = batched(model, lambda xb: (xb - model.reconstruct(xb)).pow(2).flatten(1).mean(1), X, batch_size)
        elif score == "elbo":
            from vaekit.objectives import log_importance_weights

            values = batched(model, lambda xb: -log_importance_weights(model, xb, k).mean(0), X, max(1, batch_size // k))
        else:
            from vaekit.eval import log_likelihood

            values = -log_likelihood(model, X, num_samples=k, batch_size=max(1, min(batch_size, 100)))
    values = values.double().numpy()
    if not np.isfinite(values).all():
        raise DataError(f"the {score} score is not finite for {int((~np.isfinite(values)).sum())} example(s)")
    return values


def detection_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """AUROC, average precision and the confusion at ``threshold`` (predicted anomalous: score > threshold).

    ``labels``: 1 = anomalous, 0 = normal (or True / False); both must occur. ``labels`` and
    ``scores``: one per example (numpy arrays, tensors or lists).
    """
    from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score

    labels = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    scores = scores.detach().cpu().double().numpy() if isinstance(scores, torch.Tensor) else np.asarray(scores, dtype=np.float64)
    if labels.dtype.kind not in "biuf" or not np.isin(labels, (0, 1)).all():
        raise DataError("labels must be 0 (normal) or 1 (anomalous)")
    labels = labels.astype(np.int64)
    if labels.ndim != 1 or scores.shape != labels.shape:
        raise DataError(f"labels and scores must be 1-D with one of each per example, got shapes {labels.shape} and {scores.shape}")
    if np.unique(labels).size < 2:
        raise DataError("evaluating a detector needs both normal (0) and anomalous (1) examples")
    predicted = (scores > threshold).astype(np.int64)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(labels, predicted, labels=[0, 1]).ravel())
    return {
        "auroc": float(roc_auc_score(labels, scores)),
        "average_precision": float(average_precision_score(labels, scores)),
        "threshold": float(threshold),
        "confusion": {"true_negatives": tn, "false_positives": fp, "false_negatives": fn, "true_positives": tp},
        "false_positive_rate": fp / (fp + tn),
        "true_positive_rate": tp / (tp + fn),
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "num_normal": tn + fp,
        "num_anomalous": tp + fn,
    }


class AnomalyDetector(Estimator):
    r"""Flags inputs a model trained on normal data explains badly (survey §1.5).

    ``fit(normal_data)`` scores normal examples and sets ``threshold_`` to their
    ``quantile`` (default 0.95), or equivalently to the (1 − ``false_positive_rate``)
    quantile; ``predict`` flags examples whose score exceeds it. Scores (higher = more
    anomalous) are described in :func:`anomaly_scores`: the reconstruction error works with
    every model, the negative ELBO and −log p(x) with VAEs.

    Arguments:
        model: a trained vaekit model (deterministic or variational), unconditional.
        score: "reconstruction", "elbo" or "log_likelihood".
        quantile: quantile of the normal scores used as the threshold, in (0, 1).
        false_positive_rate: target false-positive rate on normal data (threshold at the
            1 − rate quantile); give this or ``quantile``, not both.
        num_samples: Monte-Carlo samples per example for "elbo" (default 10) and
            "log_likelihood" (default 100).
        batch_size: examples scored at once.
        seed: seeds the sampled scores, so repeated calls agree.

    Fitted attributes: ``threshold_``, ``quantile_``, ``train_scores_``.

    References:
        Variational Autoencoder based Anomaly Detection using Reconstruction Probability
        (An & Cho, SNU Data Mining Center, 2015).

    ``get_params`` / ``set_params`` / ``sklearn.base.clone`` work as in scikit-learn
    (the ``score`` argument is kept as the attribute ``score_kind``: ``score`` is a method).

    Example:
        >>> detector = AnomalyDetector(model, score="reconstruction").fit(x_normal)  # doctest: +SKIP
        >>> detector.predict(x_new)        # 1 = anomalous  # doctest: +SKIP
        >>> detector.evaluate(x_test, is_anomaly)["auroc"]  # doctest: +SKIP
    """

    _attributes = {"score": "score_kind"}

    def __init__(
        self, model: Any, score: str = "reconstruction", quantile: float | None = None,
        false_positive_rate: float | None = None, num_samples: int | None = None, batch_size: int = 500, seed: int = 0,
    ):
        self.model = model
        self.score_kind = score
        self.quantile = quantile
        self.false_positive_rate = false_positive_rate
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = seed

    def _check_params(self) -> float:
        check_model(self.model, "AnomalyDetector")
        if self.score_kind not in SCORES:
            raise ConfigError(f"AnomalyDetector: unknown score {self.score_kind!r}; choose one of {', '.join(SCORES)}")
        check_positive_int(self.batch_size, "batch_size")
        if self.quantile is not None and self.false_positive_rate is not None:
            raise ConfigError("AnomalyDetector: give quantile or false_positive_rate, not both")
        if self.false_positive_rate is not None:
            if not isinstance(self.false_positive_rate, Real) or not 0 < self.false_positive_rate < 1:
                raise ConfigError(f"false_positive_rate must be a number in (0, 1), got {self.false_positive_rate!r}")
            return 1.0 - float(self.false_positive_rate)
        q = 0.95 if self.quantile is None else self.quantile
        if not isinstance(q, Real) or not 0 < q < 1:
            raise ConfigError(f"quantile must be a number in (0, 1), got {q!r}")
        return float(q)

    def _check_fitted(self) -> None:
        if not hasattr(self, "threshold_"):
            raise ConfigError("this AnomalyDetector is not fitted yet: call fit(normal_data) first")

    def fit(self, X: Any, y: Any = None) -> "AnomalyDetector":
        """Set ``threshold_`` from the scores of normal examples ``X`` (``y`` is ignored)."""
        self.quantile_ = self._check_params()
        self.train_scores_ = self.score(X, name="X")
        self.threshold_ = float(np.quantile(self.train_scores_, self.quantile_))
        return self

    def score(self, X: Any, name: str = "X") -> np.ndarray:
        """Anomaly score of each example, shape (N,): higher = more anomalous.

        (Unlike scikit-learn's ``score``, which returns one number: see :meth:`evaluate`.)
        """
        self._check_params()
        x = as_examples(X, self.model, name)
        return anomaly_scores(self.model, x, self.score_kind, self.num_samples, self.batch_size, self.seed)

    def decision_function(self, X: Any) -> np.ndarray:
        """score − threshold_: positive for examples flagged as anomalous."""
        self._check_fitted()
        return self.score(X) - self.threshold_

    def predict(self, X: Any) -> np.ndarray:
        """1 for anomalous examples (score > threshold_), 0 for normal ones."""
        return (self.decision_function(X) > 0).astype(np.int64)

    def evaluate(self, X: Any, y: Any = None) -> dict[str, Any]:
        """AUROC, average precision and the confusion at ``threshold_`` on labelled data.

        ``y``: 1 = anomalous, 0 = normal (or a labelled Dataset as ``X``). The result also
        holds the per-example ``scores`` and ``labels`` (numpy arrays) for plots.
        """
        self._check_fitted()
        scores = self.score(X)
        labels = as_labels(y, X, len(scores))
        result = detection_metrics(labels, scores, self.threshold_)
        result.update(score=self.score_kind, quantile=self.quantile_, scores=scores, labels=labels.astype(np.int64))
        return result

    def __repr__(self) -> str:
        return f"AnomalyDetector(score={self.score_kind!r}, quantile={self.quantile!r}, false_positive_rate={self.false_positive_rate!r})"
