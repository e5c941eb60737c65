"""`vaekit export` and vaekit.models.export: ONNX files run by onnxruntime and TorchScript files reloaded by torch.jit.load
give what vaekit's decoder and encoder give (the parameters of p(x|z) and q(z|x))."""

import importlib.util
import json

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from torch import nn

import vaekit
from vaekit.cli import main
from vaekit.models.export import export

IMAGE = (1, 12, 12)

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")  # torch's notice; the format is what was asked for


def onnx_run(path, **inputs):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {k: v.numpy() for k, v in inputs.items()})))


def close(got, expected, tol):
    np.testing.assert_allclose(got, expected.detach().numpy(), rtol=tol, atol=tol)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("export") / "vae"
    vaekit.create("vae", input_shape=IMAGE, latent_dim=3, arch="conv", channels=(4, 8)).save(folder)
    return folder


def test_the_onnx_decoder_gives_vaekits_bernoulli_logits(run, tmp_path, capsys):
    path = tmp_path / "decoder.onnx"
    assert main(["export", str(run), "--format", "onnx", "-o", str(path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["outputs"]["logits"]["shape"] == ["batch", *IMAGE] and list(info["inputs"]) == ["z"]
    model = vaekit.load(run)
    z = torch.randn(5, 3)  # another batch size than the one traced: the batch axis is dynamic
    close(onnx_run(path, z=z)["logits"], model.decode(z).base_dist.logits, 1e-5)
    metadata = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert metadata["vaekit_part"] == "decoder" and "logits" in json.loads(metadata["vaekit_outputs"])


def test_the_onnx_encoder_gives_the_posterior_mean_and_log_scale(run, tmp_path):
    path = tmp_path / "encoder.onnx"
    assert main(["export", str(run), "--part", "encoder", "-o", str(path)]) == 0
    model = vaekit.load(run)
    x = torch.rand(4, *IMAGE)
    q = model.encode(x)
    out = onnx_run(path, x=x)
    close(out["loc"], q.mean, 1e-5)
    close(out["log_scale"], q.stddev.log(), 1e-5)


@pytest.mark.parametrize("likelihood", ["gaussian", "logistic"])
def test_the_onnx_decoder_gives_location_and_scale(tmp_path, likelihood):
    torch.manual_seed(0)
    model = vaekit.create("vae", input_shape=(5,), latent_dim=2, hidden_dims=(8,), likelihood=likelihood)
    info = export(model, tmp_path / "d.onnx")
    assert list(info["outputs"]) == ["loc", "scale"]
    z = torch.randn(6, 2)
    px = model.decode(z).base_dist
    out = onnx_run(tmp_path / "d.onnx", z=z)
    close(out["loc"], px.loc, 1e-5)
    close(out["scale"], px.scale, 1e-5)


def test_a_conditional_decoder_takes_the_labels(tmp_path):
    torch.manual_seed(0)
    model = vaekit.create("conditional_vae", input_shape=(5,), latent_dim=2, hidden_dims=(8,), num_classes=3)
    info = export(model, tmp_path / "c.onnx")
    assert info["inputs"]["y"]["dtype"] == "int64"
    z, y = torch.randn(4, 2), torch.tensor([2, 0, 1, 2])
    close(onnx_run(tmp_path / "c.onnx", z=z, y=y)["logits"], model.decode(z, y).base_dist.logits, 1e-5)


class Unflatten(nn.Module):
    """(B, C·H·W) → (B, C, H, W) with -1 for the batch, which every exporter keeps dynamic."""

    def __init__(self, *shape):
        super().__init__()
        self.shape = shape

    def forward(self, h):
        return h.view(-1, *self.shape)


def custom_vae(unflatten):
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Conv2d(1, 4, 3, 2, 1), nn.ReLU(), nn.Flatten())
    dec = nn.Sequential(nn.Linear(2, 4 * 6 * 6), nn.ReLU(), unflatten, nn.ConvTranspose2d(4, 1, 4, 2, 1))
    return vaekit.create("vae", input_shape=IMAGE, latent_dim=2, encoder=enc, decoder=dec), dec


def test_custom_bodies_export(tmp_path):
    model, dec = custom_vae(Unflatten(4, 6, 6))
    export(model, tmp_path / "d.onnx")
    z = torch.randn(3, 2)
    close(onnx_run(tmp_path / "d.onnx", z=z)["logits"], dec(z), 1e-5)


def test_a_graph_that_fixes_the_batch_size_is_refused(tmp_path):
    model, dec = custom_vae(nn.Unflatten(1, (4, 6, 6)))  # torch's exporter bakes the traced batch size into the likelihood's reshape
    with pytest.raises(vaekit.ConfigError, match="fixed the batch size of the decoder.*view\\(-1, C, H, W\\)"):
        export(model, tmp_path / "d.onnx")
    assert not (tmp_path / "d.onnx").exists()
    export(model, tmp_path / "d.pt", format="torchscript")  # the TorchScript trace keeps it dynamic
    z = torch.randn(3, 2)
    torch.testing.assert_close(torch.jit.load(str(tmp_path / "d.pt"))(z)[0], dec(z), rtol=1e-6, atol=1e-6)


def test_torchscript_round_trip(run, tmp_path):
    path = tmp_path / "decoder.pt"
    assert main(["export", str(run), "--format", "torchscript", "-o", str(path)]) == 0
    files = {"vaekit.json": ""}
    loaded = torch.jit.load(str(path), _extra_files=files)
    assert json.loads(files["vaekit.json"])["outputs"]["logits"]["shape"] == ["batch", *IMAGE]
    model = vaekit.load(run)
    z = torch.randn(7, 3)
    (logits,) = loaded(z)
    torch.testing.assert_close(logits, model.decode(z).base_dist.logits, rtol=1e-6, atol=1e-6)


def test_torchscript_encoder_of_an_autoencoder_gives_the_code(tmp_path):
    torch.manual_seed(0)
    model = vaekit.create("ae", input_shape=(5,), latent_dim=2, hidden_dims=(8,))
    info = export(model, tmp_path / "e.pt", format="torchscript", part="encoder")
    assert list(info["outputs"]) == ["code"]
    x = torch.rand(4, 5)
    (code,) = torch.jit.load(str(tmp_path / "e.pt"))(x)
    torch.testing.assert_close(code, model.transform(x), rtol=1e-6, atol=1e-6)


def test_bad_output_names_fail_before_anything_is_written(run, tmp_path, capsys):
    for args in (["-o", str(tmp_path / "d.png")], ["--format", "torchscript", "-o", str(tmp_path / "d.onnx")]):
        assert main(["export", str(run), *args]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "give a path ending in" in err
    assert main(["export", str(tmp_path / "no_such_run"), "-o", str(tmp_path / "d.onnx")]) == 2
    assert "no saved model" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_an_encoder_without_fixed_parameters_is_refused_naming_it(tmp_path, capsys):
    vaekit.create("vae", input_shape=(5,), latent_dim=2, hidden_dims=(8,), posterior="planar", flow_steps=2).save(tmp_path / "run")
    assert main(["export", str(tmp_path / "run"), "--part", "encoder", "-o", str(tmp_path / "e.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "posterior 'planar'" in err and "FlowDistribution" in err and "--part decoder" in err
    assert not (tmp_path / "e.onnx").exists()


def test_an_operator_onnx_lacks_is_one_line(tmp_path, capfd):
    model = vaekit.create("vae", input_shape=(5,), latent_dim=2, hidden_dims=(8,), posterior="full_covariance")
    with pytest.raises(vaekit.ConfigError, match="ONNX cannot express the encoder .*tril_indices.*--format torchscript"):
        export(model, tmp_path / "e.onnx", part="encoder")
    out, err = capfd.readouterr()
    assert "Torch IR graph" not in out + err and not (tmp_path / "e.onnx").exists()
    export(model, tmp_path / "e.pt", format="torchscript", part="encoder")  # TorchScript can
    x = torch.rand(3, 5)
    loc, scale_tril = torch.jit.load(str(tmp_path / "e.pt"))(x)
    q = model.encode(x)
    torch.testing.assert_close(loc, q.loc, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(scale_tril, q.scale_tril, rtol=1e-6, atol=1e-6)


def test_a_missing_onnx_package_is_one_line_with_the_pip_command(run, tmp_path, capsys, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else find_spec(name, *a))
    assert main(["export", str(run), "-o", str(tmp_path / "d.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install onnx" in err
    assert list(tmp_path.iterdir()) == []
