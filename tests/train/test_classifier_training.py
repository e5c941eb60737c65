"""Training the feature classifier: it learns, it is reproducible to the bit, it keeps the best epoch, it checks its data."""

import json

import pytest
import torch

import vaekit
from vaekit.errors import ConfigError, DataError
from vaekit.models import classifier_sha256
from vaekit.train.classifier import classifier_accuracy, train_classifier

TINY = dict(arch="mlp", hidden_dims=(32,), batch_size=32, lr=3e-3, quiet=True)


@pytest.fixture(scope="module")
def digits():
    return vaekit.data.load_digits("train"), vaekit.data.load_digits("test")


def test_it_learns_the_digits_and_saves_what_it_returns(digits, tmp_path):
    train, test = digits
    clf, history = train_classifier((train.x, train.y), (test.x, test.y), epochs=6, out_dir=tmp_path, **TINY)
    assert classifier_accuracy(clf, test.x, test.y) > 0.85  # chance is 0.1
    assert [r["epoch"] for r in history] == list(range(1, 7)) and history[-1]["train/loss"] < history[0]["train/loss"]
    # the model handed back is the best epoch on validation, and that is what was saved
    best = max(r["val/accuracy"] for r in history)
    assert classifier_accuracy(clf, test.x, test.y) == pytest.approx(best, abs=1e-12)
    loaded = vaekit.load_classifier(tmp_path)
    assert classifier_sha256(loaded) == classifier_sha256(clf)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == list(range(1, 7))


def test_validation_loss_is_the_cross_entropy(digits):
    train, test = digits
    clf, history = train_classifier((train.x[:300], train.y[:300]), (test.x, test.y), epochs=1, **TINY)
    with torch.no_grad():
        logits = clf(test.x).double()
    log_p = logits - logits.exp().sum(1, keepdim=True).log()  # log softmax by hand
    nll = -log_p[torch.arange(len(test)), test.y].mean()
    assert history[0]["val/loss"] == pytest.approx(float(nll), rel=1e-5)
    assert history[0]["val/accuracy"] == pytest.approx(float((logits.argmax(1) == test.y).double().mean()))


def test_the_same_seed_gives_the_same_weights_and_sha256(digits):
    train, _ = digits
    data = (train.x[:256], train.y[:256])
    conv = dict(channels=(2, 4), hidden_dims=(8,), batch_size=64, quiet=True)
    a, _ = train_classifier(data, epochs=2, seed=3, **conv)
    b, _ = train_classifier(data, epochs=2, seed=3, **conv)
    c, _ = train_classifier(data, epochs=2, seed=4, **conv)
    assert a.arch == "conv"
    assert classifier_sha256(a) == classifier_sha256(b) != classifier_sha256(c)


def test_bad_data_is_refused_before_anything_is_written(digits, tmp_path):
    train, _ = digits
    out = tmp_path / "clf"
    with pytest.raises(DataError, match="needs integer class labels"):
        train_classifier(train.x, epochs=1, out_dir=out, **TINY)
    with pytest.raises(DataError, match="needs integer class labels"):
        train_classifier((train.x, train.y.float()), epochs=1, out_dir=out, **TINY)
    with pytest.raises(DataError, match="labels go up to 9"):
        train_classifier((train.x, train.y), epochs=1, num_classes=5, out_dir=out, **TINY)
    with pytest.raises(DataError, match="expects"):
        train_classifier((train.x, train.y), (train.x.reshape(-1, 64), train.y), epochs=1, out_dir=out, **TINY)
    with pytest.raises(ConfigError, match="epochs"):
        train_classifier((train.x, train.y), epochs=0, out_dir=out, **TINY)
    assert not out.exists()
