"""The convolutional bodies: decoders refuse image sizes their channels cannot reach, as the encoders do."""

import pytest
import torch
from torch import nn

import vaekit
from vaekit.errors import ConfigError
from vaekit.nn import ConvDecoder, ConvGridDecoder


def test_conv_decoders_refuse_an_image_the_channels_shrink_below_one_pixel():
    """Two stride-2 layers cannot start from a 2×2 image: a clear error, not a crash at decode time or a 6×6 output."""
    with pytest.raises(ValueError, match="below 1×1; use fewer channels"):
        ConvDecoder(3, (1, 2, 2), 1, (4, 4))
    with pytest.raises(ValueError, match="below 1×1; use fewer channels"):
        ConvGridDecoder(3, (1, 2, 2), 1, (4, 4))
    assert ConvGridDecoder(3, (1, 3, 5), 1, (4,))(torch.zeros(2, 3, 1, 2)).shape == (2, 1, 3, 5)
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(4, 5))  # a custom encoder skips the conv encoder's own check
    with pytest.raises(ConfigError, match="below 1×1"):
        vaekit.create("vae", input_shape=(1, 2, 2), arch="conv", latent_dim=2, encoder=encoder)
