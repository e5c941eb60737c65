"""Gated dense bodies: h = (W x + b) ⊙ σ(V x + c), checked against the formula written out by hand."""

import pytest
import torch

import vaekit
from vaekit.errors import ConfigError
from vaekit.nn import GatedDense, GatedMLPDecoder, GatedMLPEncoder


def test_gated_dense_is_linear_times_sigmoid_gate():
    torch.manual_seed(0)
    layer = GatedDense(5, 3)
    x = torch.randn(4, 5)
    W, b = layer.linear.weight, layer.linear.bias
    V, c = layer.gate.weight, layer.gate.bias
    manual = (x @ W.T + b) * (1 / (1 + torch.exp(-(x @ V.T + c))))
    torch.testing.assert_close(layer(x), manual)


def test_gated_bodies_stack_gated_layers_and_a_linear_output():
    torch.manual_seed(0)
    encoder = GatedMLPEncoder(12, (6, 4))
    x = torch.rand(3, 1, 3, 4)
    h = x.flatten(1)
    for layer in encoder.net:
        h = layer.linear(h) * torch.sigmoid(layer.gate(h))
    torch.testing.assert_close(encoder(x), h)
    assert encoder.out_features == 4
    decoder = GatedMLPDecoder(2, 12, (4, 6))
    z = torch.randn(3, 2)
    g = decoder.net[0](z)
    torch.testing.assert_close(decoder(z), decoder.net[1](g))
    assert isinstance(decoder.net[1], torch.nn.Linear) and decoder(z).shape == (3, 12)


def test_arch_gated_mlp_builds_gated_bodies_and_round_trips(tmp_path):
    model = vaekit.create("vae", input_shape=(1, 8, 8), latent_dim=2, arch="gated_mlp", hidden_dims=(16, 8))
    assert isinstance(model.encoder, GatedMLPEncoder) and isinstance(model.decoder, GatedMLPDecoder)
    assert [l.linear.out_features for l in model.decoder.net[0]] == [8, 16]  # the decoder mirrors hidden_dims
    model.save(tmp_path)
    loaded = vaekit.load(tmp_path)
    x = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(loaded.reconstruct(x), model.eval().reconstruct(x))
    with pytest.raises(ConfigError, match="gated_mlp"):
        vaekit.create("vae", input_shape=(1, 8, 8), arch="gated")
