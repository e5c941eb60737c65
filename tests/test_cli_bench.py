"""`vaekit bench`: the three suites at the smallest budgets write their tables, resume instead of retraining, refuse bad input in one line.

Needs Fashion-MNIST under /usr/share/datasets/fashion-mnist (or $VAEKIT_DATA): without it these tests fail.
"""

import json

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

import vaekit
from vaekit.bench import make_plan
from vaekit.cli import main
from vaekit.data import load_fashion_mnist, static_binarize

TINY = ["--train-size", "300", "--test-size", "100", "--epochs", "1", "--threads", "1", "--quiet"]
FASHION = ["bench", "--suite", "fashion-mnist", "--quick", "--models", "vae,ae", "--nll-samples", "5", *TINY]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vaekit bench: error:"), err
    return err[0]


@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "fmnist"
    assert main([*FASHION, "--out", str(out)]) == 0
    return out


def test_fashion_suite_writes_the_table_and_json_with_every_column(fashion):
    table = (fashion / "fashion-mnist.md").read_text()
    for column in ("test log p(x)", "ELBO", "recon. MSE", "FD ↓", "precision ↑", "recall ↑", "active units", "codebook perplexity",
                   "cluster NMI", "train + measure (s)", "samples from"):
        assert f"| {column} |" in table
    assert "Command: `vaekit bench --suite fashion-mnist --quick --models vae,ae" in table and "load average" in table
    summary = json.loads((fashion / "fashion-mnist.json").read_text())
    vae, ae = summary["results"]["vae"][0], summary["results"]["ae"][0]
    assert summary["budget"]["train_size"] == 300 and summary["budget"]["nll_samples"] == 5
    assert vae["sample_source"] == "prior" and ae["sample_source"].startswith("GMM")
    assert ae["no_log_likelihood"] == "no prior p(z)" and "log_likelihood" not in ae
    assert '"—" for ae: no prior p(z)' in table
    assert vae["n"] == 100 and vae["fd"] >= 0 and 0 <= vae["precision"] <= 1


def test_fashion_numbers_follow_the_protocol(fashion):
    """Recomputed independently from the saved models: the first 100 test images binarised with seed 0, K = 5, seed 0."""
    x_test = static_binarize(load_fashion_mnist("test").x[:100], seed=0)
    summary = json.loads((fashion / "fashion-mnist.json").read_text())
    vae = vaekit.load(fashion / "vae" / "seed0")
    torch.manual_seed(0)
    assert summary["results"]["vae"][0]["log_likelihood"] == pytest.approx(float(vaekit.log_likelihood(vae, x_test, 5).mean()), abs=1e-4)
    ae = vaekit.load(fashion / "ae" / "seed0")
    with torch.no_grad():
        mse = float((ae.reconstruct(x_test) - x_test).pow(2).flatten(1).sum(1).mean())
    assert summary["results"]["ae"][0]["mse"] == pytest.approx(mse, rel=1e-5)
    assert json.loads((fashion / "vae" / "seed0" / "bench_run.json").read_text())["budget"]["epochs"] == 1


def test_a_rerun_skips_measured_models_without_retraining(fashion, capsys):
    files = [fashion / name / "seed0" / f for name in ("vae", "ae") for f in ("model.safetensors", "bench_result.json")]
    before = [f.stat().st_mtime_ns for f in files]
    capsys.readouterr()
    assert main([*FASHION, "--out", str(fashion)]) == 0
    captured = capsys.readouterr()
    assert captured.err.count(": skipped (done:") == 2 and "started" not in captured.err
    assert captured.out.startswith("**Every preset on binarised Fashion-MNIST") and "2 of 2 models were measured by an earlier" in captured.out
    assert [f.stat().st_mtime_ns for f in files] == before


