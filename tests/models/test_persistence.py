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
    from safetensors.torch import load_file, save_file

    from vaekit._io import tensors_sha256

    vaekit.create("vae", input_shape=(4,), latent_dim=2, hidden_dims=(8,)).save(tmp_path)
    path = tmp_path / "model.safetensors"
    tensors = load_file(str(path))
    next(iter(tensors.values())).view(-1)[0] = float("nan")
    save_file(tensors, str(path), metadata={"sha256": tensors_sha256(tensors)})  # intact file, unusable contents
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


def test_saving_non_finite_weights_is_refused_and_keeps_the_previous_model(tmp_path):
    """Save writes nothing that load would refuse, so the last good model survives."""
    model = vaekit.create("vae", input_shape=(4,), latent_dim=2, hidden_dims=(8,))
    model.save(tmp_path)
    before = {name: (tmp_path / name).read_bytes() for name in ("model.safetensors", "config.json")}
    with torch.no_grad():
        next(model.parameters())[0, 0] = float("inf")
    with pytest.raises(CheckpointError, match=r"non-finite values.*nothing was written"):
        model.save(tmp_path)
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    vaekit.load(tmp_path)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_a_model_saved_in_another_float_dtype_loads_bit_identical(tmp_path, dtype):
    """Weights are not silently cast to float32 on load."""
    torch.manual_seed(0)
    model = vaekit.create("vae", input_shape=(4,), latent_dim=2, hidden_dims=(8,)).to(dtype)
    model.save(tmp_path)
    loaded = vaekit.load(tmp_path)
    for name, value in model.state_dict().items():
        assert loaded.state_dict()[name].dtype == value.dtype, name
        assert torch.equal(loaded.state_dict()[name], value), name


def test_a_tensor_of_a_non_float_dtype_in_place_of_a_float_one_is_refused(tmp_path):
    """An integer tensor where the model has floats is another model's file, not a cast."""
    from safetensors.torch import load_file, save_file

    from vaekit._io import tensors_sha256

    vaekit.create("vae", input_shape=(4,), latent_dim=2, hidden_dims=(8,)).save(tmp_path)
    path = tmp_path / "model.safetensors"
    tensors = load_file(str(path))
    name = next(iter(tensors))
    tensors[name] = (tensors[name] * 100).to(torch.int64)
    save_file(tensors, str(path), metadata={"sha256": tensors_sha256(tensors)})
    with pytest.raises(CheckpointError, match=rf"{name}.*torch.int64 in the file but torch.float32 in the model"):
        vaekit.load(tmp_path)


def test_a_config_torch_cannot_build_gives_a_one_line_error(tmp_path):
    """No C++ backtrace from torch in the message."""
    vaekit.create("vae", input_shape=(4,), latent_dim=2, hidden_dims=(8,)).save(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "latent_dim": 10**30}))
    with pytest.raises(CheckpointError, match="cannot build") as caught:
        vaekit.load(tmp_path)
    assert "\n" not in str(caught.value)


def test_weights_replaced_while_being_read_are_not_mistaken_for_damage(tmp_path, monkeypatch):
    """Tensors and digest come from one opening of the file, so a concurrent save cannot mix two versions."""
    import safetensors

    vaekit.create("vae", input_shape=(4,), latent_dim=2, hidden_dims=(8,)).save(tmp_path)
    torch.manual_seed(1)
    newer = vaekit.create("vae", input_shape=(4,), latent_dim=2, hidden_dims=(8,))
    real_safe_open = safetensors.safe_open

    def save_meanwhile_then_open(*args, **kwargs):  # a training run saves just as the file is (re)opened
        newer.save(tmp_path)
        return real_safe_open(*args, **kwargs)

    monkeypatch.setattr(safetensors, "safe_open", save_meanwhile_then_open)
    loaded = vaekit.load(tmp_path)
    for name, value in newer.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name


def test_a_path_starting_with_a_tilde_is_the_home_folder(tmp_path, monkeypatch):
    """model.save("~/x") and vaekit.load("~/x") use $HOME/x, not a folder named "~" in the working directory."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    model = vaekit.create("vae", input_shape=(4,), latent_dim=2, hidden_dims=(8,))
    model.save("~/runs/x")
    assert (tmp_path / "home" / "runs" / "x" / "config.json").is_file() and not (tmp_path / "~").exists()
    for a, b in zip(model.state_dict().values(), vaekit.load("~/runs/x").state_dict().values()):
        assert torch.equal(a, b)
