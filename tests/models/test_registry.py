"""Presets: names, options, validation, and the composed model's shapes."""

import pytest
import torch

import vaekit
from vaekit.errors import ConfigError, DataError
from vaekit.models import get_preset


def test_vae_is_registered_with_documented_options():
    assert "vae" in vaekit.available_models()
    preset = get_preset("vae")
    assert preset.defaults["posterior"] == "diagonal"
    assert all(preset.docs.get(name) for name in preset.defaults)  # every option is documented


def test_unknown_model_and_option_name_the_fix():
    with pytest.raises(ConfigError, match="did you mean 'vae'"):
        vaekit.create("vea", input_shape=(4,))
    with pytest.raises(ConfigError, match="unknown option 'free_bit'.*did you mean 'free_bits'"):
        vaekit.create("vae", input_shape=(4,), free_bit=1.0)
    with pytest.raises(ConfigError, match="takes a float"):
        vaekit.create("vae", input_shape=(4,), free_bits="lots")
    with pytest.raises(ConfigError, match="unknown posterior"):
        vaekit.create("vae", input_shape=(4,), posterior="gaussian_mixture")
    with pytest.raises(ConfigError, match="unknown likelihood"):
        vaekit.create("vae", input_shape=(4,), likelihood="poisson")
    with pytest.raises(ConfigError, match="conv"):
        vaekit.create("vae", input_shape=(4,), arch="conv")
    with pytest.raises(ConfigError, match="latent_dim"):
        vaekit.create("vae", input_shape=(4,), latent_dim=0)


@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "logistic"])
@pytest.mark.parametrize("posterior", ["diagonal", "full_covariance"])
def test_every_combination_builds_and_has_the_contracted_shapes(arch, likelihood, posterior):
    torch.manual_seed(0)
    model = vaekit.create("vae", input_shape=(1, 12, 10), latent_dim=4, arch=arch, likelihood=likelihood,
                          posterior=posterior, hidden_dims=(32,), channels=(4, 8))
    x = (torch.rand(3, 1, 12, 10) * 255).round() / 255
    q = model.encode(x)
    assert q.batch_shape == (3,) and q.event_shape == (4,)
    px = model.decode(q.rsample())
    assert px.batch_shape == (3,) and px.event_shape == (1, 12, 10)
    out = model.loss(x)
    assert out["loss"].shape == () and torch.isfinite(out["loss"])
    assert model.sample(5).shape == (5, 1, 12, 10)
    assert model.reconstruct(x).shape == x.shape


def test_wrong_input_shape_is_a_clear_error():
    model = vaekit.create("vae", input_shape=(1, 8, 8), latent_dim=2, hidden_dims=(8,))
    with pytest.raises(DataError, match=r"expects \(batch, 1, 8, 8\)"):
        model.loss(torch.rand(2, 64))


def test_variational_presets_refuse_the_point_mass_posterior():
    with pytest.raises(ConfigError, match="deterministic autoencoders"):
        vaekit.create("vae", input_shape=(4,), posterior="point")
