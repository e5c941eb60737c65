"""``logvar_clamp`` is a shared option: every preset's Gaussian posterior head takes it, and it is saved."""

import math

import pytest
import torch

import vaekit
from vaekit.errors import ConfigError


@pytest.mark.parametrize("name, options", [
    ("vae", {}), ("vae", {"posterior": "full_covariance"}), ("vae", {"posterior": "planar"}), ("vae", {"posterior": "iaf"}),
    ("iwae", {}), ("beta_vae", {}), ("auxiliary_vae", {}), ("conditional_vae", {"num_classes": 3}),
])
def test_every_gaussian_posterior_respects_the_clamp(name, options, tmp_path):
    torch.manual_seed(0)
    model = vaekit.create(name, input_shape=(1, 8, 8), latent_dim=3, arch="mlp", hidden_dims=(8,), logvar_clamp=(-6, 2), **options)
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.mul_(1e4)  # a runaway encoder
    y = torch.tensor([0, 1]) if options.get("num_classes") else None
    q = model.encode(torch.rand(2, 1, 8, 8), y)
    base = getattr(q, "base_dist", q)
    if hasattr(base, "scale_tril"):
        variances = base.scale_tril.diagonal(dim1=-2, dim2=-1).pow(2)
    else:
        variances = getattr(base, "base_dist", base).scale.pow(2)
    assert torch.all(variances <= math.exp(2) * (1 + 1e-5)) and torch.all(variances >= math.exp(-6) * (1 - 1e-5))
    model.save(tmp_path)
    assert vaekit.load(tmp_path).config["logvar_clamp"] == [-6.0, 2.0]


def test_clamp_from_text_none_and_refusals():
    assert vaekit.create("vae", input_shape=(4,), logvar_clamp="-6,2").config["logvar_clamp"] == [-6.0, 2.0]
    assert vaekit.create("vae", input_shape=(4,), logvar_clamp=None).config["logvar_clamp"] is None
    for bad in [(2, -6), (-100, 0), "a,b", (1,)]:
        with pytest.raises(ConfigError, match="logvar_clamp"):
            vaekit.create("vae", input_shape=(4,), logvar_clamp=bad)


def test_auxiliary_and_joint_vae_gaussian_heads_respect_the_clamp():
    """q(a|x) and p(a|x,z) of auxiliary_vae and the Gaussian part of joint_vae's posterior: variances within exp(-6)..exp(2)."""
    x = torch.rand(2, 1, 8, 8)
    variances = []
    for name in ("auxiliary_vae", "joint_vae"):
        torch.manual_seed(0)
        model = vaekit.create(name, input_shape=(1, 8, 8), latent_dim=3, arch="mlp", hidden_dims=(8,), logvar_clamp=(-6, 2))
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(1e4)  # runaway networks
            if name == "auxiliary_vae":
                variances += [model.encode_auxiliary(x).base_dist.scale.pow(2),
                              model.decode_auxiliary(x, torch.zeros(2, 3)).base_dist.scale.pow(2)]
            else:
                variances.append(model.posterior.continuous(model.features(x)).base_dist.scale.pow(2))
    for v in variances:
        assert torch.all(v <= math.exp(2) * (1 + 1e-5)) and torch.all(v >= math.exp(-6) * (1 - 1e-5))
