"""The training loop: resumption, NaN handling, early stopping, checkpoints, data checks."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import vaekit
from vaekit.errors import CheckpointError, DataError, NonFiniteLossError
from vaekit.train.checkpoint import CHECKPOINT_FILE

ROOT = Path(__file__).resolve().parents[2]


def tiny_model(seed: int = 0, **options):
    torch.manual_seed(seed)
    return vaekit.create("vae", input_shape=(1, 8, 8), latent_dim=3, hidden_dims=(16,), arch="mlp", **options)


def digits(n: int = 256):
    return vaekit.data.load_digits("train").x[:n]


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_resumed_run_is_identical_to_an_uninterrupted_one(tmp_path):
    x, v = digits(200), digits(264)[200:]
    straight = tiny_model()
    vaekit.fit(straight, x, v, epochs=4, batch_size=32, quiet=True, out_dir=tmp_path / "a", binarize_data="dynamic")
    first = tiny_model()
    vaekit.fit(first, x, v, epochs=2, batch_size=32, quiet=True, out_dir=tmp_path / "b", binarize_data="dynamic")
    resumed = tiny_model(seed=123)  # a different init: everything must come from the checkpoint
    result = vaekit.fit(resumed, x, v, epochs=4, batch_size=32, quiet=True, out_dir=tmp_path / "b", binarize_data="dynamic")
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]
    for (k, a), b in zip(weights(straight).items(), weights(resumed).values()):
        torch.testing.assert_close(a, b, msg=k)
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]


def test_fresh_start_ignores_an_existing_checkpoint(tmp_path):
    x = digits(64)
    vaekit.fit(tiny_model(), x, epochs=2, batch_size=32, quiet=True, out_dir=tmp_path)
    result = vaekit.fit(tiny_model(), x, epochs=1, batch_size=32, quiet=True, out_dir=tmp_path, resume=False)
    assert [r["epoch"] for r in result.history] == [1]


def test_resume_refuses_a_different_model(tmp_path):
    x = digits(64)
    vaekit.fit(tiny_model(), x, epochs=1, batch_size=32, quiet=True, out_dir=tmp_path)
    other = vaekit.create("vae", input_shape=(1, 8, 8), latent_dim=3, hidden_dims=(16,), arch="mlp", posterior="full_covariance")
    with pytest.raises(CheckpointError, match="other settings") as e:
        vaekit.fit(other, x, epochs=2, quiet=True, out_dir=tmp_path)
    assert "posterior: 'diagonal' in the run, 'full_covariance' now" in str(e.value)


class NaNAfter:
    """Wraps an objective; returns a NaN loss from step ``bad_step`` on."""

    def __init__(self, inner, bad_step):
        self.inner, self.bad_step = inner, bad_step

    def __call__(self, model, x, y=None):
        out = dict(self.inner(model, x, y))
        if model.training and model.step >= self.bad_step:
            out["loss"] = out["loss"] * float("nan")
        return out


def test_nan_loss_restores_last_good_state_and_names_the_batch(tmp_path):
    x = digits(320)
    model = tiny_model()
    vaekit.fit(model, x, epochs=1, batch_size=32, quiet=True, out_dir=tmp_path)  # 10 steps, checkpoint written
    saved = (tmp_path / CHECKPOINT_FILE).read_bytes()
    model.objective = NaNAfter(model.objective, bad_step=14)  # 4th batch of epoch 2
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, batch 5 of 10"):
        vaekit.fit(model, x, epochs=3, batch_size=32, quiet=True, out_dir=tmp_path, log_every=3)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert model.step == 13  # restored to the last state checked good (after step 13 = 3 batches into epoch 2)
    assert (tmp_path / CHECKPOINT_FILE).read_bytes() == saved  # nothing saved was touched


def test_a_nan_gradient_behind_a_finite_loss_is_caught_too(tmp_path):
    x = digits(320)
    model = tiny_model()
    vaekit.fit(model, x, epochs=1, batch_size=32, quiet=True, out_dir=tmp_path)
    saved = (tmp_path / CHECKPOINT_FILE).read_bytes()
    weight = model.decoder.net[0].weight
    weight.register_hook(lambda g: g * float("nan") if model.step == 15 else g)  # batch 6, the last of a window: its loss is finite
    with pytest.raises(NonFiniteLossError, match=r"non-finite weights after a step of epoch 2 \(batches 4–6"):
        vaekit.fit(model, x, epochs=3, batch_size=32, quiet=True, out_dir=tmp_path, log_every=3)
    assert all(torch.isfinite(p).all() for p in model.parameters()) and model.step == 13
    assert (tmp_path / CHECKPOINT_FILE).read_bytes() == saved


def test_early_stopping_and_best_model(tmp_path):
    class WorseOnValidation:
        def __init__(self, inner):
            self.inner = inner

        def __call__(self, model, x, y=None):
            out = dict(self.inner(model, x, y))
            if not model.training:  # validation loss rises every epoch
                out["loss"] = out["loss"] * 0 + model.step
            return out

    x = digits(128)
    model = tiny_model()
    model.objective = WorseOnValidation(model.objective)
    result = vaekit.fit(model, x[:96], x[96:], epochs=10, batch_size=32, patience=2, quiet=True, out_dir=tmp_path)
    assert result.stopped_early and len(result.history) == 3 and result.best_epoch == 1
    best = vaekit.load(tmp_path)
    for (k, a), b in zip(best.state_dict().items(), model.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)  # fit hands back the best model


def test_dynamic_binarisation_draws_new_binary_data_each_epoch():
    seen = []

    class Spy:
        def __init__(self, inner):
            self.inner = inner

        def __call__(self, model, x, y=None):
            if model.training:
                seen.append(x.clone())
            return self.inner(model, x, y)

    x = digits(32)
    model = tiny_model()
    model.objective = Spy(model.objective)
    vaekit.fit(model, x, epochs=2, batch_size=32, quiet=True, binarize_data="dynamic")
    assert len(seen) == 2
    for batch in seen:
        assert set(batch.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(seen[0].sum(0), seen[1].sum(0))


def test_metrics_and_files(tmp_path):
    x = digits(96)
    vaekit.fit(tiny_model(), x[:64], x[64:], epochs=2, batch_size=32, quiet=True, out_dir=tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert {"train/loss", "train/kl", "train/reconstruction", "val/loss", "samples_per_s"} <= set(records[0])
    assert {p.name for p in tmp_path.iterdir()} >= {"config.json", "model.safetensors", CHECKPOINT_FILE, "metrics.jsonl"}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.full((8, 1, 8, 8), float("nan")), "non-finite|NaN"),
        (torch.rand(8, 64), "shape"),
        (torch.rand(8, 1, 8, 8) * 3, r"\[0, 1\]"),
        (torch.rand(0, 1, 8, 8), "empty"),
    ],
)
def test_bad_training_data_is_refused(bad, message):
    with pytest.raises(DataError, match=message):
        vaekit.fit(tiny_model(), bad, epochs=1, quiet=True)


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(patience=0), "patience must be an integer ≥ 1"),
        (dict(patience=-1), "patience must be an integer ≥ 1"),
        (dict(patience="3"), "patience must be an integer ≥ 1"),
        (dict(patience=1.5), "patience must be an integer ≥ 1"),
        (dict(patience=2, val=None), "pass val, or drop patience"),
        (dict(epochs=None), "epochs must be a positive integer"),
        (dict(epochs=float("inf")), "epochs must be a positive integer"),
        (dict(batch_size=float("nan")), "batch_size must be a positive integer"),
        (dict(lr=float("inf")), "lr must be a finite number > 0"),
        (dict(lr="1e-3"), "lr must be a finite number > 0"),
        (dict(weight_decay=-1.0), "weight_decay must be a finite number ≥ 0"),
        (dict(seed=1.5), "seed must be an integer"),
    ],
)
def test_bad_arguments_are_one_config_error_before_anything_is_written(tmp_path, bad, message):
    """Each bad argument is a one-line ConfigError naming it and what it takes, and the run folder is not created
    (patience=0 used to stop every run after one epoch, patience="3" to fail with a TypeError after writing
    metrics.jsonl, lr=inf to write it before a NonFiniteLossError, and the others to raise torch's TypeErrors)."""
    from vaekit.errors import ConfigError

    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    settings = {"val": x[:8], "epochs": 2, **bad}
    with pytest.raises(ConfigError, match=message) as error:
        vaekit.fit(tiny_model(), x, batch_size=settings.pop("batch_size", 16), quiet=True, out_dir=tmp_path / "run", **settings)
    assert len(str(error.value).splitlines()) == 1 and not (tmp_path / "run").exists()


def test_whole_number_floats_and_numpy_integers_are_accepted_as_counts():
    """epochs=2.0, batch_size=np.int64(16), seed=np.int64(3) train as 2, 16 and 3 (they passed the old check and then
    failed in range() and torch.manual_seed)."""
    import numpy as np

    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    a = vaekit.fit(tiny_model(), x, epochs=2.0, batch_size=np.int64(16), seed=np.int64(3), quiet=True)
    b = vaekit.fit(tiny_model(), x, epochs=2, batch_size=16, seed=3, quiet=True)
    assert len(a.history) == 2 and all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())


