"""``fit(ema=β)``: the averaged weights against the recursion written out by hand over the recorded
iterates, what is validated, saved and handed back, resume, bad values, every preset."""

import math

import pytest
import torch
from safetensors.torch import load_file
from torch.optim.optimizer import register_optimizer_step_post_hook

import vaekit
from vaekit.errors import ConfigError
from vaekit.models.registry import available_models
from vaekit.train.averaging import WeightAverage
from vaekit.train.checkpoint import CHECKPOINT_FILE
from vaekit.train.trainer import SCHEDULES_DONE
from tests.interrupted import InterruptAfter

SHAPE = dict(input_shape=(1, 4, 4), latent_dim=2, hidden_dims=(8,), arch="mlp")


def _data(n: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 4, 4, generator=g), torch.rand(32, 1, 4, 4, generator=g)


def _model(name: str = "vae") -> torch.nn.Module:
    torch.manual_seed(0)
    return vaekit.create(name, likelihood="bernoulli", **SHAPE)


def _iterates(**settings) -> list[dict[str, torch.Tensor]]:
    """The weights after every optimiser step of ``fit(**settings)`` without averaging (float64 copies)."""
    model, recorded = _model(), []

    def record(optimizer, args, kwargs):
        recorded.append({k: v.detach().double().clone() for k, v in model.state_dict().items()})

    handle = register_optimizer_step_post_hook(record)
    try:
        vaekit.fit(model, **settings)
    finally:
        handle.remove()
    return recorded


@pytest.mark.parametrize("decay", [0.5, 0.9])
def test_the_model_handed_back_is_the_moving_average_of_the_iterates(decay):
    x, _ = _data()
    settings = dict(train=x, epochs=3, batch_size=16, lr=0.02, quiet=True, seed=4)
    iterates = _iterates(**settings)
    assert len(iterates) == 3 * 6
    expected = {k: v.double() for k, v in _model().state_dict().items()}  # θ̄₀ = θ₀, the weights before the first step
    for theta in iterates:
        expected = {k: decay * expected[k] + (1 - decay) * theta[k] for k in expected}
    result = vaekit.fit(_model(), ema=decay, **settings)
    for k, v in result.model.state_dict().items():
        torch.testing.assert_close(v.double(), expected[k], rtol=1e-5, atol=1e-6, msg=k)
    last = iterates[-1]
    assert max(float((v.double() - last[k]).abs().max()) for k, v in result.model.state_dict().items()) > 1e-3  # not the iterate


def _validation_loss(model: torch.nn.Module, xv: torch.Tensor) -> float:
    model.eval()
    model.step = SCHEDULES_DONE
    with torch.no_grad():
        return float(model.loss(xv)["loss"])


def test_validation_early_stopping_and_the_saved_model_see_the_averaged_weights(tmp_path):
    x, xv = _data()
    torch.manual_seed(0)
    model = vaekit.create("ae", **SHAPE)  # deterministic: its validation loss is exactly reproducible
    result = vaekit.fit(model, x, xv, epochs=4, batch_size=16, lr=0.02, quiet=True, ema=0.9, out_dir=tmp_path)
    best = result.history[result.best_epoch - 1]
    assert best["val/loss"] == pytest.approx(_validation_loss(result.model, xv), rel=1e-5)
    saved = vaekit.load(tmp_path)
    for k, v in saved.state_dict().items():
        torch.testing.assert_close(v, result.model.state_dict()[k], rtol=0, atol=0, msg=k)
    checkpoint = load_file(tmp_path / CHECKPOINT_FILE)
    live = {k[len("model."):]: v for k, v in checkpoint.items() if k.startswith("model.")}
    averaged = {k[len("average."):]: v for k, v in checkpoint.items() if k.startswith("average.")}
    assert set(live) == set(averaged) == set(saved.state_dict())
    assert max(float((live[k] - averaged[k]).abs().max()) for k in live) > 1e-4  # the checkpoint keeps both
    assert result.settings["ema"] == 0.9


