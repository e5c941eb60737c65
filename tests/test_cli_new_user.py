"""What a new user trying every command met (audit of 2026-11): each case is one clear line,
nothing written before the arguments are checked, and defaults that train well."""

import json
import os
import stat

import numpy as np
import pytest
import yaml
from PIL import Image

import vaekit
from vaekit.cli import main
from vaekit.cli.training import _collapse_warning

TINY = ["--data", "digits", "--arch", "mlp", "--epochs", "2", "--latent-dim", "2", "--hidden-dims", "16", "--nll-samples", "5", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "vae"
    assert main(["train", "vae", *TINY, "--out", str(out)]) == 0
    return out


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


# -- nothing written before the arguments are checked -------------------------------------
def test_a_failed_train_leaves_nothing_and_does_not_block_the_next(tmp_path, capsys):
    out = tmp_path / "run"
    bad = tmp_path / "bad.npy"
    np.save(bad, np.full((20, 4), np.nan))
    assert main(["train", "vae", "--data", str(bad), "--out", str(out), "--quiet"]) == 2
    assert "NaN" in one_line_error(capsys) or "nan" in capsys.readouterr().err.lower()
    assert not out.exists()
    assert main(["train", "not_a_model", "--data", "digits", "--out", str(out)]) == 2
    assert "unknown model 'not_a_model'" in one_line_error(capsys)  # its own message, not "holds a run of"
    assert main(["train", "vae", *TINY, "--epochs", "1", "--out", str(out)]) == 0


def test_a_failure_inside_fit_before_any_epoch_removes_what_train_wrote(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"

    def refuse(*args, **kwargs):
        raise vaekit.ConfigError("refused by the test")

    monkeypatch.setattr(vaekit, "fit", refuse)
    assert main(["train", "vae", *TINY, "--out", str(out)]) == 2
    assert "refused by the test" in one_line_error(capsys)
    assert not out.exists()


@pytest.mark.parametrize("clip", ["-1", "0", "inf"])
def test_grad_clip_must_be_positive(tmp_path, capsys, clip):
    assert main(["train", "vae", *TINY, "--grad-clip", clip, "--out", str(tmp_path / "r")]) == 2
    assert "--grad-clip must be a positive number" in one_line_error(capsys)
    assert not (tmp_path / "r").exists()


# -- clear errors ----------------------------------------------------------------------------
def test_out_of_memory_is_a_user_error(tmp_path, capsys):
    assert main(["train", "vae", *TINY, "--latent-dim", "100000000000", "--hidden-dims", "512", "--out", str(tmp_path / "r")]) == 2
    err = one_line_error(capsys)
    assert "out of memory" in err and "GiB" in err and "--latent-dim" in err
    assert not (tmp_path / "r").exists()


def test_out_paths_that_cannot_be_a_folder_are_named(tmp_path, capsys):
    a_file = tmp_path / "existing.csv"
    a_file.write_text("a,b\n")
    assert main(["train", "vae", *TINY, "--out", str(a_file)]) == 2
    assert f"--out {a_file} is a file" in one_line_error(capsys)
    assert main(["train", "vae", *TINY, "--out", str(a_file / "sub")]) == 2
    assert "is a file, so no folder can be made under it" in one_line_error(capsys)
    assert a_file.read_text() == "a,b\n"


def test_unwritable_out_is_named(tmp_path, capsys, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    if os.geteuid() == 0:  # root may write anywhere: let os.access answer as it would for a user
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(locked) else real_access(path, mode))
    assert main(["train", "vae", *TINY, "--out", str(locked / "run")]) == 2
    assert f"no permission to write in {locked}" in one_line_error(capsys)


def test_a_resume_with_other_options_names_them_and_the_cli_fix(trained, capsys):
    assert main(["train", "vae", *[v if v != "16" else "32" for v in TINY], "--out", str(trained)]) == 2
    err = one_line_error(capsys)
    assert "hidden_dims: [16] in the run, [32] now" in err and "--fresh" in err and "--out" in err and "resume=False" not in err


# -- flags are never silently ignored --------------------------------------------------------
def test_sample_label_on_an_unconditional_model_is_refused(trained, tmp_path, capsys):
    assert main(["sample", str(trained), "--label", "3", "-o", str(tmp_path / "s.png")]) == 2
    assert "--label" in one_line_error(capsys) and not (tmp_path / "s.png").exists()


def test_image_size_is_refused_for_data_that_is_not_an_image_folder(tmp_path, capsys):
    assert main(["train", "vae", *TINY, "--image-size", "16,16", "--out", str(tmp_path / "r")]) == 2
    assert "--image-size" in one_line_error(capsys) and not (tmp_path / "r").exists()


def test_fewer_epochs_than_a_run_has_are_refused_and_equal_says_so(trained, capsys):
    assert main(["train", "vae", *TINY, "--epochs", "1", "--out", str(trained)]) == 2
    assert "already trained 2 epochs" in one_line_error(capsys)
    assert main(["train", "vae", *TINY[:-1], "--out", str(trained)]) == 0  # --epochs 2 again: not quiet
    assert "nothing to train" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["sample"], ["reconstruct"], ["traverse"], ["interpolate"]])
