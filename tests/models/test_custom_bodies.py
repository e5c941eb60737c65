"""Custom bodies: the user's nn.Modules as encoder and decoder, checked at create, saved without pickling, loaded with the modules."""

import json

import pytest
import torch
from safetensors import safe_open
from torch import nn

import vaekit
from vaekit.cli import main
from vaekit.errors import CheckpointError, ConfigError

IMAGE, VECTOR = (1, 28, 28), (12,)
LATENT = 3


def encoder_for(shape, width=6):
    """A small body of the user's own: two stride-2 convolutions for images, a ReLU layer for vectors."""
    if len(shape) == 3:
        return nn.Sequential(nn.Conv2d(1, 4, 4, 2, 1), nn.ReLU(), nn.Conv2d(4, width, 4, 2, 1), nn.ReLU(), nn.Flatten())
    return nn.Sequential(nn.Linear(shape[0], width), nn.Tanh())


def decoder_for(shape, in_features=LATENT, parameters=1):
    if len(shape) == 3:
        return nn.Sequential(nn.Linear(in_features, 4 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (4, 7, 7)),
                             nn.ConvTranspose2d(4, 4, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(4, parameters, 4, 2, 1))
    return nn.Sequential(nn.Linear(in_features, 8), nn.ReLU(), nn.Linear(8, parameters * shape[0]))


def data(shape, n=4):
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("shape", [IMAGE, VECTOR], ids=["image", "vector"])
@pytest.mark.parametrize("name", ["vae", "beta_vae", "iwae", "ae"])
def test_the_modules_are_the_bodies(name, shape):
    torch.manual_seed(0)
    enc, dec = encoder_for(shape), decoder_for(shape)
    model = vaekit.create(name, input_shape=shape, latent_dim=LATENT, encoder=enc, decoder=dec)
    x, z = data(shape), torch.randn(4, LATENT)
    # the decoder's output is the Bernoulli logits, unchanged (independently: the module itself)
    torch.testing.assert_close(model.decode(z).base_dist.logits, dec(z).reshape(4, *shape))
    # the posterior head reads the encoder's features: F found by running it (6·7·7 for images, 6 for vectors)
    features = enc(x)
    head = model.posterior.net
    assert head.in_features == features.shape[1] == (6 * 7 * 7 if len(shape) == 3 else 6)
    mean = head(features)[:, :LATENT] if name != "ae" else head(features)
    torch.testing.assert_close(model.encode(x).mean, mean)
    out = model.loss(x)
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in [*enc.parameters(), *dec.parameters()])
    assert model.reconstruct(x).shape == x.shape
    if name != "ae":
        assert model.sample(2).shape == (2, *shape)


def test_the_logistic_head_reads_locations_then_log_scales():
    torch.manual_seed(0)
    dec = decoder_for(IMAGE, parameters=2)  # (B, 2C, H, W) with C = 1
    model = vaekit.create("vae", input_shape=IMAGE, latent_dim=LATENT, likelihood="logistic", encoder=encoder_for(IMAGE), decoder=dec)
    z = torch.randn(3, LATENT)
    raw = dec(z)
    px = model.decode(z).base_dist
    torch.testing.assert_close(px.loc, raw[:, :1])
    torch.testing.assert_close(px.scale, raw[:, 1:].clamp_min(-7.0).exp())


def test_a_flat_decoder_output_is_accepted_for_images():
    torch.manual_seed(0)
    dec = nn.Linear(LATENT, 28 * 28)
    model = vaekit.create("vae", input_shape=IMAGE, latent_dim=LATENT, decoder=dec, arch="mlp", hidden_dims=(8,))
    z = torch.randn(2, LATENT)
    torch.testing.assert_close(model.decode(z).base_dist.logits, dec(z).reshape(2, *IMAGE))


def test_one_custom_body_with_vaekits_other_and_a_conditional_decoder():
    torch.manual_seed(0)
    model = vaekit.create("vae", input_shape=VECTOR, latent_dim=LATENT, encoder=encoder_for(VECTOR), hidden_dims=(8,))
    assert type(model.decoder).__name__ == "MLPDecoder"
    dec = decoder_for(VECTOR, in_features=LATENT + 4)  # z then the one-hot label
    model = vaekit.create("conditional_vae", input_shape=VECTOR, latent_dim=LATENT, num_classes=4, decoder=dec, hidden_dims=(8,))
    z, y = torch.randn(2, LATENT), torch.tensor([1, 3])
    torch.testing.assert_close(model.decode(z, y).base_dist.logits, dec(torch.cat([z, nn.functional.one_hot(y, 4).float()], 1)))


