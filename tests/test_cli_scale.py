"""`vaekit train` options for speed and scale: --precision, --compile, --fast, --schedule, --stream, and their bad input."""

import json

import numpy as np
import pytest
import torch
import yaml

import vaekit
from vaekit.cli import main
from vaekit.train import precision as precision_module

TINY = ["--arch", "mlp", "--epochs", "2", "--latent-dim", "2", "--hidden-dims", "16", "--nll-samples", "0", "--quiet"]
TALKING = TINY[:-1]  # without --quiet: what train says about its choices


def _digits_file(tmp_path, compressed: bool = False):
    x = (vaekit.data.load_digits("train").x[:300].numpy() * 255).round().astype(np.uint8)[:, 0]
    if compressed:
        np.savez_compressed(tmp_path / "digits.npz", x=x)
        return tmp_path / "digits.npz"
    np.save(tmp_path / "digits.npy", x)
    return tmp_path / "digits.npy"


def _one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("vaekit train: error:")
    return lines[0]


def test_stream_trains_from_the_file_like_in_memory(tmp_path, capsys):
    """--stream reads the .npy batch by batch; without binarisation the weights equal the in-memory run's."""
    path = _digits_file(tmp_path)
    for name, extra in (("memory", []), ("stream", ["--stream"])):
        assert main(["train", "ae", "--data", str(path), *TALKING, "--out", str(tmp_path / name), *extra]) == 0
    assert "streaming" in capsys.readouterr().err
    a, b = (vaekit.load(tmp_path / name).state_dict() for name in ("memory", "stream"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    assert yaml.safe_load((tmp_path / "stream" / "train.yaml").read_text())["stream"] is True


@pytest.mark.parametrize("data, expected", [("digits", "--stream reads a memory-mapped .npy"),
                                            ("compressed", "np.savez")])
def test_stream_on_data_that_cannot_be_mapped_is_one_line_and_writes_nothing(tmp_path, capsys, data, expected):
    source = str(_digits_file(tmp_path, compressed=True)) if data == "compressed" else data
    assert main(["train", "vae", "--data", source, *TINY, "--stream", "--out", str(tmp_path / "run")]) == 2
    assert expected in _one_error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_image_size_for_a_streamed_array_is_refused(tmp_path, capsys):
    path = _digits_file(tmp_path)
    assert main(["train", "vae", "--data", str(path), *TINY, "--stream", "--image-size", "4,4", "--out", str(tmp_path / "run")]) == 2
    assert "not an image folder" in _one_error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_streaming_is_chosen_when_the_data_would_not_fit(tmp_path, capsys, monkeypatch):
    import vaekit.data.streaming as streaming

    path = _digits_file(tmp_path)
    monkeypatch.setattr(streaming, "available_memory_bytes", lambda: 1000)  # "free memory": 1 kB
    assert main(["train", "ae", "--data", str(path), *TALKING, "--out", str(tmp_path / "run")]) == 0
    assert "it would not fit in memory" in capsys.readouterr().err


def test_bf16_where_it_is_slow_is_one_warning_and_fp32(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(precision_module, "bf16_speedup", lambda device_type="cpu": 0.5)
    assert main(["train", "vae", "--data", "digits", *TINY, "--precision", "bf16", "--out", str(tmp_path / "run")]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "bf16" in line]
    assert len(warnings) == 1 and warnings[0].startswith("vaekit train: warning: bf16 would be slow")


def test_compile_without_a_compiler_is_one_line_and_the_checkpoint_is_intact(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert main(["train", "vae", "--data", "digits", *TINY, "--out", str(out)]) == 0
    before = (out / "checkpoint.safetensors").read_bytes()
    monkeypatch.setattr(precision_module.shutil, "which", lambda name: None)
    monkeypatch.delenv("CXX", raising=False)
    capsys.readouterr()
    args = ["train", "vae", "--data", "digits", *TINY, "--out", str(out), "--compile"]
    args[args.index("--epochs") + 1] = "4"
    assert main(args) == 2
    assert "C++ compiler" in _one_error_line(capsys)
    assert (out / "checkpoint.safetensors").read_bytes() == before


def test_fast_and_schedules_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "fast"
    assert main(["train", "vae", "--data", "digits", *TINY, "--fast", "--out", str(out)]) == 0
    settings = yaml.safe_load((out / "train.yaml").read_text())
    assert settings["fast"] is True
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["elapsed_s"] > 0  # 2 epochs → the recipe's 1
    used = json.loads((out / "metrics.json").read_text())["fit_settings"]
    assert used["fast"] and used["epochs"] == 1 and used["schedule"] == "cosine" and used["lr"] == pytest.approx(2e-3)
    capsys.readouterr()
    assert main(["train", "vae", "--data", "digits", *TINY, "--lr-warmup-epochs", "1", "--out", str(tmp_path / "x")]) == 2
    assert "--schedule cosine" in _one_error_line(capsys)
    assert main(["train", "vae", "--data", "digits", *TINY, "--schedule", "onecycle", "--out", str(tmp_path / "one")]) == 0


def test_eval_streams_a_file_and_scores_it_as_in_memory(tmp_path, capsys, monkeypatch):
    """`vaekit eval --stream` reads the run's .npy batch by batch, and automatically when it would not fit
    in memory; the metrics equal the in-memory evaluation's (same seed, same batches)."""
    import vaekit.data.streaming as streaming

    path = _digits_file(tmp_path)
    assert main(["train", "vae", "--data", str(path), *TINY, "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    outputs = {}
    for name, extra in (("memory", []), ("stream", ["--stream"])):
        assert main(["eval", str(tmp_path / "run"), "--nll-samples", "5", "--quiet", *extra]) == 0
        outputs[name] = json.loads(capsys.readouterr().out)
    monkeypatch.setattr(streaming, "available_memory_bytes", lambda: 1000)
    assert main(["eval", str(tmp_path / "run"), "--nll-samples", "5", "--quiet"]) == 0
    outputs["auto"] = json.loads(capsys.readouterr().out)
    assert "streamed" not in outputs["memory"] and outputs["stream"]["streamed"] and outputs["auto"]["streamed"]
    for name in ("stream", "auto"):
        for k in ("elbo", "kl", "mse", "log_likelihood", "active_units", "num_examples"):
            assert outputs[name][k] == pytest.approx(outputs["memory"][k], rel=1e-5), (name, k)


def test_eval_stream_on_a_built_in_data_set_is_one_line(tmp_path, capsys):
    path = _digits_file(tmp_path)
    assert main(["train", "vae", "--data", str(path), *TINY, "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "run"), "--data", "digits", "--stream", "--quiet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--stream reads a memory-mapped .npy" in lines[0]
