"""`vaekit train-classifier` and `vaekit sample-quality`: the JSON they print, and one clear line for every bad input."""

import json
import shutil

import numpy as np
import pytest
import torch

import vaekit
from vaekit.cli import main
from vaekit.eval.sample_quality import SAMPLE_QUALITY_KEYS
from vaekit.models import FeatureClassifier, classifier_sha256, save_classifier

TINY_CLF = ["--data", "digits", "--epochs", "3", "--channels", "4,8", "--hidden-dims", "16", "--quiet"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("measurement")
    assert main(["train-classifier", *TINY_CLF, "--out", str(root / "clf")]) == 0
    for name in ("vae", "ae"):  # untrained models do: the scores only need samples of the right shape
        torch.manual_seed(0)
        vaekit.create(name, input_shape=(1, 8, 8), latent_dim=2, arch="mlp", hidden_dims=(16,)).save(root / name)
        (root / name / "train.yaml").write_text("model: " + name + "\ndata: digits\n")  # the run's data, as `vaekit train` records it
    return root


def last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"vaekit {command}: error:"), err
    return err[0]


def test_train_classifier_prints_accuracy_and_the_sha256_it_records(runs, tmp_path, capsys):
    out = tmp_path / "clf"
    assert main(["train-classifier", *[a for a in TINY_CLF if a != "--quiet"], "--out", str(out)]) == 0
    result = last_json(capsys)  # progress and epoch lines go to stderr: stdout is the JSON alone
    clf = vaekit.load_classifier(out)
    assert result["sha256"] == classifier_sha256(clf) == json.loads((out / "config.json").read_text())["weights_sha256"]
    assert result["sha256"] == classifier_sha256(vaekit.load_classifier(runs / "clf"))  # fixed seed: the same weights
    assert result["split"] == "test" and result["num_eval"] == 360 and 0.0 <= result["accuracy"] <= 1.0
    assert json.loads((out / "metrics.json").read_text())["accuracy"] == result["accuracy"]
    assert {"model.safetensors", "config.json", "metrics.json", "metrics.jsonl", "train.yaml"} <= {p.name for p in out.iterdir()}


def test_sample_quality_prints_every_score_and_the_classifier(runs, capsys):
    args = ["sample-quality", str(runs / "vae"), "--classifier", str(runs / "clf"), "-n", "60", "--quiet"]
    assert main(args) == 0
    result = last_json(capsys)
    assert set(SAMPLE_QUALITY_KEYS) <= set(result) and result["n"] == 60 and result["n_reference"] == 60
    assert result["classifier_sha256"] == classifier_sha256(vaekit.load_classifier(runs / "clf"))
    assert result["split"] == "test" and result["sampler"] == "prior" and result["fd"] > 0
    assert main(args) == 0 and last_json(capsys)["fd"] == result["fd"]  # seeded samples and subsets
    import json

    assert json.loads((runs / "vae" / "sample_quality.json").read_text())["fd"] == result["fd"]  # what `vaekit report` shows


def test_a_classifier_for_other_images_is_refused_naming_both_shapes(runs, tmp_path, capsys):
    save_classifier(FeatureClassifier((1, 12, 12), 10, channels=(2,), hidden_dims=(4,)), tmp_path / "clf12")
    assert main(["sample-quality", str(runs / "vae"), "--classifier", str(tmp_path / "clf12"), "-n", "20"]) == 2
    line = one_error_line(capsys, "sample-quality")
    assert "(1, 12, 12)" in line and "(1, 8, 8)" in line and "train-classifier" in line


def test_a_model_without_a_prior_or_a_fitted_sampler_is_told_to_fit_one(runs, capsys):
    assert main(["sample-quality", str(runs / "ae"), "--classifier", str(runs / "clf"), "-n", "20"]) == 2
    assert "vaekit fit-sampler" in one_error_line(capsys, "sample-quality")
    assert main(["sample-quality", str(runs / "ae"), "--classifier", str(runs / "clf"), "-n", "20", "--sampler", "gmm"]) == 2
    assert f"vaekit fit-sampler {runs / 'ae'} --sampler gmm" in one_error_line(capsys, "sample-quality")


