"""The callback protocol of ``vaekit.fit``: which hooks run, when, with what, and on failure."""

import json

import pytest
import torch

import vaekit
from vaekit.errors import ConfigError, NonFiniteLossError
from vaekit.train import trainer
from vaekit.train.callbacks import Callback, flatten_params
from vaekit.train.distributed import ProcessGroup


def tiny_model(seed: int = 0):
    torch.manual_seed(seed)
    return vaekit.create("vae", input_shape=(1, 8, 8), latent_dim=3, hidden_dims=(16,), arch="mlp")


def digits(n: int = 160):
    return vaekit.data.load_digits("train").x[:n]


class Recorder(Callback):
    def __init__(self):
        self.calls = []

    def on_fit_start(self, model, info):
        self.calls.append(("start", dict(info)))

    def on_epoch_end(self, epoch, record, model):
        self.calls.append(("epoch", epoch, dict(record)))

    def on_fit_end(self, result):
        self.calls.append(("end", result, result.error))


class Boom(ValueError):
    pass


class FailAt(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, epoch, record, model):
        if epoch == self.epoch:
            raise Boom(f"callback failed at epoch {epoch}")


def test_hooks_see_start_every_epoch_record_and_end(tmp_path):
    x = digits()
    recorder = Recorder()
    result = vaekit.fit(tiny_model(), x[:128], x[128:], epochs=3, batch_size=32, lr=2e-3, quiet=True, out_dir=tmp_path,
                        callbacks=[recorder])
    kinds = [c[0] for c in recorder.calls]
    assert kinds == ["start", "epoch", "epoch", "epoch", "end"]
    info = recorder.calls[0][1]
    assert (info["epochs"], info["batch_size"], info["lr"], info["start_epoch"], info["num_train"], info["num_val"]) == (3, 32, 2e-3, 0, 128, 32)
    torch.testing.assert_close(info["examples"].x, x[128:])  # the validation examples, for reconstructions
    # each record is the epoch's line of metrics.jsonl, handed over as it was written
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [c[1] for c in recorder.calls[1:4]] == [1, 2, 3]
    assert [c[2] for c in recorder.calls[1:4]] == lines == result.history
    assert {"train/loss", "val/loss", "samples_per_s"} <= set(lines[0])
    assert recorder.calls[-1][1] is result and recorder.calls[-1][2] is None


def test_a_failing_epoch_still_ends_every_callback_with_the_error(tmp_path):
    recorder, after = Recorder(), Recorder()
    with pytest.raises(Boom, match="epoch 2"):
        vaekit.fit(tiny_model(), digits(), epochs=4, batch_size=32, quiet=True, out_dir=tmp_path, callbacks=[recorder, FailAt(2), after])
    for r in (recorder, after):
        assert r.calls[-1][0] == "end" and isinstance(r.calls[-1][2], Boom)
        assert [c[1] for c in r.calls if c[0] == "epoch"] == ([1, 2] if r is recorder else [1])
        assert [rec["epoch"] for rec in r.calls[-1][1].history] == [1, 2]  # the epochs that finished


def test_a_non_finite_loss_reaches_on_fit_end(tmp_path):
    model = tiny_model()
    weight = model.decoder.net[0].weight
    weight.register_hook(lambda g: g * float("nan") if model.step == 6 else g)  # epoch 2 of 5 steps
    recorder = Recorder()
    with pytest.raises(NonFiniteLossError):
        vaekit.fit(model, digits(), epochs=3, batch_size=32, quiet=True, log_every=1, callbacks=[recorder])
    assert [c[0] for c in recorder.calls] == ["start", "epoch", "end"]
    assert isinstance(recorder.calls[-1][2], NonFiniteLossError)


def test_a_failing_start_ends_the_callbacks_already_started():
    class FailStart(Callback):
        def on_fit_start(self, model, info):
            raise Boom("no tracking server")

    first, never = Recorder(), Recorder()
    with pytest.raises(Boom):
        vaekit.fit(tiny_model(), digits(64), epochs=1, batch_size=32, quiet=True, callbacks=[first, FailStart(), never])
    assert [c[0] for c in first.calls] == ["start", "end"] and isinstance(first.calls[-1][2], Boom)
    assert never.calls == []


def test_a_failing_on_fit_end_is_raised_after_the_others_ran():
    class FailEnd(Callback):
        def on_fit_end(self, result):
            raise Boom("could not upload")

    after = Recorder()
    with pytest.raises(Boom, match="upload"):
        vaekit.fit(tiny_model(), digits(64), epochs=1, batch_size=32, quiet=True, callbacks=[FailEnd(), after])
    assert after.calls[-1][0] == "end"


def test_resumed_runs_report_the_new_epochs_only(tmp_path):
    x = digits()
    vaekit.fit(tiny_model(), x, epochs=2, batch_size=32, quiet=True, out_dir=tmp_path)
    recorder = Recorder()
    vaekit.fit(tiny_model(), x, epochs=3, batch_size=32, quiet=True, out_dir=tmp_path, callbacks=[recorder])
    assert recorder.calls[0][1]["start_epoch"] == 2
    assert [c[1] for c in recorder.calls if c[0] == "epoch"] == [3]


class NotMain(ProcessGroup):
    """A process that is not rank 0 (without starting a process group: one process, its shard the whole set)."""

    @property
    def is_main(self) -> bool:
        return False


def test_callbacks_run_in_the_main_process_only(monkeypatch):
    monkeypatch.setattr(trainer, "process_group_from_env", lambda device: NotMain())
    recorder = Recorder()
    result = vaekit.fit(tiny_model(), digits(64), epochs=2, batch_size=32, quiet=True, callbacks=[recorder])
    assert len(result.history) == 2 and recorder.calls == []


def test_callbacks_must_be_callbacks():
    with pytest.raises(ConfigError, match="Callback instances"):
        vaekit.fit(tiny_model(), digits(64), epochs=1, quiet=True, callbacks=[print])


def test_flatten_params_nests_with_dots_and_keeps_lists_as_json():
    flat = flatten_params({"latent_dim": 2, "options": {"beta": 4.0, "inner": {"k": None}}, "hidden_dims": [16, 8]})
    assert flat == {"latent_dim": "2", "options.beta": "4.0", "options.inner.k": "None", "hidden_dims": "[16, 8]"}
