"""Training options of the VampPrior recipe: KL warm-up by epochs, patience that skips warm-up, unit-norm gradients."""

import pytest
import torch

import vaekit
import vaekit.train.trainer as trainer
from vaekit.errors import ConfigError
from vaekit.train.trainer import normalize_gradients


def _model(name="vae", **options):
    torch.manual_seed(0)
    return vaekit.create(name, input_shape=(4,), latent_dim=2, arch="mlp", hidden_dims=(8,), **options)


X = torch.rand(40, 4).bernoulli()


def test_kl_weight_rises_over_the_given_epochs():
    model = _model()
    seen = []
    kl_weight = model.objective.kl_weight
    model.objective.kl_weight = lambda step: seen.append((step, kl_weight(step))) or seen[-1][1]
    vaekit.fit(model, X, epochs=3, batch_size=10, warmup_epochs=2, quiet=True)  # 4 steps per epoch: 8 warm-up steps
    assert model.objective.warmup_steps == 8
    assert seen == [(t, min(1.0, t / 8)) for t in range(12)]


def _stop_epoch(monkeypatch, model, **fit_options) -> int:
    """Epochs trained when the validation loss only gets worse after epoch 1."""
    losses = iter(float(i) for i in range(1, 100))
    monkeypatch.setattr(trainer, "_validate", lambda *args, **kwargs: {"loss": next(losses)})
    result = vaekit.fit(model, X, X[:10], epochs=20, batch_size=10, quiet=True, **fit_options)
    assert result.stopped_early and result.best_epoch == 1
    return len(result.history)


def test_patience_does_not_count_warmup_epochs(monkeypatch):
    assert _stop_epoch(monkeypatch, _model(), patience=2) == 3
    assert _stop_epoch(monkeypatch, _model(), patience=2, warmup_epochs=3) == 5
    # a warm-up given in steps counts in epochs too: 8 steps of 4 per epoch are 2 epochs
    assert _stop_epoch(monkeypatch, _model(warmup_steps=8), patience=2) == 4
    assert _stop_epoch(monkeypatch, _model(warmup_steps=9), patience=2) == 5


def test_warmup_epochs_is_refused_where_it_cannot_apply(tmp_path):
    with pytest.raises(ConfigError, match="both set the KL warm-up"):
        vaekit.fit(_model(warmup_steps=5), X, epochs=1, warmup_epochs=2, quiet=True, out_dir=tmp_path / "a")
    with pytest.raises(ConfigError, match="no KL weight"):
        vaekit.fit(_model("ae"), X, epochs=1, warmup_epochs=2, quiet=True, out_dir=tmp_path / "b")
    with pytest.raises(ConfigError, match="warmup_epochs must be"):
        vaekit.fit(_model(), X, epochs=1, warmup_epochs=-1, quiet=True)
    with pytest.raises(ConfigError, match="grad_norm"):
        vaekit.fit(_model(), X, epochs=1, grad_norm="l2", quiet=True)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_unit_gradient_norm_scales_each_tensor_and_trains():
    model = _model()
    model.loss(X)["loss"].backward()
    raw = [p.grad.clone() for p in model.parameters()]
    normalize_gradients(list(model.parameters()))
    for p, g in zip(model.parameters(), raw):
        torch.testing.assert_close(p.grad, g / (torch.linalg.vector_norm(g) + 1e-7))
    with torch.no_grad():
        before = float(model.loss(X)["elbo"])
    vaekit.fit(model, X, epochs=5, batch_size=10, grad_norm="unit", lr=1e-2, quiet=True)
    with torch.no_grad():
        assert float(model.loss(X)["elbo"]) > before