def one_line(error) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


def test_a_decoder_of_the_wrong_shape_is_refused_at_create_naming_both_shapes():
    wrong = nn.Sequential(nn.Linear(LATENT, 32 * 32), nn.Unflatten(1, (1, 32, 32)))
    with pytest.raises(ConfigError) as e:
        vaekit.create("vae", input_shape=IMAGE, latent_dim=LATENT, encoder=encoder_for(IMAGE), decoder=wrong)
    text = one_line(e)
    assert "decoder=Sequential" in text and "(2, 1, 32, 32)" in text and "(2, 1, 28, 28)" in text and "logits" in text
    with pytest.raises(ConfigError) as e:  # logistic needs two values per pixel
        vaekit.create("vae", input_shape=VECTOR, latent_dim=LATENT, likelihood="logistic", decoder=decoder_for(VECTOR))
    assert "(2, 12)" in one_line(e) and "(2, 24)" in str(e.value)
    with pytest.raises(ConfigError) as e:  # it does not take the code at all
        vaekit.create("vae", input_shape=VECTOR, latent_dim=LATENT, decoder=decoder_for(VECTOR, in_features=5))
    assert "(2, 3)" in one_line(e) and "mat1 and mat2" in str(e.value)


def test_an_encoder_that_does_not_give_flat_features_is_refused_at_create():
    with pytest.raises(ConfigError) as e:
        vaekit.create("vae", input_shape=IMAGE, latent_dim=LATENT, encoder=nn.Conv2d(1, 2, 3))
    text = one_line(e)
    assert "(2, 1, 28, 28)" in text and "(2, 2, 26, 26)" in text and "nn.Flatten" in text
    with pytest.raises(ConfigError) as e:
        vaekit.create("vae", input_shape=IMAGE, latent_dim=LATENT, encoder=nn.Linear(5, 3))
    assert "fails on a batch of shape (2, 1, 28, 28)" in one_line(e)
    with pytest.raises(ConfigError, match="takes an nn.Module"):
        vaekit.create("vae", input_shape=VECTOR, encoder="mlp")


def test_the_check_leaves_the_modules_as_they_were():
    enc = nn.Sequential(nn.Linear(12, 6), nn.BatchNorm1d(6), nn.Dropout(0.5))
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    vaekit.create("vae", input_shape=VECTOR, latent_dim=LATENT, encoder=enc, decoder=decoder_for(VECTOR))
    assert all(m.training for m in enc.modules())  # back in training mode
    assert all(torch.equal(before[k], v) for k, v in enc.state_dict().items())  # batch-norm statistics untouched
    enc.eval()
    vaekit.create("vae", input_shape=VECTOR, latent_dim=LATENT, encoder=enc)
    assert not any(m.training for m in enc.modules())
    from vaekit.models.custom_bodies import check_encoder

    state = torch.random.get_rng_state()
    assert check_encoder(enc, VECTOR) == 6 and torch.equal(torch.random.get_rng_state(), state)  # the check draws nothing


@pytest.mark.parametrize("name", ["vq_vae", "auxiliary_vae", "linear_ae"])
def test_presets_with_bodies_of_their_own_refuse_custom_ones(name):
    with pytest.raises(ConfigError) as e:
        vaekit.create(name, input_shape=IMAGE, latent_dim=LATENT, encoder=encoder_for(IMAGE))
    assert one_line(e).startswith(f"{name} cannot take encoder=")


def test_a_preset_that_ignores_the_spec_bodies_is_caught(monkeypatch):
    from vaekit.models import custom_bodies

    monkeypatch.setattr(custom_bodies, "FIXED_BODIES", {})  # vq_vae no longer refused up front: the safety net must catch it
    with pytest.raises(ConfigError, match="vq_vae cannot take encoder=: it builds its own bodies"):
        vaekit.create("vq_vae", input_shape=(1, 8, 8), latent_dim=LATENT, channels=(4,), encoder=encoder_for((1, 8, 8)))


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = vaekit.create("vae", input_shape=IMAGE, latent_dim=LATENT, encoder=encoder_for(IMAGE), decoder=decoder_for(IMAGE))
    model.save(tmp_path / "run")
    return model, tmp_path / "run"


