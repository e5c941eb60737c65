"""k-NN on latent codes, against scikit-learn on the same codes."""

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.neighbors import KNeighborsClassifier

import vaekit
from tests.apps.models import orthonormal, projector
from vaekit.apps import LatentClassifier, compare_latent_classification
from vaekit.data import Dataset
from vaekit.errors import ConfigError, DataError


def _blobs(n, m=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    centres = torch.randn(3, m, generator=g) * 3
    return centres[y] + torch.randn(n, m, generator=g), y


def test_latent_knn_is_knn_on_the_codes():
    model = projector(orthonormal(6, 2))
    x, y = _blobs(90)
    xt, yt = _blobs(60, seed=1)
    clf = LatentClassifier(model, k=3).fit(x, y)
    codes, codes_t = model.transform(x).double().numpy(), model.transform(xt).double().numpy()
    np.testing.assert_allclose(clf.transform(xt), codes_t, rtol=1e-6)
    reference = KNeighborsClassifier(n_neighbors=3).fit(codes, y.numpy())
    np.testing.assert_array_equal(clf.predict(xt), reference.predict(codes_t))
    np.testing.assert_allclose(clf.predict_proba(xt), reference.predict_proba(codes_t))
    assert clf.score(xt, yt) == pytest.approx(float((reference.predict(codes_t) == yt.numpy()).mean()))
    assert list(clf.classes_) == [0, 1, 2]
    assert LatentClassifier(model, k=3).fit(Dataset(x, y)).score(Dataset(xt, yt)) == clf.score(xt, yt)


def test_comparison_reports_raw_and_pca_baselines():
    model = projector(orthonormal(6, 2))
    x, y = _blobs(90)
    xt, yt = _blobs(60, seed=1)
    report = compare_latent_classification(model, x, y, xt, yt, k=5)
    raw = (KNeighborsClassifier(n_neighbors=5).fit(x.numpy(), y.numpy()).predict(xt.numpy()) == yt.numpy()).mean()
    pca = PCA(2).fit(x.numpy())
    pca_acc = (KNeighborsClassifier(n_neighbors=5).fit(pca.transform(x.numpy()), y.numpy()).predict(pca.transform(xt.numpy())) == yt.numpy()).mean()
    assert report["accuracy"]["raw"] == pytest.approx(raw) and report["accuracy"]["pca"] == pytest.approx(pca_acc)
    assert report["latent_dim"] == 2 and report["num_train"] == 90 and report["num_test"] == 60


def test_bad_input_is_named():
    model = projector(orthonormal(6, 2))
    x, y = _blobs(10)
    with pytest.raises(DataError, match="y is missing"):
        LatentClassifier(model).fit(x)
    with pytest.raises(ConfigError, match="k=20 exceeds"):
        LatentClassifier(model, k=20).fit(x, y)
    with pytest.raises(ConfigError, match="k must be a positive integer"):
        LatentClassifier(model, k=0).fit(x, y)
    with pytest.raises(ConfigError, match="not fitted"):
        LatentClassifier(model).predict(x)
    with pytest.raises(DataError, match="X has shape"):
        LatentClassifier(model).fit(torch.rand(10, 5), y)
    with pytest.raises(ConfigError, match="vaekit model"):
        LatentClassifier(object()).fit(x, y)
    conditional = vaekit.create("conditional_vae", input_shape=(6,), latent_dim=2, hidden_dims=(5,), num_classes=3)
    with pytest.raises(ConfigError, match="conditional"):
        LatentClassifier(conditional).fit(x, y)


def test_the_classifier_clones_and_cross_validates_as_a_scikit_learn_estimator():
    """clone keeps the arguments; cross_val_score's fold accuracies equal fits on the folds by hand."""
    from sklearn.base import clone
    from sklearn.model_selection import KFold, cross_val_score

    model = projector(orthonormal(6, 2))
    x, y = _blobs(30)
    clf = LatentClassifier(model, k=3, weights="distance")
    assert {k: v for k, v in clone(clf).get_params().items() if k != "model"} == {"k": 3, "weights": "distance", "batch_size": 500}
    folds = KFold(3)
    by_hand = [LatentClassifier(model, k=3, weights="distance").fit(x[tr], y[tr]).score(x[te], y[te]) for tr, te in folds.split(x)]
    np.testing.assert_allclose(cross_val_score(clf, x.numpy(), y.numpy(), cv=folds), by_hand)
    assert clf.set_params(k=1) is clf and clf.k == 1
