"""`vaekit fit-sampler` and `vaekit sample --sampler` end to end on a tiny autoencoder run."""

import json
import shutil

import pytest
import torch
from PIL import Image

import vaekit
from vaekit.cli import main

TINY = ["--data", "digits", "--arch", "mlp", "--epochs", "1", "--latent-dim", "3", "--hidden-dims", "16", "--nll-samples", "5", "--quiet"]


@pytest.fixture(scope="module")
def ae_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "ae"
    assert main(["train", "ae", *TINY, "--out", str(out)]) == 0
    return out


def one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"vaekit {command}: error:"), err
    return err[0]


def snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_fit_sampler_gmm_then_sample(ae_run, tmp_path, capsys):
    assert main(["fit-sampler", str(ae_run), "--sampler", "gmm", "--components", "3", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["kind"] == "gmm" and result["components"] == 3 and result["latent_dim"] == 3
    # the run's own split: digits' 1437 training images, 10% held out for validation as `vaekit train` did
    assert result["num_codes"] == 1293 and result["num_held_out"] == 144
    assert result["log_likelihood_held_out"] < result["log_likelihood_train"] + 1
    assert result["files"]["weights"] == str(ae_run / "sampler_gmm.safetensors")
    out = tmp_path / "gmm.png"
    assert main(["sample", str(ae_run), "--sampler", "gmm", "-n", "16", "-o", str(out)]) == 0
    with Image.open(out) as image:
        assert image.format == "PNG"
    sampler = vaekit.samplers.load(ae_run, kind="gmm")
    assert sampler.sample(16, seed=0).shape == (16, 1, 8, 8)


def test_fit_sampler_flow(ae_run, tmp_path, capsys):
    assert main(["fit-sampler", str(ae_run), "--sampler", "flow", "--epochs", "2", "--limit", "300", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["kind"] == "flow" and result["num_codes"] == 300 and result["epochs_run"] <= 2
    assert result["params"]["flow"] == "maf" and (ae_run / "sampler_flow.safetensors").is_file()
    assert main(["sample", str(ae_run), "--sampler", "flow", "-n", "4", "-o", str(tmp_path / "flow.png")]) == 0


def test_sample_of_an_autoencoder_needs_a_fitted_sampler(ae_run, tmp_path, capsys):
    out = tmp_path / "prior.png"
    assert main(["sample", str(ae_run), "-o", str(out)]) == 2
    line = one_error_line(capsys, "sample")
    assert "no prior" in line and "vaekit fit-sampler" in line and not out.exists()


def test_a_sampler_from_another_run_is_refused(ae_run, tmp_path, capsys):
    assert main(["fit-sampler", str(ae_run), "--sampler", "gmm", "--components", "2", "--quiet"]) == 0
    capsys.readouterr()
    other = tmp_path / "other"
    shutil.copytree(ae_run, other)
    config = json.loads((other / "config.json").read_text())
    torch.manual_seed(123)
    retrained = vaekit.create(config["model"], input_shape=tuple(config["input_shape"]),
                              **{k: v for k, v in config.items() if k not in ("model", "options", "vaekit_version", "input_shape")})
    retrained.save(other)  # same architecture, other weights: the copied sampler belongs to ae_run
    before = snapshot(other)
    out = tmp_path / "s.png"
    assert main(["sample", str(other), "--sampler", "gmm", "-o", str(out)]) == 2
    line = one_error_line(capsys, "sample")
    assert "fitted to another model" in line and "vaekit fit-sampler" in line
    assert not out.exists() and snapshot(other) == before


def test_bad_flags_write_nothing(ae_run, capsys):
    before = snapshot(ae_run)
    assert main(["fit-sampler", str(ae_run), "--sampler", "flow", "--components", "3"]) == 2
    assert "--components applies to --sampler gmm" in one_error_line(capsys, "fit-sampler")
    assert main(["fit-sampler", str(ae_run), "--sampler", "gmm", "--components", "5000", "--quiet"]) == 2
    assert "at least 5000 codes" in one_error_line(capsys, "fit-sampler")
    assert snapshot(ae_run) == before


def test_conditional_runs_are_refused(tmp_path, capsys):
    run = tmp_path / "cvae"
    vaekit.create("vae", input_shape=(1, 8, 8), latent_dim=2, hidden_dims=(8,), arch="mlp", num_classes=10).save(run)
    (run / "train.yaml").write_text("data: digits\n")
    assert main(["fit-sampler", str(run), "--sampler", "gmm"]) == 2
    assert "conditional" in one_error_line(capsys, "fit-sampler")
    assert not any(p.name.startswith("sampler") for p in run.iterdir())


def test_a_run_without_a_decoder_is_refused(tmp_path, capsys):
    run = tmp_path / "classifier"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"kind": "classifier", "input_shape": [1, 8, 8], "num_classes": 10}))
    before = snapshot(run)
    assert main(["sample", str(run), "-o", str(tmp_path / "s.png")]) == 2
    assert "has no decoder" in one_error_line(capsys, "sample")
    assert main(["fit-sampler", str(run), "--sampler", "gmm"]) == 2
    assert "has no decoder" in one_error_line(capsys, "fit-sampler")
    assert snapshot(run) == before and not (tmp_path / "s.png").exists()