def test_a_run_folder_trained_with_other_settings_is_refused_in_one_line(fashion, capsys):
    before = (fashion / "vae" / "seed0" / "bench_run.json").read_text()
    args = [*FASHION, "--out", str(fashion)]
    args[args.index("--epochs") + 1] = "2"
    assert main(args) == 2
    line = one_error_line(capsys)
    assert "trained with other settings" in line and "epochs: 1 then, 2 now" in line
    assert (fashion / "vae" / "seed0" / "bench_run.json").read_text() == before


@pytest.mark.parametrize("suite", ["fashion-mnist", "sprites", "apps"])
def test_an_unknown_model_is_refused_in_one_line_before_anything_is_written(suite, tmp_path, capsys):
    assert main(["bench", "--suite", suite, "--models", "vae,not_a_model", "--out", str(tmp_path / "out")]) == 2
    line = one_error_line(capsys)
    assert "unknown model 'not_a_model'" in line and f"suite {suite}" in line and "choose from:" in line
    assert not (tmp_path / "out").exists()


def test_missing_data_and_an_unknown_suite_are_one_line(tmp_path, capsys):
    assert main(["bench", "--suite", "fashion-mnist", "--data-dir", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    assert "Fashion-MNIST not found" in one_error_line(capsys) and not (tmp_path / "o").exists()
    assert main(["bench", "--suite", "mnist", "--out", str(tmp_path / "o")]) == 2
    assert "unknown suite 'mnist'; choose one of fashion-mnist, sprites, apps" in one_error_line(capsys)


def test_the_fashion_suite_covers_every_registered_preset():
    entries = make_plan("fashion-mnist").entries
    assert {e.preset for e in entries} == set(vaekit.available_models())
    assert len({e.name for e in entries}) == len(entries)
    assert {e.name for e in make_plan("fashion-mnist", quick=True).entries} < {e.name for e in entries}


def test_sprites_suite_reports_the_five_metrics_and_a_traversal(tmp_path):
    out = tmp_path / "sprites"
    args = ["bench", "--suite", "sprites", "--quick", "--models", "beta_vae_b4", "--out", str(out), "--train-size", "200",
            "--test-size", "50", "--epochs", "1", "--threads", "1", "--quiet"]
    assert main(args) == 0
    table = (out / "sprites.md").read_text()
    assert "| model | MIG | FactorVAE | β-VAE | SAP | DCI D | DCI C | DCI I | active units | wall time (s) | traversal (seed 0) |" in table
    run = json.loads((out / "sprites.json").read_text())["results"]["beta_vae_b4"][0]
    for key in ("mig", "factorvae_score", "betavae_score", "sap", "dci_disentanglement", "dci_completeness", "dci_informativeness"):
        assert 0.0 <= run[key] <= 1.0, key
    assert (out / "beta_vae_b4" / "seed0" / "traversal.png").stat().st_size > 0
    assert vaekit.load(out / "beta_vae_b4" / "seed0").config["options"]["beta"] == 4.0


def test_apps_suite_compares_codes_with_pca_and_raw_pixels(tmp_path):
    out = tmp_path / "apps"
    assert main(["bench", "--suite", "apps", "--quick", "--models", "ae", "--out", str(out), *TINY]) == 0
    table = (out / "apps.md").read_text()
    assert "| `ae` codes (16) |" in table and "| PCA codes (16) |" in table and "| raw pixels (784) |" in table
    run = json.loads((out / "apps.json").read_text())["results"]["ae"][0]
    train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    knn = KNeighborsClassifier(n_neighbors=5).fit(train.x[:300].flatten(1).numpy(), train.y[:300].numpy())
    raw = float((knn.predict(test.x[:100].flatten(1).numpy()) == test.y[:100].numpy()).mean())
    assert run["accuracy"]["raw"] == pytest.approx(raw)
    assert [r["class"] for r in run["anomaly"]] == [8] and run["anomaly"][0]["score"] == "reconstruction"
    assert 0.0 <= run["mean_auroc"]["reconstruction"] <= 1.0 and np.isfinite(run["compression"]["model_mse"])
    assert (out / "ae" / "seed0" / "holdout8" / "model.safetensors").is_file()