def test_without_a_run_folder_the_best_epoch_of_the_average_is_kept_in_memory():
    x, xv = _data()
    torch.manual_seed(0)
    result = vaekit.fit(vaekit.create("ae", **SHAPE), x, xv, epochs=5, batch_size=16, lr=0.05, quiet=True, ema=0.8)
    assert result.best_val_loss == pytest.approx(_validation_loss(result.model, xv), rel=1e-5)


@pytest.mark.parametrize("schedule", [None, "plateau"])
def test_a_run_with_averaging_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path, schedule):
    x, xv = _data()
    settings = dict(batch_size=16, lr=0.05, quiet=True, seed=3, epochs=6, ema=0.95, schedule=schedule, lr_patience=0,
                    warmup_epochs=1, grad_norm="unit", patience=10)
    whole = vaekit.fit(_model(), x, xv, out_dir=tmp_path / "whole", **settings)

    with pytest.raises(KeyboardInterrupt):
        vaekit.fit(_model(), x, xv, out_dir=tmp_path / "split", callbacks=[InterruptAfter(3)], **settings)
    resumed = vaekit.fit(_model(), x, xv, out_dir=tmp_path / "split", **settings)
    assert [r["val/loss"] for r in resumed.history] == [r["val/loss"] for r in whole.history]
    for name in ("model.safetensors", CHECKPOINT_FILE):
        a, b = load_file(tmp_path / "whole" / name), load_file(tmp_path / "split" / name)
        for k in a:
            if not k.startswith("rng."):
                torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=f"{name} {k}")


def test_a_checkpoint_without_an_average_starts_it_from_its_weights(tmp_path):
    x, _ = _data()
    vaekit.fit(_model(), x, epochs=2, batch_size=16, quiet=True, out_dir=tmp_path)
    live = {k[len("model."):]: v for k, v in load_file(tmp_path / CHECKPOINT_FILE).items() if k.startswith("model.")}
    model = _model()
    optimizer = torch.optim.Adam(model.parameters())
    average = WeightAverage(model, 0.9)
    vaekit.train.load_checkpoint(tmp_path / CHECKPOINT_FILE, model, optimizer, torch.Generator(), average)
    for k, v in average.state_dict().items():
        torch.testing.assert_close(v, live[k], rtol=0, atol=0, msg=k)
    resumed = vaekit.fit(_model(), x, epochs=3, batch_size=16, quiet=True, out_dir=tmp_path, ema=0.9)  # and goes on with it
    assert len(resumed.history) == 3


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, math.nan, True, "0.9"])
def test_bad_decays_are_refused_before_training(bad, tmp_path):
    x, _ = _data()
    with pytest.raises(ConfigError, match="ema must be a decay between 0 and 1"):
        vaekit.fit(_model(), x, epochs=1, quiet=True, ema=bad, out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


class Features(torch.nn.Module):
    """The smallest feature network ``dfc_vae`` takes (the ``feature_maps`` interface)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3, padding=1)

    def feature_maps(self, x):
        return [torch.relu(self.conv(x))]


@pytest.mark.parametrize("name", sorted(available_models()))
def test_every_preset_can_be_averaged(name):
    """A deep copy of every model trains along: floating-point tensors averaged, integer and boolean buffers copied."""
    torch.manual_seed(0)
    kwargs = dict(input_shape=(1, 8, 8), latent_dim=2)
    if name == "dfc_vae":
        kwargs["feature_network"] = Features()
    try:
        model = vaekit.create(name, **kwargs)
    except ConfigError:
        model = vaekit.create(name, **kwargs, num_classes=3)
    average = WeightAverage(model, 0.5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
        for b in model.buffers():
            if not b.is_floating_point():
                b.add_(1) if b.dtype != torch.bool else b.logical_not_()
    before = {k: v.clone() for k, v in average.state_dict().items()}
    average.update()
    live = model.state_dict()
    names = dict(model.named_parameters())
    for k, v in average.state_dict().items():
        if k in names:
            torch.testing.assert_close(v, 0.5 * before[k] + 0.5 * live[k], msg=k)
        elif not v.is_floating_point():
            assert torch.equal(v, live[k]), k
    assert not any(p.requires_grad for p in average.module.parameters())
