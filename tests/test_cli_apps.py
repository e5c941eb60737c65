"""`vaekit compress | classify | anomaly | denoise` end to end on small runs."""

import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import vaekit
from vaekit.cli import main


def _run_folder(path, model, data, **settings):
    model.save(path)
    (path / "train.yaml").write_text(yaml.safe_dump({"model": model.config["model"], "data": str(data), "binarize": "none", **settings}))
    return str(path)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    torch.manual_seed(0)
    model = vaekit.create("ae", input_shape=(1, 8, 8), latent_dim=6, hidden_dims=(32,), arch="mlp")
    train = vaekit.data.load_digits("train")
    vaekit.fit(model, train.x, epochs=3, batch_size=64, quiet=True)
    return _run_folder(tmp_path_factory.mktemp("runs") / "ae", model, "digits")


def _json(capsys):
    return json.loads(capsys.readouterr().out)


def _png(path):
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 10 and image.size[1] > 10


def test_compress_reports_bits_error_and_pca(digits_run, tmp_path, capsys):
    assert main(["compress", digits_run, "--bits", "4", "--out", str(tmp_path), "--quiet"]) == 0
    result = _json(capsys)
    assert result["bits_per_code"] == 24 and result["latent_dim"] == 6
    assert result["num_eval"] == 360 and 0 < result["model_mse"] < 0.2
    assert set(result["pca_curve"]) >= {"6"} and result["pca_mse"] == result["pca_curve"]["6"]
    codes = np.load(tmp_path / "codes.npy")
    assert codes.shape == (360, 6) and codes.min() >= 0 and codes.max() <= 15
    for name in ("error_vs_dimension", "reconstructions"):
        _png(result["files"][name])
    assert json.loads((tmp_path / "compress.json").read_text())["model_mse"] == result["model_mse"]


def test_classify_reports_three_accuracies(digits_run, tmp_path, capsys):
    assert main(["classify", digits_run, "-k", "3", "--out", str(tmp_path), "--quiet"]) == 0
    result = _json(capsys)
    assert set(result["accuracy"]) == {"latent", "raw", "pca"} and result["accuracy"]["raw"] > 0.9
    _png(result["files"]["accuracy"])


def test_anomaly_on_held_out_classes(digits_run, tmp_path, capsys):
    code = main(["anomaly", digits_run, "--anomaly-class", "0,1", "--fpr", "0.1", "--out", str(tmp_path), "--quiet"])
    assert code == 0
    result = _json(capsys)
    assert result["normal_classes"] == [2, 3, 4, 5, 6, 7, 8, 9] and result["anomaly_classes"] == [0, 1]
    c = result["confusion"]
    assert c["true_positives"] + c["false_negatives"] == result["num_anomalous"] == 72
    assert 0 <= result["auroc"] <= 1 and result["quantile"] == pytest.approx(0.9)
    for name in ("roc", "histograms", "most_anomalous"):
        _png(result["files"][name])


def test_denoise_reports_psnr_and_ssim(digits_run, tmp_path, capsys):
    assert main(["denoise", digits_run, "--noise", "gaussian:0.3", "--limit", "50", "--out", str(tmp_path), "--quiet"]) == 0
    result = _json(capsys)
    assert result["noise"] == "gaussian" and result["num_examples"] == 50
    assert result["ssim_noisy"] < 1 and np.isfinite(result["psnr_denoised"])
    _png(result["files"]["rows"])


