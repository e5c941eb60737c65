"""Learning-rate schedules against closed forms and torch's own schedulers; a schedule resumes exactly."""

import math

import pytest
import torch

import vaekit
from vaekit.errors import ConfigError
from vaekit.train.recipes import fast_settings
from vaekit.train.schedules import lr_factor
from tests.interrupted import InterruptAfter


def test_cosine_with_warmup_closed_form():
    total, warm = 50, 5
    for t in range(total):
        expected = (t + 1) / warm if t < warm else 0.5 * (1 + math.cos(math.pi * (t - warm) / (total - warm)))
        assert lr_factor(t, total, warm, "cosine") == pytest.approx(expected, abs=1e-12)
    assert lr_factor(warm - 1, total, warm, "cosine") == 1.0 and lr_factor(total, total, warm, "cosine") == 0.0


def test_cosine_without_warmup_matches_torch_cosine_annealing():
    total = 40
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    for t in range(total):
        assert lr_factor(t, total, 0, "cosine") == pytest.approx(opt.param_groups[0]["lr"], abs=1e-9)
        opt.step()
        sched.step()


@pytest.mark.parametrize("total, warm", [(100, 0), (37, 0), (60, 12)])
def test_onecycle_matches_torch_onecycle(total, warm):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    pct = warm / total if warm else 0.3
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=total, pct_start=pct, anneal_strategy="cos",
                                                div_factor=25.0, final_div_factor=1e4, cycle_momentum=False)
    for t in range(total):
        assert lr_factor(t, total, warm, "onecycle") == pytest.approx(opt.param_groups[0]["lr"], rel=1e-6, abs=1e-12), t
        opt.step()
        sched.step()


