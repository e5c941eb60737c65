"""A damaged training checkpoint is refused with one CheckpointError naming the file and the fix."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import vaekit
from vaekit.errors import CheckpointError
from vaekit.train.checkpoint import load_checkpoint, read_trainer_state, save_checkpoint


def _training_state():
    torch.manual_seed(0)
    model = vaekit.create("vae", input_shape=(4,), latent_dim=2, hidden_dims=(8,))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    sum(p.sum() for p in model.parameters()).backward()
    optimizer.step()
    return model, optimizer, torch.Generator().manual_seed(0)


def _rewrite(path, metadata=None, drop=()):
    """Rewrite checkpoint ``path`` with other metadata or without some tensors (and without a digest)."""
    with safe_open(str(path), framework="pt") as f:
        old = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys() if k not in drop}
    new = {**old, **(metadata or {})}  # the metadata is outside the digest
    if drop:
        new.pop("sha256")  # only a file without a digest can lack tensors unnoticed
    save_file(tensors, str(path), metadata=new)


@pytest.fixture
def checkpoint(tmp_path):
    model, optimizer, generator = _training_state()
    path = tmp_path / "checkpoint.safetensors"
    save_checkpoint(path, model, optimizer, {"epoch": 1, "history": [{"train/loss": float("nan")}]}, generator)
    return path


def test_a_checkpoint_round_trips_nan_in_its_history(checkpoint):
    """NaN losses in the history survive the JSON metadata."""
    state = load_checkpoint(checkpoint, *_training_state())
    assert state["epoch"] == 1 and state["history"][0]["train/loss"] != state["history"][0]["train/loss"]


@pytest.mark.parametrize("metadata", [{"trainer": "[]"}, {"optimizer": "{}"}, {"optimizer": "[1]"},
                                      {"optimizer": json.dumps({"param_groups": [], "scalars": {}})},
                                      {"optimizer": json.dumps({"param_groups": [], "scalars": {"x.step": 1}})}])
def test_checkpoint_metadata_that_parses_but_is_wrong_is_refused_with_the_fix(checkpoint, metadata):
    """Valid JSON of the wrong form is a CheckpointError, not a KeyError or ValueError from deep inside."""
    _rewrite(checkpoint, metadata)
    with pytest.raises(CheckpointError, match=rf"{checkpoint.name}.*delete it to start over"):
        load_checkpoint(checkpoint, *_training_state())


@pytest.mark.parametrize("drop", ["rng.torch", "rng.generator"])
def test_a_checkpoint_without_its_rng_state_is_refused_with_the_fix(checkpoint, drop):
    """A file without a digest that lacks a tensor is refused, not a KeyError."""
    _rewrite(checkpoint, drop=(drop,))
    with pytest.warns(UserWarning, match="no integrity digest"), \
            pytest.raises(CheckpointError, match=rf"{checkpoint.name}.*{drop}.*delete it to start over"):
        load_checkpoint(checkpoint, *_training_state())


def test_a_trainer_state_that_is_not_an_object_is_refused(checkpoint):
    """read_trainer_state hands back a dict or refuses the file."""
    _rewrite(checkpoint, {"trainer": "[1, 2]"})
    with pytest.raises(CheckpointError, match=rf"{checkpoint.name}.*not a JSON object.*delete it to start over"):
        read_trainer_state(checkpoint)