def test_image_outputs_must_be_png(trained, tmp_path, capsys, command):
    assert main([*command, str(trained), "-o", str(tmp_path / "s.txt")]) == 2
    assert ".png" in one_line_error(capsys) and not (tmp_path / "s.txt").exists()


# -- defaults that work for a new user -------------------------------------------------------
def test_digits_get_defaults_that_train_well(tmp_path):
    from vaekit.cli._common import DATA_DEFAULTS, TRAIN_DEFAULTS

    assert main(["train", "vae", "--data", "digits", "--epochs", "1", "--nll-samples", "0", "--quiet", "--out", str(tmp_path / "r")]) == 0
    saved = yaml.safe_load((tmp_path / "r" / "train.yaml").read_text())
    for key, value in DATA_DEFAULTS["digits"].items():
        if key != "epochs":
            assert saved[key] == value and value != TRAIN_DEFAULTS[key]
    assert main(["train", "vae", "--data", "digits", "--arch", "conv", "--epochs", "1", "--nll-samples", "0", "--quiet",
                 "--out", str(tmp_path / "flags")]) == 0  # a flag still overrides the data set's default
    assert yaml.safe_load((tmp_path / "flags" / "train.yaml").read_text())["arch"] == "conv"


def test_collapse_warning():
    assert _collapse_warning({"kl": 0.36, "active_units": 3}) is not None
    assert "--warmup-steps" in _collapse_warning({"kl": 12.0, "active_units": 0})
    assert _collapse_warning({"kl": 12.0, "active_units": 5}) is None
    assert _collapse_warning({"mse": 1.0}) is None  # deterministic autoencoders have no KL


def test_a_collapsed_run_is_reported_in_one_line(tmp_path, capsys):
    # β = 50 drives every code to the prior within an epoch
    assert main(["train", "beta_vae", *TINY, "--beta", "50", "--out", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    assert "posterior has collapsed" in err and "--free-bits" in err


def test_post_training_log_likelihood_is_proportionate(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "vae", "--data", "digits", "--epochs", "1", "--nll-samples", "50", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["log_likelihood_samples"] == 50
    assert 100 <= metrics["log_likelihood_examples"] <= metrics["num_examples"]
    assert f"on {metrics['log_likelihood_examples']} of {metrics['num_examples']}" in err and "vaekit eval" in err


def test_training_without_a_validation_split(tmp_path, capsys):
    one_row = tmp_path / "one.npy"
    np.save(one_row, np.random.default_rng(0).random((1, 6)).astype(np.float32))
    out = tmp_path / "r"
    assert main(["train", "vae", "--data", str(one_row), "--val-fraction", "0", "--epochs", "2", "--nll-samples", "0",
                 "--quiet", "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["split"] == "train"
    capsys.readouterr()
    assert main(["train", "vae", "--data", str(one_row), "--val-fraction", "0", "--patience", "2", "--out", str(tmp_path / "p")]) == 2
    assert "--patience" in one_line_error(capsys)


def test_vector_data_gets_tables_and_marginals_not_image_grids(tmp_path):
    rng = np.random.default_rng(0)
    table = tmp_path / "t.csv"
    rows = rng.normal(size=(200, 3)) * [1.0, 5.0, 0.1]
    table.write_text("a,b,c\n" + "\n".join(",".join(f"{v:.5f}" for v in r) for r in rows) + "\n")
    out = tmp_path / "r"
    assert main(["train", "vae", "--data", str(table), "--epochs", "2", "--nll-samples", "0", "--quiet", "--out", str(out)]) == 0
    assert not (out / "samples.png").exists()
    samples = np.loadtxt(out / "samples.csv", delimiter=",", skiprows=1)
    assert samples.ndim == 2 and samples.shape[1] == 3
    assert Image.open(out / "marginals.png").size[0] > 200
    assert main(["sample", str(out), "-n", "10", "-o", str(tmp_path / "s.csv")]) == 0
    assert np.loadtxt(tmp_path / "s.csv", delimiter=",", skiprows=1).shape == (10, 3)
    assert main(["sample", str(out), "-o", str(tmp_path / "m.png")]) == 0


def test_denoise_compares_like_with_like_on_a_binarised_run(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "vae", "--data", "digits", "--binarize", "dynamic", "--epochs", "20", "--nll-samples", "0",
                 "--quiet", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["denoise", str(out), "--noise", "gaussian:0.3", "--quiet", "--limit", "200"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "grey" in report["compared"]
    assert report["psnr_denoised"] > report["psnr_noisy"]  # it was 14.06 -> 10.07 dB against binarised targets