def test_a_one_step_onecycle_warm_up_is_at_the_top_at_once_and_trains():
    """One warm-up step: the rise from 1/25 to 1 has length 0 (torch's OneCycleLR divides by zero there); step 0 is the
    top, 1, and the rest is the cosine fall of torch's schedule from step 0 to the last step; fit trains with it
    (64 rows at batch 64: one step per epoch, lr_warmup_epochs=1 is one step)."""
    total, end = 5, 1 / 25 / 1e4
    expected = [end + (1 - end) * 0.5 * (1 + math.cos(math.pi * t / (total - 1))) for t in range(total)]
    assert [lr_factor(t, total, 1, "onecycle") for t in range(total)] == pytest.approx(expected, abs=1e-12)
    x = torch.rand(64, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    result = vaekit.fit(_ae(), x, epochs=2, batch_size=64, schedule="onecycle", lr_warmup_epochs=1, quiet=True)
    assert len(result.history) == 2


def test_constant_and_unknown():
    assert lr_factor(7, 10, 0, None) == 1.0 == lr_factor(7, 10, 0, "constant")
    with pytest.raises(ConfigError, match="schedule must be one of"):
        lr_factor(0, 10, 0, "linear")


def test_fit_applies_the_schedule_and_refuses_warmup_without_one():
    x = torch.rand(64, 1, 4, 4)
    model = vaekit.create("ae", input_shape=(1, 4, 4), latent_dim=2, hidden_dims=(8,), arch="mlp")
    vaekit.fit(model, x, epochs=2, batch_size=16, lr=0.01, schedule="onecycle", quiet=True)
    opt_lr_last = 0.01 * lr_factor(7, 8, 0, "onecycle")  # the last of 8 steps
    assert opt_lr_last < 0.01 / 25  # it annealed (the optimiser is internal: check through a resumed run below)
    for bad in (dict(lr_warmup_epochs=1), dict(schedule="cosine", lr_warmup_epochs=2), dict(schedule="cosine", lr_warmup_epochs=-1)):
        with pytest.raises(ConfigError, match="lr_warmup_epochs"):
            vaekit.fit(model, x, epochs=2, quiet=True, **bad)


def _ae():
    torch.manual_seed(0)
    return vaekit.create("ae", input_shape=(1, 4, 4), latent_dim=2, hidden_dims=(8,), arch="mlp")


def test_a_scheduled_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path):
    """The schedule is a function of the step: a run interrupted after epoch 2 of 4 and resumed equals one
    run of 4 epochs in one go."""
    x = torch.rand(96, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    settings = dict(batch_size=16, lr=0.02, schedule="cosine", lr_warmup_epochs=1.5, quiet=True, seed=3, epochs=4)
    whole = vaekit.fit(_ae(), x, out_dir=tmp_path / "whole", **settings).model

    with pytest.raises(KeyboardInterrupt):
        vaekit.fit(_ae(), x, out_dir=tmp_path / "split", callbacks=[InterruptAfter(2)], **settings)
    with pytest.raises(ConfigError):  # the warm-up must fit in the run
        vaekit.fit(_ae(), x, out_dir=tmp_path / "never", **{**settings, "epochs": 1})
    resumed = vaekit.fit(_ae(), x, out_dir=tmp_path / "split", **settings).model
    for (k, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)
    constant = vaekit.fit(_ae(), x, epochs=4, batch_size=16, lr=0.02, quiet=True, seed=3).model
    assert any(not torch.equal(a, b) for a, b in zip(whole.state_dict().values(), constant.state_dict().values()))


def test_fast_recipe_settings(monkeypatch):
    cpu = torch.device("cpu")
    r = fast_settings(60, 128, 1e-3, cpu)
    assert (r["epochs"], r["batch_size"], r["schedule"], r["lr_warmup_epochs"], r["warmup_epochs"]) == (24, 128, "cosine", 1.0, 5)
    assert r["lr"] == pytest.approx(2e-3) and r["precision"] in ("fp32", "bf16")
    assert fast_settings(60, 128, 1e-3, cpu, kl_warmup=False)["warmup_epochs"] is None
    assert fast_settings(1, 128, 1e-3, cpu)["epochs"] == 1 and fast_settings(1, 128, 1e-3, cpu)["lr_warmup_epochs"] == 0.5
    # compilation where torch.compile can run, never forced where it cannot
    from vaekit.train import recipes

    monkeypatch.setattr(recipes, "check_compile", lambda device: None)
    assert fast_settings(60, 128, 1e-3, cpu)["compile"] is True

    def cannot(device):
        raise ConfigError("no compiler")

    monkeypatch.setattr(recipes, "check_compile", cannot)
    assert fast_settings(60, 128, 1e-3, cpu)["compile"] is False


def test_fit_fast_reports_the_settings_it_used(monkeypatch):
    from vaekit.train import recipes

    monkeypatch.setattr(recipes, "check_compile", lambda device: (_ for _ in ()).throw(ConfigError("no")))  # eager here
    x = torch.rand(2000, 1, 4, 4)
    result = vaekit.fit(_ae(), x, epochs=5, batch_size=100, lr=1e-3, quiet=True, fast=True)
    s = result.settings
    assert s["fast"] and s["epochs"] == 2 and s["batch_size"] == 100 and s["schedule"] == "cosine"
    assert s["lr"] == pytest.approx(2e-3) and len(result.history) == 2 and s["warmup_epochs"] == 0  # ae: no KL to warm up
    assert result.history[-1]["step"] == 2 * 20
    torch.manual_seed(0)
    vae = vaekit.create("vae", input_shape=(1, 4, 4), latent_dim=2, hidden_dims=(8,), arch="mlp")
    result = vaekit.fit(vae, x, epochs=10, batch_size=100, quiet=True, fast=True)
    assert result.settings["warmup_epochs"] == 1 and vae.objective.warmup_steps == 20  # a KL warm-up over the first fifth


def _expected_plateau_rates(losses, lr, lr_patience, warmup_epochs=0):
    """The rate of each epoch by the rule itself (independent of torch's ReduceLROnPlateau): after each
    epoch past the warm-up, a strictly lower loss is a new best; more than lr_patience epochs without one
    divide the rate by 5 and restart the count."""
    rates, best, bad = [], math.inf, 0
    for epoch, loss in enumerate(losses, start=1):
        rates.append(lr)
        if epoch <= warmup_epochs:
            continue
        if loss < best:
            best, bad = loss, 0
        else:
            bad += 1
            if bad > lr_patience:
                lr, bad = lr * 0.2, 0
    return rates


def _plateau_data():
    g = torch.Generator().manual_seed(5)
    return torch.rand(96, 1, 4, 4, generator=g), torch.rand(32, 1, 4, 4, generator=g)


@pytest.mark.parametrize("lr_patience, warmup_epochs", [(0, 0), (1, 0), (0, 3)])
def test_plateau_divides_the_rate_by_five_after_lr_patience_epochs_without_a_better_validation_loss(lr_patience, warmup_epochs):
    x, xv = _plateau_data()
    torch.manual_seed(0)
    model = vaekit.create("vae", input_shape=(1, 4, 4), latent_dim=2, hidden_dims=(8,), arch="mlp", likelihood="bernoulli")
    result = vaekit.fit(model, x, xv, epochs=12, batch_size=16, lr=0.05, schedule="plateau", lr_patience=lr_patience,
                        warmup_epochs=warmup_epochs, quiet=True, seed=1)
    rates = [r["lr"] for r in result.history]
    assert rates == pytest.approx(_expected_plateau_rates([r["val/loss"] for r in result.history], 0.05, lr_patience, warmup_epochs))
    assert min(rates) < 0.05  # the data made it lower the rate at least once
    assert rates[: warmup_epochs + lr_patience + 1] == [0.05] * (warmup_epochs + lr_patience + 1)  # warm-up epochs do not count


def test_a_plateau_run_resumes_to_the_weights_and_rates_of_an_uninterrupted_one(tmp_path):
    x, xv = _plateau_data()
    settings = dict(batch_size=16, lr=0.05, schedule="plateau", lr_patience=0, quiet=True, seed=3, epochs=8)
    whole = vaekit.fit(_ae(), x, xv, out_dir=tmp_path / "whole", **settings)

    with pytest.raises(KeyboardInterrupt):
        vaekit.fit(_ae(), x, xv, out_dir=tmp_path / "split", callbacks=[InterruptAfter(5)], **settings)
    resumed = vaekit.fit(_ae(), x, xv, out_dir=tmp_path / "split", **settings)
    assert [r["lr"] for r in resumed.history] == [r["lr"] for r in whole.history] and min(r["lr"] for r in whole.history) < 0.05
    for (k, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)


def test_plateau_refuses_a_warmup_and_a_bad_patience():
    x, xv = _plateau_data()
    for bad, match in ((dict(lr_warmup_epochs=1), "lr_warmup_epochs"), (dict(lr_patience=-1), "lr_patience"),
                       (dict(lr_patience=2.5), "lr_patience"), (dict(lr_patience=True), "lr_patience")):
        with pytest.raises(ConfigError, match=match):
            vaekit.fit(_ae(), x, xv, epochs=2, schedule="plateau", quiet=True, **bad)
    assert lr_factor(5, 10, 0, "plateau") == 1.0  # per step it is constant; the trainer lowers it per epoch
