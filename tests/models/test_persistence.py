"""Saving and loading: safetensors + JSON, exact round trips, clear errors on damage."""

import json

import pytest
import torch
from safetensors import safe_open

import vaekit
from vaekit.errors import CheckpointError


@pytest.mark.parametrize("options", [{}, {"posterior": "full_covariance"}, {"arch": "conv", "likelihood": "logistic"},
                                     {"likelihood": "gaussian", "likelihood_scale": 0.2}])
def test_round_trip_gives_the_same_model(tmp_path, options):
    torch.manual_seed(0)
    model = vaekit.create("vae", input_shape=(1, 8, 8), latent_dim=3, hidden_dims=(16,), channels=(4, 8), **options)
    model.save(tmp_path)
    loaded = vaekit.load(tmp_path)
    assert loaded.config == model.config
    x = torch.rand(5, 1, 8, 8)
    torch.testing.assert_close(loaded.encode(x).mean, model.encode(x).mean)
    torch.testing.assert_close(loaded.reconstruct(x), model.eval().reconstruct(x))
    with safe_open(str(tmp_path / "model.safetensors"), framework="pt") as f:
        assert set(f.keys()) == set(model.state_dict())
    assert json.loads((tmp_path / "config.json").read_text())["model"] == "vae"


def test_tampered_weights_are_refused(tmp_path):
    vaekit.create("vae", input_shape=(4,), latent_dim=2, hidden_dims=(8,)).save(tmp_path)
    path = tmp_path / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[8:16] = b"\xff" * 8  # corrupt the JSON header
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="truncated or tampered"):
        vaekit.load(tmp_path)


def test_truncated_weights_are_refused(tmp_path):
    vaekit.create("vae", input_shape=(4,), latent_dim=2, hidden_dims=(8,)).save(tmp_path)
    path = tmp_path / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(CheckpointError):
        vaekit.load(tmp_path)


def test_weights_of_another_model_are_refused(tmp_path):
    vaekit.create("vae", input_shape=(4,), latent_dim=2, hidden_dims=(8,)).save(tmp_path / "a")
    vaekit.create("vae", input_shape=(4,), latent_dim=3, hidden_dims=(8,)).save(tmp_path / "b")
    (tmp_path / "a" / "model.safetensors").write_bytes((tmp_path / "b" / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="different runs"):
        vaekit.load(tmp_path / "a")


def test_missing_and_damaged_config(tmp_path):
    with pytest.raises(CheckpointError, match="config.json is missing"):
        vaekit.load(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        vaekit.load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model": "no_such_model", "input_shape": [4]}))
    with pytest.raises(CheckpointError, match="cannot build"):
        vaekit.load(tmp_path)


def test_damage_inside_the_tensor_data_is_caught(tmp_path):
    vaekit.create("vae", input_shape=(4,), latent_dim=2, hidden_dims=(8,)).save(tmp_path)
    path = tmp_path / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x55  # a flipped byte in the last weight: the header still parses
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="integrity check"):
        vaekit.load(tmp_path)


def test_non_finite_weights_are_refused(tmp_path):
    model = vaekit.create("vae", input_shape=(4,), latent_dim=2, hidden_dims=(8,))
    with torch.no_grad():
        next(model.parameters())[0, 0] = float("nan")
    model.save(tmp_path)  # the digest matches: the file is intact, its contents are not usable
    with pytest.raises(CheckpointError, match="non-finite values"):
        vaekit.load(tmp_path)


def test_config_with_wrong_types_and_bad_devices(tmp_path):
    from vaekit.errors import ConfigError

    vaekit.create("vae", input_shape=(4,), latent_dim=2, hidden_dims=(8,)).save(tmp_path)
    with pytest.raises(ConfigError, match="unknown device 'gpu'"):
        vaekit.load(tmp_path, device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            vaekit.load(tmp_path, device="cuda")
    config = json.loads((tmp_path / "config.json").read_text())
    for damage in ({"latent_dim": "abc"}, {"options": [1]}):
        (tmp_path / "config.json").write_text(json.dumps({**config, **damage}))
        with pytest.raises(CheckpointError):
            vaekit.load(tmp_path)


def test_weights_without_a_digest_load_with_a_warning(tmp_path):
    from safetensors.torch import load_file, save_file

    model = vaekit.create("vae", input_shape=(4,), latent_dim=2, hidden_dims=(8,))
    model.save(tmp_path)
    path = tmp_path / "model.safetensors"
    save_file(load_file(str(path)), str(path))  # as another tool would write it: no metadata
    with pytest.warns(UserWarning, match="no integrity digest"):
        loaded = vaekit.load(tmp_path)
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
