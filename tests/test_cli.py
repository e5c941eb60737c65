"""The `vaekit` command: the contract's subcommands, and one clear line for every user error."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

import vaekit
from vaekit.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--data", "digits", "--arch", "mlp", "--epochs", "2", "--latent-dim", "2", "--hidden-dims", "16", "--nll-samples", "5", "--quiet"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vaekit.cli", *args], capture_output=True, text=True, cwd=ROOT, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "vae"
    assert main(["train", "vae", *TINY, "--out", str(out)]) == 0
    return out


def test_train_writes_the_run_folder(trained):
    names = {p.name for p in trained.iterdir()}
    assert {"config.json", "model.safetensors", "checkpoint.safetensors", "metrics.jsonl", "train.yaml",
            "samples.png", "reconstructions.png", "curves.png", "metrics.json"} <= names
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["log_likelihood"] <= 0 and metrics["elbo"] <= metrics["log_likelihood"] + 5
    Image.open(trained / "samples.png").verify()


def test_eval_prints_json(trained, capsys):
    assert main(["eval", str(trained), "--nll-samples", "10", "--limit", "50", "--quiet"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["num_examples"] == 50 and "log_likelihood" in metrics and "active_units" in metrics


def test_a_warning_is_one_line_naming_the_command(trained, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    run_dir = tmp_path / "old"
    shutil.copytree(trained, run_dir)
    weights = run_dir / "model.safetensors"
    save_file(load_file(str(weights)), str(weights))  # no digest, as another tool would write it
    result = run("sample", str(run_dir), "-n", "4", "-o", str(tmp_path / "s.png"))
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vaekit sample: warning:") and "no integrity digest" in lines[0]


def test_sample_and_reconstruct_write_pngs(trained, tmp_path):
    assert main(["sample", str(trained), "-n", "16", "-o", str(tmp_path / "s.png")]) == 0
    assert main(["reconstruct", str(trained), "-n", "4", "-o", str(tmp_path / "r.png")]) == 0
    assert Image.open(tmp_path / "s.png").size[0] > 32 and Image.open(tmp_path / "r.png").size[1] > 32


def test_traverse_and_interpolate_draw_decoded_codes(trained, tmp_path, capsys):
    assert main(["traverse", str(trained), "--dims", "0,1", "--steps", "5", "-o", str(tmp_path / "t.png")]) == 0
    assert main(["interpolate", str(trained), "--pairs", "0,1,2,3", "--steps", "6", "-o", str(tmp_path / "i.png")]) == 0
    t, i = Image.open(tmp_path / "t.png"), Image.open(tmp_path / "i.png")
    assert t.size[0] > i.size[0] / 2 and t.size[1] > 32 and i.size[1] > 32
    assert main(["traverse", str(trained), "--dims", "7"]) == 2  # the latent has 2 dimensions
    assert "--dims must lie in 0..1" in capsys.readouterr().err


def test_models_lists_presets_and_options(capsys):
    assert main(["models"]) == 0
    text = capsys.readouterr().out
    assert "vae" in text and "--free-bits" in text
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert any(r["model"] == "vae" and "posterior" in r["options"] for r in rows)


def test_config_file_and_flags(tmp_path, capsys):
    config = tmp_path / "cfg.yaml"
    config.write_text("model: vae\ndata: digits\nepochs: 1\nlatent_dim: 2\narch: mlp\nhidden_dims: [8]\nnll_samples: 0\nquiet: true\noptions:\n  free_bits: 0.1\n")
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), "--epochs", "2", "--out", str(out), "--posterior", "full_covariance"]) == 0
    import yaml

    resolved = yaml.safe_load((out / "train.yaml").read_text())
    assert resolved["epochs"] == 2 and resolved["latent_dim"] == 2  # flags override the file
    assert resolved["options"]["free_bits"] == 0.1 and resolved["options"]["posterior"] == "full_covariance"
    # re-running into the same folder resumes instead of starting over
    assert main(["train", "--config", str(config), "--epochs", "3", "--out", str(out), "--posterior", "full_covariance"]) == 0
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]


@pytest.mark.parametrize("line, message", [
    ("lr: abc", "lr must be a number, got 'abc'"),
    ("epochs: -1", "epochs must be a positive integer, got -1"),
    ("hidden_dims: x", "hidden_dims must be comma-separated integers"),
    ("arch: foo", "arch must be one of auto, mlp, conv"),
    ("conditional: 3", "conditional must be true or false"),
    ("options: 5", "options must be a mapping"),
])
def test_config_values_are_checked_like_flags(tmp_path, capsys, line, message):
    config = tmp_path / "cfg.yaml"
    config.write_text(f"model: vae\ndata: digits\n{line}\n")
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing was started


def test_seed_fixes_the_initial_weights_and_a_refused_resume_keeps_train_yaml(tmp_path, capsys):
    common = ["--data", "digits", "--arch", "mlp", "--latent-dim", "2", "--hidden-dims", "8", "--epochs", "1",
              "--nll-samples", "0", "--quiet", "--seed", "3"]
    assert main(["train", "vae", *common, "--out", str(tmp_path / "a")]) == 0
    assert main(["train", "vae", *common, "--out", str(tmp_path / "b")]) == 0
    a, b = vaekit.load(tmp_path / "a").state_dict(), vaekit.load(tmp_path / "b").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    before = (tmp_path / "a" / "train.yaml").read_text()
    wider = [v if v != "8" else "16" for v in common]  # --hidden-dims 16: another model
    capsys.readouterr()
    assert main(["train", "vae", *wider, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert "hidden_dims: [8] in the run, [16] now" in err and "--fresh" in err and "--out" in err and "resume=False" not in err
    assert len(err.splitlines()) == 1
    assert (tmp_path / "a" / "train.yaml").read_text() == before


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "nonsense_model", "--data", "digits"], "unknown model 'nonsense_model'"),
        (["train", "vae", "--data", "digits", "--free-bit", "1"], "did you mean"),
        (["train", "vae", "--data", "/no/such/file.npy"], "no such file"),
        (["train", "vae", "--data", "digits", "--epoch", "3"], "did you mean --epochs"),
        (["train", "vae", "--data", "digits", "--beta", "4"], "unknown option 'beta'"),
        (["eval", "/no/such/run"], "config.json is missing"),
        (["train", "--config", "/no/such.yaml"], "does not exist"),
    ],
)
def test_user_errors_are_one_clear_line(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_subprocess_error_has_no_traceback():
    result = run("train", "vae", "--data", "digits", "--latent-dim", "-3", "--quiet")
    assert result.returncode == 2 and "latent_dim must be a positive integer" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_bad_data_range_is_one_clear_line(tmp_path, capsys):
    import numpy as np

    np.save(tmp_path / "big.npy", np.random.rand(20, 5).astype("float32") * 10)
    assert main(["train", "vae", "--data", str(tmp_path / "big.npy"), "--epochs", "1", "--likelihood", "bernoulli",
                 "--quiet", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "[0, 1]" in err and "--likelihood gaussian" in err and "Traceback" not in err
    # left to choose (--likelihood auto, the default), it picks the Gaussian for data outside [0, 1]
    assert main(["train", "vae", "--data", str(tmp_path / "big.npy"), "--epochs", "1", "--latent-dim", "2",
                 "--hidden-dims", "8", "--nll-samples", "0", "--out", str(tmp_path / "auto")]) == 0
    assert "likelihood: gaussian" in capsys.readouterr().err
    assert vaekit.load(tmp_path / "auto").config["likelihood"] == "gaussian"
    # the same data is fine with a Gaussian likelihood
    assert main(["train", "vae", "--data", str(tmp_path / "big.npy"), "--epochs", "1", "--likelihood", "gaussian",
                 "--latent-dim", "2", "--hidden-dims", "8", "--nll-samples", "0", "--quiet", "--out", str(tmp_path / "g")]) == 0


def test_deterministic_autoencoder_trains_and_evaluates(tmp_path, capsys):
    out = tmp_path / "ae"
    assert main(["train", "ae", "--data", "digits", "--arch", "mlp", "--epochs", "1", "--latent-dim", "4",
                 "--hidden-dims", "16", "--quiet", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert "mse" in metrics and "elbo" not in metrics and not (out / "samples.png").exists()  # no prior, no bound, no samples
    capsys.readouterr()
    assert main(["eval", str(out), "--limit", "20", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["num_examples"] == 20


def test_csv_table_with_labels_trains_a_conditional_model(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    rows = ["a,b,c,d,label"] + [",".join(f"{v:.3f}" for v in rng.random(4)) + f",{i % 3}" for i in range(60)]
    (tmp_path / "table.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "run"
    assert main(["train", "vae", "--data", str(tmp_path / "table.csv"), "--label-column", "label", "--conditional",
                 "--likelihood", "gaussian", "--epochs", "2", "--latent-dim", "2", "--hidden-dims", "8",
                 "--nll-samples", "3", "--quiet", "--out", str(out)]) == 0
    model = __import__("vaekit").load(out)
    assert model.num_classes == 3 and model.input_shape == (4,)
    assert json.loads((out / "metrics.json").read_text())["split"] == "val"


@pytest.mark.parametrize("preset, options", [
    ("iwae", ["--num-samples", "3", "--posterior", "iaf", "--flow-steps", "1"]),
    ("beta_vae", ["--capacity", "5", "--capacity-steps", "100"]),
    ("beta_tc_vae", ["--sampling", "mss"]),
    ("dip_vae", ["--weight", "5", "--dip-type", "ii"]),
    ("info_vae", ["--kernel", "imq"]),
    ("conditional_vae", []),
    ("auxiliary_vae", ["--aux-dim", "2"]),
])
def test_extension_presets_train_and_evaluate_from_the_command_line(tmp_path, capsys, preset, options):
    out = tmp_path / preset
    assert main(["train", preset, *options, "--data", "digits", "--arch", "mlp", "--latent-dim", "2", "--hidden-dims", "16",
                 "--epochs", "1", "--nll-samples", "10", "--quiet", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["eval", str(out), "--nll-samples", "10", "--quiet"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["log_likelihood"] <= 0 and metrics["elbo"] <= metrics["log_likelihood"] + 1.0
    assert vaekit.load(out).config["model"] == preset


def test_eval_of_a_bernoulli_model_without_its_settings_says_the_images_are_grey(tmp_path):
    """A model folder without train.yaml (written by model.save) cannot say whether it was trained on
    binarised images: `vaekit eval` scores grey levels, says so in one warning line and names --binarize static."""
    import vaekit

    model = vaekit.create("vae", input_shape=(1, 8, 8), latent_dim=2, arch="mlp", hidden_dims=(8,), likelihood="bernoulli")
    model.save(tmp_path / "saved")
    result = run("eval", str(tmp_path / "saved"), "--data", "digits", "--nll-samples", "5", "--limit", "20", "--quiet")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vaekit eval: warning:") and "--binarize static" in lines[0], lines
    assert json.loads(result.stdout)["binarize"] == "none"
    result = run("eval", str(tmp_path / "saved"), "--data", "digits", "--nll-samples", "5", "--limit", "20", "--quiet", "--binarize", "static")
    assert result.returncode == 0 and not result.stderr.strip() and json.loads(result.stdout)["binarize"] == "static"


def test_train_with_the_plateau_schedule_records_each_epochs_rate(tmp_path):
    out = tmp_path / "plateau"
    assert main(["train", "vae", *TINY, "--epochs", "4", "--schedule", "plateau", "--lr-patience", "0", "--out", str(out)]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 4 and records[0]["lr"] == 1e-3
    assert all(b["lr"] == pytest.approx(a["lr"]) or b["lr"] == pytest.approx(0.2 * a["lr"]) for a, b in zip(records, records[1:]))
    assert yaml.safe_load((out / "train.yaml").read_text())["lr_patience"] == 0
    bad = run("train", "vae", *TINY, "--schedule", "plateau", "--lr-patience", "-1", "--out", str(tmp_path / "never"))
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "--lr-patience" in bad.stderr
    assert not (tmp_path / "never").exists()


def test_train_with_ema_saves_the_averaged_weights_and_refuses_a_bad_decay(tmp_path):
    out = tmp_path / "ema"
    args = ["train", "vae", *TINY, "--epochs", "2", "--ema", "0.9", "--val-fraction", "0", "--out", str(out)]
    assert main(args) == 0
    assert yaml.safe_load((out / "train.yaml").read_text())["ema"] == 0.9
    checkpoint, saved = load_file(out / "checkpoint.safetensors"), load_file(out / "model.safetensors")
    assert set(saved) == {k[len("average."):] for k in checkpoint if k.startswith("average.")}
    for k, v in saved.items():  # without validation the model is the last epoch's average
        torch.testing.assert_close(v, checkpoint[f"average.{k}"], rtol=0, atol=0, msg=k)
    assert any(not torch.equal(v, checkpoint[f"model.{k}"]) for k, v in saved.items())
    for value in ("1.5", "0", "x"):
        bad = run("train", "vae", *TINY, "--ema", value, "--out", str(tmp_path / "never"))
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "--ema" in bad.stderr, bad.stderr
        assert not (tmp_path / "never").exists()