def test_save_and_load_with_fresh_modules_give_the_same_model(saved):
    model, run = saved
    torch.manual_seed(123)  # fresh modules start from other weights: the file must replace them all
    loaded = vaekit.load(run, encoder=encoder_for(IMAGE), decoder=decoder_for(IMAGE))
    x, z = data(IMAGE), torch.randn(4, LATENT)
    model.eval()
    assert torch.equal(loaded.encode(x).mean, model.encode(x).mean)
    assert torch.equal(loaded.encode(x).stddev, model.encode(x).stddev)
    assert torch.equal(loaded.decode(z).base_dist.logits, model.decode(z).base_dist.logits)
    assert loaded.config == model.config


def test_the_files_hold_the_weights_and_only_a_record_of_the_modules(saved):
    model, run = saved
    text = (run / "config.json").read_text()
    config = json.loads(text)
    assert config["custom_bodies"] == {"encoder": True, "decoder": True, "encoder_class": "Sequential", "decoder_class": "Sequential"}
    assert not any(fragment in text for fragment in ("Conv2d", "Linear", "Sequential(", "ReLU", "<", "object at"))
    body = model.encoder.body.state_dict()
    with safe_open(str(run / "model.safetensors"), framework="pt") as f:
        keys = set(f.keys())
        assert {f"encoder.body.{k}" for k in body} <= keys and any(k.startswith("decoder.body.") for k in keys)
        for k, v in body.items():
            assert torch.equal(f.get_tensor(f"encoder.body.{k}"), v)


def test_loading_without_the_modules_names_the_call_that_works(saved):
    _, run = saved
    with pytest.raises(CheckpointError) as e:
        vaekit.load(run)
    text = one_line(e)
    assert "custom encoder (Sequential) and decoder (Sequential)" in text
    assert f"vaekit.load({str(run)!r}, encoder=Sequential(...), decoder=Sequential(...))" in text
    with pytest.raises(CheckpointError, match=r"custom decoder \(Sequential\)"):
        vaekit.load(run, encoder=encoder_for(IMAGE))


def test_loading_modules_of_another_size_names_the_first_tensor_that_differs(saved):
    _, run = saved
    with pytest.raises(CheckpointError) as e:
        vaekit.load(run, encoder=encoder_for(IMAGE, width=8), decoder=decoder_for(IMAGE))
    text = one_line(e)
    assert "tensor 'encoder.body.2.weight' is (6, 4, 4, 4) in the file but (8, 4, 4, 4) in the model" in text
    assert "encoder=Sequential" in text


def test_a_run_with_vaekits_bodies_refuses_modules(tmp_path):
    vaekit.create("vae", input_shape=VECTOR, latent_dim=LATENT, hidden_dims=(8,)).save(tmp_path)
    with pytest.raises(CheckpointError, match="vaekit's own encoder body, not a custom one; load it without encoder="):
        vaekit.load(tmp_path, encoder=encoder_for(VECTOR))


def test_fit_saves_a_run_that_loads_with_the_modules(tmp_path):
    torch.manual_seed(0)
    model = vaekit.create("vae", input_shape=VECTOR, latent_dim=LATENT, encoder=encoder_for(VECTOR), decoder=decoder_for(VECTOR))
    x = data(VECTOR, 64)
    trained = vaekit.fit(model, x, x[:16], epochs=1, batch_size=16, out_dir=tmp_path, quiet=True).model
    loaded = vaekit.load(tmp_path, encoder=encoder_for(VECTOR), decoder=decoder_for(VECTOR))
    assert torch.equal(loaded.reconstruct(x), trained.eval().reconstruct(x))


def test_the_command_line_sends_custom_runs_to_python(saved, tmp_path, capsys):
    _, run = saved
    for command in (["sample", str(run), "-o", str(tmp_path / "s.png")], ["eval", str(run), "--quiet"]):
        assert main(command) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "load it from Python with the modules" in err and "vaekit.load(" in err
    assert not (tmp_path / "s.png").exists()
