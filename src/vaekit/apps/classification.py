"""Classification from latent features: k-nearest neighbours on a model's codes (survey §1.5)."""

from __future__ import annotations

from typing import Any

import numpy as np

from vaekit.apps._inputs import Estimator, as_examples, as_labels, batched, check_model, check_positive_int, flat_array
from vaekit.errors import ConfigError

__all__ = ["LatentClassifier", "compare_latent_classification"]


class LatentClassifier(Estimator):
    r"""k-nearest-neighbour classifier (scikit-learn) on a trained model's latent codes.

    The features of x are ``model.transform(x)``: the code of a deterministic autoencoder,
    the posterior mean E_q[z|x] of a VAE. ``fit`` stores the codes of labelled examples;
    ``predict`` takes the majority label of the k nearest codes (Euclidean distance).

    Arguments:
        model: a trained, unconditional vaekit model.
        k: number of neighbours.
        weights: "uniform" or "distance" (scikit-learn's vote weighting).
        batch_size: examples encoded at once.

    Fitted attributes: ``classifier_`` (the ``KNeighborsClassifier``), ``classes_``.

    Example:
        >>> clf = LatentClassifier(model, k=5).fit(x_train, y_train)  # doctest: +SKIP
        >>> clf.score(x_test, y_test)   # accuracy  # doctest: +SKIP
        0.83
    """

    def __init__(self, model: Any, k: int = 5, weights: str = "uniform", batch_size: int = 500):
        self.model = model
        self.k = k
        self.weights = weights
        self.batch_size = batch_size

    def transform(self, X: Any) -> np.ndarray:
        """The latent codes of ``X``, shape (N, D)."""
        check_model(self.model, "LatentClassifier")
        check_positive_int(self.batch_size, "batch_size")
        x = as_examples(X, self.model)
        return batched(self.model, self.model.transform, x, self.batch_size).double().numpy()

    def fit(self, X: Any, y: Any = None) -> "LatentClassifier":
        """Store the codes of ``X`` with their labels ``y`` (or a labelled Dataset as ``X``)."""
        from sklearn.neighbors import KNeighborsClassifier

        k = check_positive_int(self.k, "k")
        if self.weights not in ("uniform", "distance"):
            raise ConfigError(f"weights must be 'uniform' or 'distance', got {self.weights!r}")
        codes = self.transform(X)
        labels = as_labels(y, X, codes.shape[0])
        if k > codes.shape[0]:
            raise ConfigError(f"k={k} exceeds the {codes.shape[0]} training examples")
        self.classifier_ = KNeighborsClassifier(n_neighbors=k, weights=self.weights).fit(codes, labels)
        self.classes_ = self.classifier_.classes_
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "classifier_"):
            raise ConfigError("this LatentClassifier is not fitted yet: call fit(X, y) first")

    def predict(self, X: Any) -> np.ndarray:
        """The predicted label of each example."""
        self._check_fitted()
        return self.classifier_.predict(self.transform(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Neighbour vote shares, shape (N, number of classes), columns ordered as ``classes_``."""
        self._check_fitted()
        return self.classifier_.predict_proba(self.transform(X))

    def score(self, X: Any, y: Any = None) -> float:
        """Accuracy on labelled data."""
        self._check_fitted()
        predicted = self.predict(X)
        return float((predicted == as_labels(y, X, len(predicted))).mean())


def compare_latent_classification(
    model: Any, x_train: Any, y_train: Any, x_test: Any, y_test: Any, k: int = 5, batch_size: int = 500,
) -> dict[str, Any]:
    """Test accuracy of k-NN on the model's codes, on raw inputs, and on PCA codes of the same size.

    PCA is fitted on ``x_train`` with D = the model's latent size components (fewer when the
    data have fewer features or examples: ``pca_components``). Returns ``{"k", "latent_dim",
    "pca_components", "accuracy": {"latent": …, "raw": …, "pca": …}, "num_train", "num_test"}``.
    """
    from sklearn.decomposition import PCA
    from sklearn.neighbors import KNeighborsClassifier

    clf = LatentClassifier(model, k=k, batch_size=batch_size).fit(x_train, y_train)
    raw_tr, raw_te = flat_array(x_train, np.float32), flat_array(x_test, np.float32)
    y_tr = as_labels(y_train, x_train, len(raw_tr), "y_train")
    y_te = as_labels(y_test, x_test, len(raw_te), "y_test")
    latent = clf.score(x_test, y_te)
    raw = float((KNeighborsClassifier(n_neighbors=k).fit(raw_tr, y_tr).predict(raw_te) == y_te).mean())
    d = model.latent_dim
    pca = PCA(n_components=min(d, *raw_tr.shape), svd_solver="full").fit(raw_tr)
    pca_acc = float((KNeighborsClassifier(n_neighbors=k).fit(pca.transform(raw_tr), y_tr).predict(pca.transform(raw_te)) == y_te).mean())
    return {
        "k": k, "latent_dim": d, "pca_components": int(pca.n_components_), "num_train": len(y_tr), "num_test": len(y_te),
        "accuracy": {"latent": latent, "raw": raw, "pca": pca_acc},
    }
