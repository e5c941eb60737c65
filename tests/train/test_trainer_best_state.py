"""``vaekit.fit`` hands back the best model on validation with or without a run folder, and checks grad_clip."""

import functools
import math

import numpy as np
import pytest
import torch

import vaekit
import vaekit.train.trainer as trainer
from vaekit.errors import ConfigError

VAL_LOSSES = [3.0, 1.0, 2.0, 5.0]  # best at epoch 2, worse after it


def tiny_model(seed: int = 0):
    torch.manual_seed(seed)
    return vaekit.create("vae", input_shape=(1, 8, 8), latent_dim=3, hidden_dims=(16,), arch="mlp")


@functools.lru_cache(maxsize=1)
def _digits() -> torch.Tensor:
    return vaekit.data.load_digits("train").x


def digits(n: int):
    return _digits()[:n]


def scripted_validation(monkeypatch):
    """Validation losses from VAL_LOSSES, and the weights the model had at each validation."""
    snapshots = []

    def fake_validate(model, val, batch_size):
        snapshots.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return {"loss": VAL_LOSSES[len(snapshots) - 1]}

    monkeypatch.setattr(trainer, "_validate", fake_validate)
    return snapshots


def assert_same_weights(model, state):
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, state[k], rtol=0, atol=0, msg=k)


@pytest.mark.parametrize("with_folder", [False, True], ids=["no_out_dir", "out_dir"])
def test_fit_returns_the_best_epochs_weights(monkeypatch, tmp_path, with_folder):
    snapshots = scripted_validation(monkeypatch)
    model = tiny_model()
    out_dir = tmp_path / "run" if with_folder else None
    result = vaekit.fit(model, digits(64), digits(96)[64:], epochs=4, batch_size=16, lr=1e-2, quiet=True, out_dir=out_dir)
    assert result.best_epoch == 2 and result.best_val_loss == 1.0 and len(snapshots) == 4
    assert not all(torch.equal(snapshots[1][k], snapshots[3][k]) for k in snapshots[1])  # training moved on
    assert result.model is model
    assert_same_weights(model, snapshots[1])


def test_without_a_folder_the_result_is_the_folders_best_model(tmp_path):
    """Real training that overfits 8 examples: both paths return the same (best) model."""
    x, v = digits(8), digits(216)[16:]
    returned = {}
    for name, out_dir in (("memory", None), ("folder", tmp_path / "run")):
        torch.manual_seed(0)
        model = vaekit.create("vae", input_shape=(1, 8, 8), latent_dim=3, hidden_dims=(64,), arch="mlp")
        result = vaekit.fit(model, x, v, epochs=40, batch_size=8, lr=3e-2, quiet=True, out_dir=out_dir)
        returned[name] = (result, {k: t.clone() for k, t in model.state_dict().items()})
    (memory, memory_state), (folder, folder_state) = returned["memory"], returned["folder"]
    assert memory.best_epoch == folder.best_epoch < 40  # validation got worse after its best epoch
    for k in folder_state:
        torch.testing.assert_close(memory_state[k], folder_state[k], rtol=0, atol=0, msg=k)
    assert_same_weights(vaekit.load(tmp_path / "run"), memory_state)


def test_without_validation_the_last_epoch_is_returned(monkeypatch):
    model = tiny_model()
    seen = []
    original = torch.optim.Adam.step

    def record(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", record)
    vaekit.fit(model, digits(64), epochs=3, batch_size=32, lr=1e-2, quiet=True)
    assert len(seen) == 6
    assert_same_weights(model, seen[-1])


@pytest.mark.parametrize("bad", [-1.0, 0, 0.0, math.nan, math.inf, -math.inf, True, "1.0"])
def test_grad_clip_must_be_a_positive_finite_number(tmp_path, bad):
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ConfigError, match=r"grad_clip must be a finite number > 0.*None.*got") as error:
        vaekit.fit(model, digits(32), epochs=1, batch_size=16, quiet=True, out_dir=tmp_path / "run", grad_clip=bad)
    assert repr(bad) in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "run").exists()  # refused before anything is written
    assert_same_weights(model, before)  # and before any step


@pytest.mark.parametrize("clip", [0.5, 2, np.float32(1.5), None])
def test_a_valid_grad_clip_reaches_the_clipping(monkeypatch, clip):
    calls = []
    original = torch.nn.utils.clip_grad_norm_

    def record(parameters, max_norm, *args, **kwargs):
        parameters = list(parameters)
        norm = original(parameters, max_norm, *args, **kwargs)
        calls.append((max_norm, float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in parameters])))))
        return norm

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", record)
    result = vaekit.fit(tiny_model(), digits(32), epochs=1, batch_size=16, quiet=True, grad_clip=clip)
    assert math.isfinite(result.history[0]["train/loss"])
    if clip is None:
        assert calls == []
    else:
        assert [c[0] for c in calls] == [clip, clip]
        assert all(norm <= clip * (1 + 1e-5) for _, norm in calls)


def test_without_validation_the_last_epoch_is_the_model_in_memory_and_on_disk(tmp_path):
    """No validation data, nothing to select on: the saved model is the last epoch, like the returned one
    (it used to be the epoch with the lowest training loss on disk and the last one in memory)."""
    torch.manual_seed(0)
    model = vaekit.create("vae", input_shape=(1, 8, 8), latent_dim=2, arch="mlp", hidden_dims=(8,))
    x = torch.rand(64, 1, 8, 8)
    result = vaekit.fit(model, x, epochs=4, batch_size=16, lr=0.5, quiet=True, out_dir=tmp_path)  # a large lr: the loss jumps about
    assert result.best_epoch == 4
    saved = vaekit.load(tmp_path).state_dict()
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())


def test_a_nan_validation_loss_is_never_the_best_and_any_number_beats_it(monkeypatch):
    """Validation losses NaN, 3, 2, 1 with patience 2: the best epoch is the 4th (1.0), as a NaN compares as never
    better and never worse; it used to stay the best forever, stop the run at epoch 3 and hand back its weights."""
    losses = iter([math.nan, 3.0, 2.0, 1.0])
    monkeypatch.setattr(trainer, "_validate", lambda *args, **kwargs: {"loss": next(losses)})
    x = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    result = vaekit.fit(tiny_model(), x, x[:10], epochs=4, batch_size=10, patience=2, quiet=True)
    assert (result.best_epoch, result.best_val_loss, result.stopped_early) == (4, 1.0, False)
