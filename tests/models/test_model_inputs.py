"""The public entry points take what users naturally pass, or say clearly what they need (issue: new-user trial)."""

import copy

import numpy as np
import pytest
import torch

import vaekit
from vaekit.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return vaekit.create("vae", input_shape=(1, 8, 8), latent_dim=4, arch="mlp", hidden_dims=(16,))


def test_numpy_arrays_and_other_dtypes_are_converted(model):
    x = np.random.default_rng(0).random((3, 1, 8, 8))  # float64 numpy
    q = model.encode(x)
    assert q.mean.shape == (3, 4) and q.mean.dtype == torch.float32
    as_tensor = model.encode(torch.as_tensor(x, dtype=torch.float32)).mean
    torch.testing.assert_close(q.mean, as_tensor)
    torch.testing.assert_close(model.encode(torch.as_tensor(x)).mean, as_tensor)  # float64 tensor
    assert model.decode(np.zeros((3, 4))).mean.shape == (3, 1, 8, 8)
    assert model.reconstruct(x).shape == (3, 1, 8, 8)
    assert model.transform(x).shape == (3, 4)
    assert torch.isfinite(model.loss(x)["loss"])
    assert vaekit.log_likelihood(model, (x > 0.5).astype(np.float64), num_samples=4).shape == (3,)
    assert np.isfinite(vaekit.evaluate(model, x)["elbo"])


@pytest.mark.parametrize("bad, needle", [("abc", "x must be"), (np.zeros((2, 8, 8)), "expects (batch, 1, 8, 8)"), ([[1, 2]], "shape")])
def test_bad_inputs_to_encode_name_the_argument(model, bad, needle):
    with pytest.raises(DataError, match=None) as e:
        model.encode(bad)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_decode_with_the_wrong_code_size_names_the_expected_shape(model):
    with pytest.raises(DataError, match=r"\(batch, 4\)"):
        model.decode(torch.zeros(2, 5))
    with pytest.raises(DataError, match="batch dimension"):
        model.decode(torch.tensor(1.0))


def test_save_onto_an_existing_file_is_refused_clearly(model, tmp_path):
    target = tmp_path / "model.csv"
    target.write_text("data")
    with pytest.raises(ConfigError, match="is a file"):
        model.save(target)
    assert target.read_text() == "data"


@pytest.mark.parametrize("n", [0, -1, 2.5, "3"])
def test_sample_count_must_be_a_positive_integer(model, n):
    with pytest.raises(ConfigError, match="positive"):
        model.sample(n)


def test_labels_as_lists_for_conditional_models():
    model = vaekit.create("vae", input_shape=(1, 8, 8), latent_dim=4, arch="mlp", hidden_dims=(16,), num_classes=3)
    x = np.random.default_rng(0).random((2, 1, 8, 8))
    assert model.encode(x, [0, 2]).mean.shape == (2, 4)
    with pytest.raises(DataError, match="one label or vector per example"):
        model.encode(x, [0, 1, 2])


def test_decode_unchecked_gives_decodes_distribution_and_defers_to_overrides_and_labels(model):
    """The importance-sampling path decodes drawn codes without re-checking them, to the same p(x|z);
    a model that overrides ``decode``, or a conditional one, is decoded by its ``decode``."""
    z = torch.randn(5, 4)
    with torch.no_grad():
        torch.testing.assert_close(model.decode_unchecked(z).base_dist.logits, model.decode(z).base_dist.logits, rtol=0, atol=0)
    calls = []

    class OwnDecode(type(model)):
        def decode(self, z, y=None):
            calls.append(y)
            return "decoded"

    overriding = copy.deepcopy(model)
    overriding.__class__ = OwnDecode
    assert overriding.decode_unchecked(z) == "decoded" and calls == [None]
    torch.manual_seed(0)
    conditional = vaekit.create("vae", input_shape=(1, 8, 8), latent_dim=4, arch="mlp", hidden_dims=(16,), num_classes=3)
    y = torch.tensor([0, 1, 2, 0, 1])
    with torch.no_grad():
        torch.testing.assert_close(conditional.decode_unchecked(z, y).base_dist.logits, conditional.decode(z, y).base_dist.logits, rtol=0, atol=0)
    with pytest.raises(ConfigError, match="needs y"):
        conditional.decode_unchecked(z)
