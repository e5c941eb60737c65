"""MLflowCallback and ``vaekit train --mlflow``: the run read back through MlflowClient on a local file store."""

import json
import sys

import pytest
import torch
from mlflow.tracking import MlflowClient

import vaekit
from vaekit.cli import main
from vaekit.errors import ConfigError
from vaekit.train.callbacks import Callback, MLflowCallback, flatten_params

TINY = ["--data", "digits", "--arch", "mlp", "--epochs", "2", "--latent-dim", "2", "--hidden-dims", "16", "--nll-samples", "5", "--quiet"]


@pytest.fixture(autouse=True)
def no_file_store_opt_in(monkeypatch):
    """The callback itself must allow MLflow 3's file store; the variable is removed again afterwards."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "unset")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")


def tiny_model(seed: int = 0):
    torch.manual_seed(seed)
    return vaekit.create("vae", input_shape=(1, 8, 8), latent_dim=3, hidden_dims=(16,), arch="mlp")


def only_run(uri: str, experiment: str = "vaekit"):
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert len(runs) == 1
    return client, runs[0]


def test_params_metrics_per_epoch_and_model_files(tmp_path):
    x = vaekit.data.load_digits("train").x[:160]
    uri = (tmp_path / "mlruns").as_uri()  # file:///…
    model = tiny_model()
    callback = MLflowCallback(uri, experiment="tests", run_name="tiny")
    assert not (tmp_path / "mlruns").exists()  # nothing before training starts
    result = vaekit.fit(model, x[:128], x[128:], epochs=3, batch_size=32, lr=2e-3, quiet=True, out_dir=tmp_path / "run",
                        callbacks=[callback])
    client, run = only_run(uri, "tests")
    assert run.info.run_id == callback.run_id and run.info.status == "FINISHED" and run.info.run_name == "tiny"
    params = run.data.params
    assert {k: params[k] for k in flatten_params(model.config)} == flatten_params(model.config)
    assert params["latent_dim"] == "3" and params["fit.lr"] == "0.002" and params["fit.epochs"] == "3" and params["fit.num_val"] == "32"
    for key in ("train/loss", "train/kl", "val/loss", "samples_per_s"):
        history = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in history] == [1, 2, 3]
        assert [m.value for m in history] == pytest.approx([r[key] for r in result.history], rel=1e-12)
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.json", "model.safetensors", "metrics.jsonl"} <= names
    local = client.download_artifacts(run.info.run_id, "config.json", str(tmp_path))
    assert json.loads(open(local).read()) == json.loads((tmp_path / "run" / "config.json").read_text())


def test_a_failed_fit_ends_the_run_as_failed(tmp_path):
    class Interrupt(Callback):
        def on_epoch_end(self, epoch, record, model):
            raise KeyboardInterrupt

    uri = (tmp_path / "mlruns").as_uri()
    with pytest.raises(KeyboardInterrupt):
        vaekit.fit(tiny_model(), vaekit.data.load_digits("train").x[:64], epochs=3, batch_size=32, quiet=True,
                   callbacks=[MLflowCallback(uri), Interrupt()])
    client, run = only_run(uri)
    assert run.info.status == "FAILED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [1]


def test_cli_logs_the_report_pngs_and_final_metrics(tmp_path, capsys):
    uri = (tmp_path / "mlruns").as_uri()
    out = tmp_path / "run"
    assert main(["train", "vae", *TINY, "--out", str(out), "--mlflow", uri]) == 0
    client, run = only_run(uri)
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"samples.png", "reconstructions.png", "curves.png", "config.json", "model.safetensors", "metrics.json"} <= names
    metrics = json.loads((out / "metrics.json").read_text())
    assert run.data.metrics["test/elbo"] == pytest.approx(metrics["elbo"], rel=1e-12)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/loss")] == [1, 2]
    assert run.data.params["fit.out_dir"] == str(out) and run.info.status == "FINISHED"


def test_cli_default_store_is_mlruns_in_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "vae", *TINY, "--epochs", "1", "--nll-samples", "0", "--out", "run", "--mlflow"]) == 0
    client, run = only_run((tmp_path / "mlruns").as_uri())
    assert run.info.run_name == "run"


def test_missing_package_is_one_line_exit_2_and_nothing_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now fails as if it were not installed
    with pytest.raises(ConfigError, match=r"^--mlflow needs the mlflow package: pip install 'vaekit\[mlflow\]'$"):
        MLflowCallback((tmp_path / "a").as_uri())
    monkeypatch.chdir(tmp_path)
    assert main(["train", "vae", *TINY, "--out", str(tmp_path / "run"), "--mlflow"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'vaekit[mlflow]'" in err
    assert list(tmp_path.iterdir()) == []