def test_runs_and_classifiers_swapped_or_missing_are_one_line(runs, tmp_path, capsys):
    for run, clf, expected in [(runs / "vae", runs / "vae", "not a feature classifier"),
                               (runs / "clf", runs / "clf", "is a feature classifier, not a model run"),
                               (runs / "vae", tmp_path / "none", "train-classifier")]:
        assert main(["sample-quality", str(run), "--classifier", str(clf), "-n", "20"]) == 2
        assert expected in one_error_line(capsys, "sample-quality")


def test_train_classifier_refuses_bad_input_and_touches_nothing(runs, tmp_path, capsys):
    unlabelled = tmp_path / "x.npy"
    np.save(unlabelled, np.random.default_rng(0).random((30, 1, 8, 8)).astype(np.float32))
    assert main(["train-classifier", "--data", str(unlabelled), "--out", str(tmp_path / "new"), "--quiet"]) == 2
    assert "needs class labels" in one_error_line(capsys, "train-classifier") and not (tmp_path / "new").exists()

    before = {p.name: p.read_bytes() for p in (runs / "vae").iterdir() if p.is_file()}
    assert main(["train-classifier", *TINY_CLF, "--out", str(runs / "vae")]) == 2
    assert "not a feature classifier" in one_error_line(capsys, "train-classifier")
    assert {p.name: p.read_bytes() for p in (runs / "vae").iterdir() if p.is_file()} == before

    assert main(["train-classifier", *TINY_CLF, "--val-fraction", "1.5", "--out", str(tmp_path / "v")]) == 2
    assert "--val-fraction" in one_error_line(capsys, "train-classifier") and not (tmp_path / "v").exists()


def test_library_and_cli_give_the_same_scores(runs, capsys):
    assert main(["sample-quality", str(runs / "vae"), "--classifier", str(runs / "clf"), "-n", "40", "--seed", "3", "--quiet"]) == 0
    cli = last_json(capsys)
    model, clf = vaekit.load(runs / "vae"), vaekit.load_classifier(runs / "clf")
    torch.manual_seed(3)
    samples = model.sample(40)
    reference = vaekit.data.load_digits("test").x[:40]
    python = vaekit.eval.sample_quality(samples, reference, clf, seed=3)
    assert tuple(python) == SAMPLE_QUALITY_KEYS
    assert cli["classifier_sha256"] == python.pop("classifier_sha256")
    assert {k: cli[k] for k in python} == pytest.approx(python, rel=1e-9)


def test_a_fitted_gmm_sampler_is_scored(runs, tmp_path, capsys):
    run = tmp_path / "ae"
    shutil.copytree(runs / "ae", run)
    model = vaekit.load(run)
    vaekit.samplers.GaussianMixtureSampler(components=2, seed=0).fit(model, vaekit.data.load_digits("train").x[:200]).save(run)
    assert main(["sample-quality", str(run), "--classifier", str(runs / "clf"), "-n", "30", "--sampler", "gmm", "--quiet"]) == 0
    result = last_json(capsys)
    assert result["sampler"] == "gmm" and result["n"] == 30 and result["fd"] > 0


def test_the_reference_leaves_out_the_classes_the_run_was_trained_without(runs, tmp_path, capsys):
    run = tmp_path / "vae"
    shutil.copytree(runs / "vae", run)
    (run / "train.yaml").write_text("model: vae\ndata: digits\nexclude_classes: [8]\n")
    assert main(["sample-quality", str(run), "--classifier", str(runs / "clf"), "-n", "1000", "--quiet"]) == 0
    result = last_json(capsys)
    assert result["n_reference"] == int((vaekit.data.load_digits("test").y != 8).sum()) and "without classes [8]" in result["reference"]
