"""Bad and unusual input to every command (audit of the CLI contract): one line, exit 2, nothing
written or changed, and no flag silently ignored."""

import shutil

import pytest

from vaekit.cli import main

TINY = ["--data", "digits", "--arch", "mlp", "--epochs", "1", "--latent-dim", "3", "--hidden-dims", "16", "--nll-samples", "0", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "vae"
    assert main(["train", "vae", *TINY, "--out", str(out)]) == 0
    return out


def refused(capsys, *args: str) -> str:
    """The one line of a refused command (exit status 2, no traceback)."""
    capsys.readouterr()
    assert main(list(args)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and err.startswith("vaekit "), err
    return err


def test_a_train_yaml_that_is_not_a_mapping_is_a_damaged_file_not_an_internal_error(trained, tmp_path, capsys):
    """A train.yaml holding a list is named as damaged, with the fix, and exits 2."""
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "train.yaml").write_text("- a\n- b\n")
    err = refused(capsys, "eval", str(run), "--limit", "5", "--nll-samples", "0")
    assert "train.yaml is damaged" in err and "restore it" in err


def test_a_resume_that_fit_refuses_leaves_the_runs_train_yaml_as_it_was(trained, tmp_path, capsys):
    """Settings refused by fit on a resume must not overwrite the run's saved settings."""
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    before = (run / "train.yaml").read_bytes()
    assert "--lr-warmup-epochs" not in TINY
    err = refused(capsys, "train", "vae", *TINY[:5], "2", *TINY[6:], "--lr-warmup-epochs", "5", "--out", str(run))
    assert "lr_warmup_epochs" in err
    assert (run / "train.yaml").read_bytes() == before


def test_train_refuses_resume_and_fresh_together(tmp_path, capsys):
    """--resume and --fresh contradict each other: neither wins silently."""
    err = refused(capsys, "train", "vae", *TINY, "--resume", "--fresh", "--out", str(tmp_path / "r"))
    assert "--resume" in err and "--fresh" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("command, flags, message", [
    ("compress", ["--dims", "0"], "PCA needs"),
    ("classify", ["-k", "100000"], "exceeds"),
])
def test_a_refused_application_leaves_no_out_folder(trained, tmp_path, capsys, command, flags, message):
    """compress and classify create --out only once every argument has been used."""
    out = tmp_path / "out"
    err = refused(capsys, command, str(trained), "--limit", "20", "--fit-limit", "50", *flags, "--out", str(out), "--quiet")
    assert message in err and not out.exists()


def test_an_application_out_that_is_a_file_is_named_before_any_work(trained, tmp_path, capsys):
    """--out naming a file is refused with the fix, and the file is untouched."""
    a_file = tmp_path / "results.txt"
    a_file.write_text("keep")
    err = refused(capsys, "compress", str(trained), "--out", str(a_file), "--quiet")
    assert f"--out {a_file} is a file" in err and a_file.read_text() == "keep"


@pytest.mark.parametrize("fraction, message", [("7", "must lie in (0, 1)"), ("0.5", "drop --eval-fraction")])
def test_eval_fraction_is_checked_and_refused_for_data_with_a_test_split(trained, capsys, fraction, message):
    """An out-of-range --eval-fraction, or one for data that has a test split, is refused."""
    err = refused(capsys, "classify", str(trained), "--eval-fraction", fraction, "--quiet")
    assert message in err and not (trained / "classify").exists()


def test_anomaly_refuses_num_samples_with_the_reconstruction_score(trained, capsys):
    """--num-samples means nothing to --score reconstruction."""
    err = refused(capsys, "anomaly", str(trained), "--normal-class", "0", "--num-samples", "5", "--quiet")
    assert "--num-samples" in err and "--score elbo" in err and not (trained / "anomaly").exists()


@pytest.mark.parametrize("flags", [["--data", "fashion-mnist"], ["--limit", "3"], ["--binarize", "static"]])
def test_sample_refuses_data_flags_for_an_image_grid(trained, tmp_path, capsys, flags):
    """An image model's samples read no data: --data, --limit and --binarize are refused, not ignored."""
    err = refused(capsys, "sample", str(trained), *flags, "-o", str(tmp_path / "s.png"))
    assert f"drop {flags[0]}" in err and not (tmp_path / "s.png").exists()


@pytest.mark.parametrize("flags", [["--grid", "5"], ["--range", "2"], ["--manifold", "MANIFOLD"]])
def test_latent_map_refuses_manifold_flags_without_a_2d_latent_space(trained, tmp_path, capsys, flags):
    """--manifold, --grid and --range draw a 2-D latent space; with latent_dim 3 they are refused."""
    flags = [f if f != "MANIFOLD" else str(tmp_path / "m.png") for f in flags]
    err = refused(capsys, "latent-map", str(trained), *flags, "-o", str(tmp_path / "map.png"))
    assert flags[0] in err and "latent_dim 3" in err
    assert not (tmp_path / "map.png").exists() and not (tmp_path / "m.png").exists()


@pytest.mark.parametrize("flags, message", [(["--nll-samples", "5"], "--nll-samples"), (["--data-dir", "/tmp"], "--data-dir")])
def test_bench_refuses_flags_its_suite_does_not_use(tmp_path, capsys, flags, message):
    """The sprites suite reports no log p(x) and reads no Fashion-MNIST."""
    err = refused(capsys, "bench", "--suite", "sprites", "--quick", *flags, "--out", str(tmp_path / "b"))
    assert message in err and "drop" in err and not (tmp_path / "b").exists()


def test_train_classifier_refuses_an_infinite_learning_rate(tmp_path, capsys):
    """--lr inf is refused before training, not after an epoch of non-finite losses."""
    err = refused(capsys, "train-classifier", "--data", "digits", "--lr", "inf", "--out", str(tmp_path / "c"))
    assert "--lr must be a finite number > 0" in err and not (tmp_path / "c").exists()


def test_data_dir_is_refused_for_data_that_does_not_read_it(trained, tmp_path, capsys):
    """--data-dir locates Fashion-MNIST only: with the digits (training, or evaluating a run) it is named, not ignored."""
    err = refused(capsys, "train", "vae", *TINY, "--data-dir", str(tmp_path), "--out", str(tmp_path / "r"))
    assert "--data-dir" in err and "'digits' does not read it" in err
    assert not (tmp_path / "r").exists()
    err = refused(capsys, "eval", str(trained), "--data-dir", str(tmp_path), "--limit", "5", "--nll-samples", "0")
    assert "--data-dir" in err