def test_anomaly_on_a_labelled_csv_with_a_vae(tmp_path, capsys):
    g = np.random.default_rng(0)
    normal = g.normal(size=(120, 4))
    anomalous = g.normal(size=(40, 4)) * 0.3 + 6.0  # far away
    rows = np.c_[np.r_[normal, anomalous], np.r_[np.zeros(120), np.ones(40)]]
    csv = tmp_path / "table.csv"
    np.savetxt(csv, rows, delimiter=",", header="a,b,c,d,is_anomaly", comments="", fmt="%.6f")
    model = vaekit.create("vae", input_shape=(4,), latent_dim=2, hidden_dims=(8,), likelihood="gaussian")
    vaekit.fit(model, torch.from_numpy(normal).float(), epochs=20, batch_size=32, quiet=True)
    run = _run_folder(tmp_path / "run", model, csv, label_column="is_anomaly")
    assert main(["anomaly", run, "--score", "elbo", "--num-samples", "4", "--eval-fraction", "0.5", "--quiet"]) == 0
    result = _json(capsys)
    assert result["normal_classes"] == [0] and result["anomaly_classes"] == [1]
    assert result["auroc"] > 0.95 and result["num_fit"] + result["num_normal"] == 120
    assert (tmp_path / "run" / "anomaly" / "roc.png").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["anomaly", "{run}"], "give --normal-class and/or --anomaly-class"),
        (["anomaly", "{run}", "--normal-class", "0", "--anomaly-class", "0"], "both normal and anomalous"),
        (["anomaly", "{run}", "--anomaly-class", "12"], "do not occur"),
        (["anomaly", "{run}", "--score", "log_likelihood", "--normal-class", "1"], "needs a model with a likelihood bound"),
        (["denoise", "{run}", "--noise", "speckle:0.3"], "unknown noise"),
        (["compress", "{run}", "--bits", "64"], "--bits must be in 1..32"),
        (["classify", "{run}", "--data", "{csv}"], "needs class labels"),
        (["compress", "{run}", "--data", "{csv}"], "expects"),
        (["compress", "{missing}"], "config.json is missing"),
    ],
)
def test_user_errors_are_one_clear_line(digits_run, tmp_path, capsys, argv, message):
    csv = tmp_path / "plain.csv"
    np.savetxt(csv, np.random.default_rng(0).random((20, 64)), delimiter=",")
    argv = [a.format(run=digits_run, csv=csv, missing=tmp_path / "nothing") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_compress_on_fashion_mnist(tmp_path, capsys):
    """Uses the real Fashion-MNIST files: fails (does not skip) when they are missing."""
    torch.manual_seed(0)
    model = vaekit.create("linear_ae", input_shape=(1, 28, 28), latent_dim=4)
    run = _run_folder(tmp_path / "run", model, "fashion-mnist")
    assert main(["compress", run, "--limit", "100", "--fit-limit", "500", "--bits", "0", "-n", "4", "--quiet"]) == 0
    result = _json(capsys)
    assert result["num_eval"] == 100 and result["num_fit"] == 500 and result["bits_per_code"] == 4 * 32
    assert result["model_mse"] > result["pca_mse"]  # an untrained linear map is no PCA


def test_a_table_narrower_than_the_code_is_compared_with_every_pca_component(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype("float32")
    table = tmp_path / "table.csv"
    rows = ["a,b,c,d,label"] + [",".join(f"{v:.4f}" for v in row) + f",{int(row[0] > 0)}" for row in x]
    table.write_text("\n".join(rows) + "\n")
    out = tmp_path / "run"
    assert main(["train", "ae", "--data", str(table), "--label-column", "label", "--latent-dim", "6", "--hidden-dims", "16",
                 "--epochs", "2", "--nll-samples", "0", "--quiet", "--out", str(out)]) == 0
    capsys.readouterr()
    assert vaekit.load(out).config["likelihood"] == "gaussian"  # chosen for real-valued columns
    assert main(["compress", str(out), "--quiet", "--out", str(tmp_path / "c")]) == 0
    result = _json(capsys)
    assert result["latent_dim"] == 6 and result["pca_components"] == 4
    assert result["pca_mse"] == pytest.approx(0.0, abs=1e-6)  # four components reconstruct four columns exactly
    assert main(["classify", str(out), "--quiet", "--out", str(tmp_path / "k")]) == 0
    assert _json(capsys)["pca_components"] == 4


def test_a_run_trained_without_a_class_scores_that_class_as_the_anomaly(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "ae", "--data", "digits", "--exclude-classes", "0", "--arch", "mlp", "--latent-dim", "4",
                 "--hidden-dims", "32", "--epochs", "2", "--quiet", "--out", str(out)]) == 0
    capsys.readouterr()
    assert yaml.safe_load((out / "train.yaml").read_text())["exclude_classes"] == [0]
    assert main(["anomaly", str(out), "--quiet", "--out", str(tmp_path / "a")]) == 0
    result = _json(capsys)
    assert result["anomaly_classes"] == [0] and result["normal_classes"] == list(range(1, 10))
    assert main(["train", "ae", "--data", "digits", "--exclude-classes", "12", "--quiet", "--out", str(tmp_path / "bad")]) == 2
    assert "--exclude-classes [12]" in capsys.readouterr().err


def test_counts_must_be_positive(digits_run, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["classify", digits_run, "--limit", "-3"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "--limit: must be a positive integer, got -3" in err and len(err.strip().splitlines()) == 1