def test_fewer_training_examples_than_processes_is_a_config_error(monkeypatch, tmp_path):
    """3 examples for 4 processes leave each an empty shard: a one-line ConfigError saying so before anything is
    written (it was a ZeroDivisionError); the process group is a stand-in, no processes are started."""
    import vaekit.train.trainer as trainer
    from vaekit.errors import ConfigError
    from vaekit.train.distributed import ProcessGroup

    monkeypatch.setattr(trainer, "process_group_from_env", lambda device: ProcessGroup(rank=0, world_size=4))
    with pytest.raises(ConfigError, match="3 examples, fewer than the 4 training processes"):
        vaekit.fit(tiny_model(), torch.rand(3, 1, 8, 8), epochs=1, quiet=True, out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    script = textwrap.dedent(
        f"""
        import torch, vaekit
        torch.manual_seed(0)
        model = vaekit.create("vae", input_shape=(1, 8, 8), latent_dim=3, hidden_dims=(64,), arch="mlp")
        x = vaekit.data.load_digits("train").x
        vaekit.fit(model, x, epochs=1000, batch_size=16, quiet=True, out_dir={str(tmp_path)!r})
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    checkpoint = tmp_path / CHECKPOINT_FILE
    try:
        deadline = time.time() + 240  # generous: CI machines can be loaded
        while time.time() < deadline:
            lines = (tmp_path / "metrics.jsonl").read_text().splitlines() if (tmp_path / "metrics.jsonl").exists() else []
            if len(lines) >= 2:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the training subprocess wrote no checkpoint in 60 s")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    done = len((tmp_path / "metrics.jsonl").read_text().splitlines())
    model = tiny_model()
    model = vaekit.create("vae", input_shape=(1, 8, 8), latent_dim=3, hidden_dims=(64,), arch="mlp")
    result = vaekit.fit(model, digits(1437), epochs=done + 1, batch_size=16, quiet=True, out_dir=tmp_path)
    epochs = [r["epoch"] for r in result.history]
    assert epochs == list(range(1, done + 2))  # nothing lost but the epoch in progress
    assert checkpoint.exists()


def test_damaged_checkpoint_gives_a_clear_error(tmp_path):
    x = digits(64)
    vaekit.fit(tiny_model(), x, epochs=1, batch_size=32, quiet=True, out_dir=tmp_path)
    path = tmp_path / CHECKPOINT_FILE
    intact = path.read_bytes()
    path.write_bytes(intact[:100])
    with pytest.raises(CheckpointError, match="truncated or tampered"):
        vaekit.fit(tiny_model(), x, epochs=2, quiet=True, out_dir=tmp_path)
    flipped = bytearray(intact)
    flipped[-5] ^= 0x55  # inside the tensor data: the header still parses
    path.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="integrity check"):
        vaekit.fit(tiny_model(), x, epochs=2, quiet=True, out_dir=tmp_path)


def test_fit_records_the_training_set_size_for_beta_tc():
    torch.manual_seed(0)
    model = vaekit.create("beta_tc_vae", input_shape=(1, 8, 8), latent_dim=3, hidden_dims=(16,), arch="mlp")
    assert model.dataset_size is None
    vaekit.fit(model, digits(200), epochs=1, batch_size=50, quiet=True)
    assert model.dataset_size == 200  # the N of the minibatch-weighted estimator


def test_kl_warm_up_advances_with_the_steps_and_validation_uses_its_end(tmp_path):
    x = digits(256)
    model = tiny_model(warmup_steps=1000)
    result = vaekit.fit(model, x[:192], x[192:], epochs=2, batch_size=32, quiet=True)
    assert model.step == 12
    last = result.history[-1]
    # training: loss = reconstruction + β_t KL with β_t = t/1000 < 1; validation: β = 1, the ELBO itself
    assert last["train/kl"] > 0.1 and last["train/loss"] < -last["train/elbo"] - 0.5 * last["train/kl"]
    for record in result.history:
        assert record["val/loss"] == pytest.approx(-record["val/elbo"], rel=1e-6)
    model.train()
    model.step = 250
    out = model.loss(x[:64])
    torch.testing.assert_close(out["loss"], out["reconstruction"] + 0.25 * out["kl"])


def test_a_resumed_run_keeps_its_early_stop_and_takes_the_new_learning_rate(tmp_path):
    class Constant:  # validation never improves after epoch 1
        def __init__(self, inner):
            self.inner = inner

        def __call__(self, model, x, y=None):
            out = dict(self.inner(model, x, y))
            if not model.training:
                out["loss"] = out["loss"] * 0
            return out

    x = digits(128)
    model = tiny_model()
    model.objective = Constant(model.objective)
    first = vaekit.fit(model, x[:96], x[96:], epochs=10, batch_size=32, patience=2, quiet=True, out_dir=tmp_path)
    assert first.stopped_early and len(first.history) == 3
    again = tiny_model()
    again.objective = Constant(again.objective)
    second = vaekit.fit(again, x[:96], x[96:], epochs=20, batch_size=32, patience=2, quiet=True, out_dir=tmp_path)
    assert second.stopped_early and len(second.history) == 3  # nothing more was trained

    other = tmp_path / "lr"
    vaekit.fit(tiny_model(), x, epochs=1, batch_size=32, quiet=True, out_dir=other, lr=1e-3)
    seen = []
    resumed = tiny_model()
    original_step = torch.optim.Adam.step

    def spy(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return original_step(self, *args, **kwargs)

    torch.optim.Adam.step = spy
    try:
        vaekit.fit(resumed, x, epochs=2, batch_size=32, quiet=True, out_dir=other, lr=5e-4)
    finally:
        torch.optim.Adam.step = original_step
    assert seen and set(seen) == {5e-4}


def test_a_checkpoint_without_a_digest_resumes_with_a_warning(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    x = torch.rand(64, 6)
    model = vaekit.create("vae", input_shape=(6,), latent_dim=2, hidden_dims=(8,))
    vaekit.fit(model, x, epochs=1, batch_size=32, out_dir=tmp_path, quiet=True)
    path = tmp_path / "checkpoint.safetensors"
    with safe_open(str(path), framework="pt") as f:
        metadata = {k: v for k, v in f.metadata().items() if k != "sha256"}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    save_file(tensors, str(path), metadata=metadata)  # as a vaekit from before digests wrote it
    with pytest.warns(UserWarning, match="no integrity digest"):
        result = vaekit.fit(model, x, epochs=2, batch_size=32, out_dir=tmp_path, quiet=True)
    assert len(result.history) == 2
