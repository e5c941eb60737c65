"""mssim_vae and dfc_vae: losses recomputed from their parts, refusals, training, saving and the command line."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors import safe_open
from torch import nn
from torch.distributions import kl_divergence

import vaekit
from vaekit.cli import main
from vaekit.data import load_digits
from vaekit.errors import CheckpointError, ConfigError
from vaekit.models import get_preset
from vaekit.models.classifier import FeatureClassifier, classifier_sha256, save_classifier
from vaekit.objectives import ms_ssim

DIGITS = dict(input_shape=(1, 8, 8), latent_dim=3, arch="mlp", hidden_dims=(32,))
SMALL_SSIM = dict(window=3, sigma=0.5, scales=2)  # 8 → 4 pixels: two scales hold a 3-pixel window


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Features(nn.Module):
    """A small feature network with ``feature_maps`` (the FeatureClassifier interface): a conv map and a vector."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 6)

    def feature_maps(self, x):
        h = torch.relu(self.conv(x))
        return [h, self.fc(h.flatten(1))]


@pytest.fixture(scope="module")
def digits():
    return load_digits("train").x[:512]


def test_presets_are_registered_with_every_option_documented(capsys):
    for name in ("mssim_vae", "dfc_vae"):
        preset = get_preset(name)
        assert name in vaekit.available_models() and preset.family == "variational"
        assert set(preset.docs) == set(preset.defaults) and all(preset.docs.values()), name
        assert "References:" in preset.build.__doc__ and "arXiv" in preset.build.__doc__
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "mssim_vae" in listing and "dfc_vae" in listing and "--feature-network" in listing


def test_mssim_loss_is_one_minus_ms_ssim_plus_beta_kl():
    torch.manual_seed(0)
    model = vaekit.create("mssim_vae", input_shape=(1, 28, 28), latent_dim=4, arch="mlp", hidden_dims=(32,), beta=0.05)
    x = torch.rand(6, 1, 28, 28)
    torch.manual_seed(7)
    out = model.loss(x)
    torch.manual_seed(7)  # the same draw of z, recomputed from the parts
    q = model.encode(x)
    z = q.rsample()
    mean = model.decode(z).mean
    reconstruction = (1 - ms_ssim(mean, x, window=7, sigma=1.0, scales=3)).mean()  # 28×28: 3 scales of a 7-pixel window
    kl = kl_divergence(q, model.prior()).mean()
    assert set(out) == {"loss", "reconstruction", "kl"}
    torch.testing.assert_close(out["reconstruction"], reconstruction)
    torch.testing.assert_close(out["kl"], kl)
    torch.testing.assert_close(out["loss"], reconstruction + 0.05 * kl)


def test_mssim_scales_fit_the_image_or_are_refused():
    assert vaekit.create("mssim_vae", **DIGITS).objective.reconstruction.scales == 1  # 8×8 with a 7-pixel window
    assert vaekit.create("mssim_vae", **DIGITS, window=3).objective.reconstruction.scales == 2
    with pytest.raises(ConfigError, match=r"scales=3 does not fit 8×8 images with window=3.*from 1 to 2"):
        vaekit.create("mssim_vae", **DIGITS, window=3, scales=3)
    with pytest.raises(ConfigError, match=r"window=9 does not fit 8×8 images.*from 3 to 8"):
        vaekit.create("mssim_vae", **DIGITS, window=9)
    with pytest.raises(ConfigError, match="scales must be an integer from 1 to 5"):
        vaekit.create("mssim_vae", **DIGITS, scales=0)
    with pytest.raises(ConfigError, match="odd"):
        vaekit.create("mssim_vae", **DIGITS, window=4)
    with pytest.raises(ConfigError, match=r"input_shape must be \(C, H, W\)"):
        vaekit.create("mssim_vae", input_shape=(64,), latent_dim=2)


