"""A run saved before a shared option existed still resumes: the option counts as its default there."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import vaekit
from vaekit.errors import CheckpointError
from vaekit.train.checkpoint import CHECKPOINT_FILE, check_resumable, config_differences


def _drop_from_checkpoint(path, keys):
    with safe_open(str(path), framework="pt") as f:
        metadata = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    trainer = json.loads(metadata["trainer"])
    for key in keys:
        trainer["model_config"].pop(key)
    metadata["trainer"] = json.dumps(trainer)
    save_file(tensors, str(path), metadata=metadata)


def test_a_checkpoint_without_newer_shared_options_resumes(tmp_path):
    torch.manual_seed(0)
    x = torch.rand(32, 1, 8, 8)
    model = vaekit.create("vae", input_shape=(1, 8, 8), latent_dim=2, arch="mlp", hidden_dims=(8,))
    vaekit.fit(model, x, epochs=1, batch_size=16, quiet=True, out_dir=tmp_path)
    _drop_from_checkpoint(tmp_path / CHECKPOINT_FILE, ["logvar_clamp", "prior", "pseudo_inputs"])
    again = vaekit.create("vae", input_shape=(1, 8, 8), latent_dim=2, arch="mlp", hidden_dims=(8,))
    assert check_resumable(tmp_path / CHECKPOINT_FILE, again)["epoch"] == 1
    other = vaekit.create("vae", input_shape=(1, 8, 8), latent_dim=2, arch="mlp", hidden_dims=(8,), logvar_clamp=(-6, 2))
    with pytest.raises(CheckpointError, match=r"logvar_clamp: \[-30.0, 20.0\] in the run, \[-6.0, 2.0\] now"):
        check_resumable(tmp_path / CHECKPOINT_FILE, other)


def test_config_differences_name_both_values():
    saved = {"model": "vae", "latent_dim": 2, "options": {"beta": 1.0}}
    now = {"model": "vae", "latent_dim": 3, "options": {"beta": 4.0}}
    assert config_differences(saved, now) == ["beta: 1.0 in the run, 4.0 now", "latent_dim: 2 in the run, 3 now"]


def test_a_preset_option_added_after_the_run_counts_as_its_default():
    """hvae gained num_samples after runs of it were saved: resuming them with the default must work."""
    saved = {"model": "hvae", "latent_dim": 4, "options": {"top_latent_dim": 2, "warmup_steps": 0}}
    now = {"model": "hvae", "latent_dim": 4, "options": {"top_latent_dim": 2, "warmup_steps": 0, "num_samples": 1}}
    assert config_differences(saved, now) == []
    other = {"model": "hvae", "latent_dim": 4, "options": {"top_latent_dim": 2, "warmup_steps": 0, "num_samples": 5}}
    assert config_differences(saved, other) == ["num_samples: 1 in the run, 5 now"]
    # a preset's defaults never leak into another model's comparison
    assert config_differences({"model": "vae", "latent_dim": 4}, {"model": "vae", "latent_dim": 4, "num_samples": 1}) \
        == ["num_samples: 'unset' in the run, 1 now"]
