"""The vq_vae preset: its code grid, persistence, sampling through the fitted code prior, and the command line."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import vaekit
from vaekit.cli import main
from vaekit.distributions import QuantizedCode
from vaekit.models import get_preset


def test_a_28x28_image_gets_a_7x7_grid_of_codes():
    torch.manual_seed(0)
    model = vaekit.create("vq_vae", input_shape=(1, 28, 28), latent_dim=4, codebook_size=16)
    assert get_preset("vq_vae").family == "vector_quantized" and model.prior_module is None
    assert all(get_preset("vq_vae").docs.get(option) for option in get_preset("vq_vae").defaults)  # every option documented
    assert model.grid_shape == (7, 7) and model.latent_dim == 4 * 49
    x = torch.rand(3, 1, 28, 28)
    q = model.encode(x)
    assert isinstance(q, QuantizedCode) and q.event_shape == (4 * 49,)
    k = model.code_indices(x)
    assert k.shape == (3, 7, 7) and k.dtype == torch.long and 0 <= int(k.min()) and int(k.max()) < 16
    codebook = model.posterior.codebook
    z = model.transform(x)  # the codebook vectors of the index grid, channel-major
    np.testing.assert_allclose(z.view(3, 4, 7, 7).permute(0, 2, 3, 1).numpy(), codebook[k].detach().numpy())
    grid = model.decode(z.view(3, 4, 7, 7)).mean
    np.testing.assert_allclose(model.decode(z).mean.detach().numpy(), grid.detach().numpy())
    np.testing.assert_allclose(model.decode_indices(k).mean.detach().numpy(), model.reconstruct(x).numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(vaekit.DataError, match="0..15"):
        model.decode_indices(torch.full((1, 7, 7), 16))
    with pytest.raises(vaekit.DataError, match=r"\(batch, 196\)"):
        model.decode(torch.zeros(2, 5))


def test_sampling_without_a_code_prior_says_to_run_fit_prior():
    model = vaekit.create("vq_vae", input_shape=(1, 8, 8), latent_dim=2, channels=(4,), codebook_size=4)
    with pytest.raises(vaekit.ConfigError, match="vaekit fit-prior RUN"):
        model.sample(4)
    with pytest.raises(vaekit.ConfigError, match="fit-prior"):
        model.prior()


@pytest.mark.parametrize("ema", [True, False])
def test_save_and_load_keep_the_codebook_and_its_statistics(ema, tmp_path):
    torch.manual_seed(1)
    model = vaekit.create("vq_vae", input_shape=(1, 8, 8), latent_dim=3, channels=(4, 8), codebook_size=5, ema=ema, restart_after=3)
    x = torch.rand(16, 1, 8, 8)
    vaekit.fit(model, x, epochs=2, batch_size=4, quiet=True)  # codebook seeded, averaged, codes restarted
    state = model.state_dict()
    assert bool(state["posterior.initialized"]) and int(state["posterior.unused_steps"].sum()) >= 0
    model.save(tmp_path / "run")
    loaded = vaekit.load(tmp_path / "run")
    assert set(loaded.state_dict()) == set(state)
    if ema:
        assert {"posterior.cluster_size", "posterior.embed_sum"} <= set(state)
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert torch.equal(loaded.code_indices(x), model.code_indices(x))


def test_fit_reports_codebook_usage_and_perplexity_every_epoch(tmp_path):
    torch.manual_seed(2)
    model = vaekit.create("vq_vae", input_shape=(1, 8, 8), latent_dim=3, channels=(4,), codebook_size=8)
    result = vaekit.fit(model, torch.rand(64, 1, 8, 8), torch.rand(16, 1, 8, 8), epochs=2, batch_size=16, quiet=True, out_dir=tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and rows == result.history
    for row in rows:
        for split in ("train", "val"):
            assert 1 <= row[f"{split}/perplexity"] <= 8 and 0 < row[f"{split}/codebook_usage"] <= 1
            assert {f"{split}/{t}" for t in ("loss", "reconstruction", "codebook", "commitment")} <= set(row)


@pytest.mark.parametrize("options, message", [
    ({"codebook_size": 1}, r"codebook_size must be an integer ≥ 2"),
    ({"commitment": -0.5}, r"commitment .* must be ≥ 0"),
    ({"decay": 1.0}, r"decay .* \[0, 1\)"),
    ({"restart_after": -1}, r"restart_after must be an integer ≥ 0"),
    ({"arch": "mlp"}, r'needs arch="conv"'),
    ({"num_classes": 3}, r"unconditional"),
])
def test_bad_options_are_one_clear_line(options, message):
    with pytest.raises(vaekit.ConfigError, match=message) as e:
        vaekit.create("vq_vae", input_shape=(1, 8, 8), **options)
    assert "\n" not in str(e.value)


def test_command_line_train_fit_prior_sample(tmp_path, capsys):
    run = tmp_path / "vq"
    assert main(["models"]) == 0
    assert "vq_vae" in capsys.readouterr().out
    assert main(["train", "vq_vae", "--data", "digits", "--arch", "conv", "--epochs", "1", "--latent-dim", "4",
                 "--codebook-size", "16", "--batch-size", "128", "--nll-samples", "0", "--quiet", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["sample", str(run), "-o", str(tmp_path / "none.png"), "--quiet"]) == 2
    assert "vaekit fit-prior" in capsys.readouterr().err
    assert main(["fit-prior", str(run), "--epochs", "1", "--limit", "300", "--channels", "16", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["grid"] == [2, 2] and report["codebook_size"] == 16 and report["train_examples"] == 300
    assert 0 < report["test_nll_bits_per_code"] and report["uniform_bits_per_code"] == pytest.approx(4.0)
    assert {(run / "prior.safetensors").is_file(), (run / "prior.json").is_file()} == {True}
    assert main(["sample", str(run), "-n", "8", "-o", str(tmp_path / "samples.png"), "--quiet"]) == 0
    Image.open(tmp_path / "samples.png").verify()
    assert vaekit.load(run).sample(2).shape == (2, 1, 8, 8)


def test_command_line_refusals_are_one_line(tmp_path, capsys):
    assert main(["train", "vq_vae", "--data", "digits", "--arch", "conv", "--codebook-size", "1", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "codebook_size must be an integer ≥ 2" in err and err.count("\n") == 1
    assert not (tmp_path / "bad").exists()  # nothing written before the options are checked
    vae = tmp_path / "vae"
    vaekit.create("vae", input_shape=(1, 8, 8), latent_dim=2, hidden_dims=(8,), arch="mlp").save(vae)
    assert main(["fit-prior", str(vae), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "fits the code prior of a vq_vae run" in err and "'vae'" in err and err.count("\n") == 1