def test_dfc_loss_is_pixel_nll_plus_feature_distance_plus_beta_kl():
    net = Features()
    torch.manual_seed(0)
    model = vaekit.create("dfc_vae", **DIGITS, feature_network=net, weight=0.3, layer_weights=(2.0, 0.5), beta=1.5)
    x = torch.rand(5, 1, 8, 8).bernoulli()
    torch.manual_seed(3)
    out = model.loss(x)
    torch.manual_seed(3)
    q = model.encode(x)
    px = model.decode(q.rsample())
    with torch.no_grad():  # the network's layers by hand
        h_x, h_m = torch.relu(net.conv(x)), torch.relu(net.conv(px.mean))
        feature = 2.0 * (h_x - h_m).pow(2).sum((1, 2, 3)) + 0.5 * (net.fc(h_x.flatten(1)) - net.fc(h_m.flatten(1))).pow(2).sum(1)
    reconstruction = (-px.log_prob(x) + 0.3 * feature).mean()
    kl = kl_divergence(q, model.prior()).mean()
    assert set(out) == {"loss", "reconstruction", "kl"}
    torch.testing.assert_close(out["reconstruction"], reconstruction, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(out["loss"], reconstruction + 1.5 * kl, rtol=1e-5, atol=1e-4)


def test_dfc_feature_network_is_frozen_and_never_in_the_model_file(tmp_path):
    net = Features()
    model = vaekit.create("dfc_vae", **DIGITS, feature_network=net)
    assert not any(k.startswith(("conv", "fc")) or "feature" in k for k in model.state_dict())
    assert all(not p.requires_grad for p in net.parameters()) and not net.training
    model.loss(torch.rand(8, 1, 8, 8))["loss"].backward()
    assert all(p.grad is None for p in net.parameters())
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in model.decoder.parameters())
    model.save(str(tmp_path / "run"))
    with safe_open(str(tmp_path / "run" / "model.safetensors"), framework="pt") as f:
        assert set(f.keys()) == set(model.state_dict())
    options = json.loads((tmp_path / "run" / "config.json").read_text())["options"]
    assert options["feature_network"] == {"module": "Features"}
    assert options["feature_network_sha256"] == classifier_sha256(net)  # the digest of its weights


def test_dfc_with_a_module_loads_only_with_that_module_given_again(tmp_path):
    model = vaekit.create("dfc_vae", **DIGITS, feature_network=Features())
    model.save(str(tmp_path / "run"))
    with pytest.raises(CheckpointError, match=r"vaekit.load\(run, feature_network=module\)"):
        vaekit.load(str(tmp_path / "run"))
    with pytest.raises(CheckpointError, match="retrained or replaced"):
        vaekit.load(str(tmp_path / "run"), feature_network=Features(seed=1))
    loaded = vaekit.load(str(tmp_path / "run"), feature_network=Features())
    assert loaded.config == model.config
    x = torch.rand(4, 1, 8, 8)
    torch.testing.assert_close(loaded.transform(x), model.transform(x))
    torch.testing.assert_close(loaded.reconstruct(x), model.reconstruct(x))


def test_dfc_from_a_classifier_folder_saves_its_path_and_digest(tmp_path):
    torch.manual_seed(0)
    classifier = FeatureClassifier((1, 8, 8), 10)
    save_classifier(classifier, tmp_path / "classifier")
    model = vaekit.create("dfc_vae", **DIGITS, feature_network=str(tmp_path / "classifier"), layer_weights=(1.0, 1.0, 0.1))
    assert model.config["options"]["feature_network"] == str((tmp_path / "classifier").resolve())
    assert model.config["options"]["feature_network_sha256"] == classifier_sha256(classifier)
    model.save(str(tmp_path / "run"))
    loaded = vaekit.load(str(tmp_path / "run"))  # rebuilt from the folder
    x = torch.rand(4, 1, 8, 8)
    torch.manual_seed(1)
    expected = model.loss(x)["loss"]
    torch.manual_seed(1)
    torch.testing.assert_close(loaded.loss(x)["loss"], expected)
    save_classifier(FeatureClassifier((1, 8, 8), 10), tmp_path / "classifier")  # retrained: other weights
    with pytest.raises(CheckpointError, match="retrained or replaced"):
        vaekit.load(str(tmp_path / "run"))


def test_dfc_refusals_name_the_option_and_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="vaekit train-classifier"):
        vaekit.create("dfc_vae", **DIGITS)
    save_classifier(FeatureClassifier((1, 28, 28), 10), tmp_path / "fashion")
    with pytest.raises(ConfigError, match=r"\(batch, 1, 8, 8\).*28, 28.*vaekit train-classifier"):
        vaekit.create("dfc_vae", **DIGITS, feature_network=str(tmp_path / "fashion"))
    with pytest.raises(ConfigError, match="no such folder.*vaekit train-classifier"):
        vaekit.create("dfc_vae", **DIGITS, feature_network=str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="layer_weights has 3 values but the feature network gives 2 feature layers"):
        vaekit.create("dfc_vae", **DIGITS, feature_network=Features(), layer_weights=(1.0, 1.0, 1.0))
    with pytest.raises(ConfigError, match="weight"):
        vaekit.create("dfc_vae", **DIGITS, feature_network=Features(), weight=-1.0)


@pytest.mark.parametrize("name, options", [("mssim_vae", SMALL_SSIM), ("dfc_vae", {"weight": 0.1})])
def test_a_short_adam_run_lowers_the_loss(name, options, digits):
    if name == "dfc_vae":
        options = {**options, "feature_network": Features()}
    torch.manual_seed(0)
    model = vaekit.create(name, **DIGITS, **options)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    held_out = digits[:256]

    def evaluate() -> float:
        torch.manual_seed(123)  # the same draws before and after
        with torch.no_grad():
            return sum(float(model.loss(held_out)["loss"]) for _ in range(4)) / 4

    before = evaluate()
    g = torch.Generator().manual_seed(1)
    for _ in range(100):
        batch = digits[torch.randint(0, len(digits), (64,), generator=g)]
        optimiser.zero_grad()
        model.loss(batch)["loss"].backward()
        optimiser.step()
        model.step += 1
    after = evaluate()
    assert math.isfinite(after) and after < before - 0.05 * abs(before), (before, after)


TINY = ["--data", "digits", "--arch", "mlp", "--latent-dim", "2", "--hidden-dims", "16", "--epochs", "1", "--nll-samples", "5", "--quiet"]


def test_command_line_trains_mssim_vae_and_refuses_scales_that_do_not_fit(tmp_path, capsys):
    assert main(["train", "mssim_vae", *TINY, "--window", "3", "--sigma", "0.5", "--scales", "2", "--out", str(tmp_path / "m")]) == 0
    assert vaekit.load(str(tmp_path / "m")).objective.reconstruction.scales == 2
    capsys.readouterr()
    assert main(["train", "mssim_vae", *TINY, "--window", "3", "--scales", "3", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "scales=3" in err and "from 1 to 2" in err
    assert not (tmp_path / "bad").exists()  # nothing written before the options were checked


def test_command_line_trains_dfc_vae_on_a_trained_classifier(tmp_path, capsys):
    assert main(["train", "dfc_vae", *TINY, "--out", str(tmp_path / "none")]) == 2
    assert "vaekit train-classifier" in capsys.readouterr().err
    assert main(["train-classifier", "--data", "digits", "--epochs", "1", "--quiet", "--out", str(tmp_path / "clf")]) == 0
    assert main(["train", "dfc_vae", *TINY, "--feature-network", str(tmp_path / "clf"), "--weight", "0.1",
                 "--out", str(tmp_path / "dfc")]) == 0
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "dfc"), "--nll-samples", "5", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["elbo"] < 0
