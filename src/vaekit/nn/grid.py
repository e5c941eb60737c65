"""Convolutional bodies that keep the spatial grid: x (B, C, H, W) <-> a map of D-vectors (B, D, h, w).

The VQ-VAE (van den Oord et al. 2017) quantises every position of an encoder feature map
on its own, so its encoder must stop before :class:`~vaekit.nn.ConvEncoder`'s flatten and
its decoder must start from a map rather than from a vector. Same convolutions as those
bodies (4×4, stride 2, padding 1, ReLU; each layer halves H and W), so a 28×28 image with
``channels=(32, 64)`` gives a 7×7 grid.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from vaekit.nn.bodies import conv_output_sizes

__all__ = ["ConvGridEncoder", "ConvGridDecoder"]


class ConvGridEncoder(nn.Module):
    """Stride-2 convolutions (4×4, ReLU) with ``channels``, then a 1×1 convolution to ``out_channels``.

    z_e(x) = W ∗ f(x) + b with f the convolution stack and W a 1×1 convolution: a linear
    head at every grid position (no activation, like the other posterior heads' inputs).

    Arguments:
        input_shape: (C, H, W) of one image.
        channels: convolution channels, each layer halving H and W.
        out_channels: D, the size of the vector at each grid position.

    ``grid_shape`` is (h, w); ``out_features`` is D·h·w.

    Example:
        >>> body = ConvGridEncoder((1, 28, 28), (32, 64), 16)
        >>> body(torch.zeros(2, 1, 28, 28)).shape, body.grid_shape
        (torch.Size([2, 16, 7, 7]), (7, 7))
    """

    def __init__(self, input_shape: Sequence[int], channels: Sequence[int] = (32, 64), out_channels: int = 16):
        super().__init__()
        c, h, w = input_shape
        heights, widths = conv_output_sizes(h, len(channels)), conv_output_sizes(w, len(channels))
        if min(heights[-1], widths[-1]) < 1:
            raise ValueError(f"{len(channels)} stride-2 convolutions shrink a {h}×{w} image below 1×1; use fewer channels entries")
        layers: list[nn.Module] = []
        for a, b in zip([c, *channels[:-1]], channels):
            layers += [nn.Conv2d(a, b, 4, stride=2, padding=1), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Conv2d(channels[-1], out_channels, 1))
        self.grid_shape = (heights[-1], widths[-1])
        self.out_channels = out_channels
        self.out_features = out_channels * heights[-1] * widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvGridDecoder(nn.Module):
    """Mirror of :class:`ConvGridEncoder`: a 3×3 convolution (ReLU) from the D-vector map,
    then stride-2 transposed convolutions back to ``out_channels`` × H × W.

    ``output_padding`` is chosen per layer so odd sizes come back exactly (7 -> 3 -> 7).
    Like the encoder, it refuses an image that ``channels`` would shrink below 1×1.

    Arguments:
        in_channels: D, the size of the vector at each grid position.
        input_shape: (C, H, W) of the images to produce.
        out_channels: raw output channels (the likelihood's parameters per pixel × C).
        channels: the encoder's convolution channels (mirrored).

    Example:
        >>> ConvGridDecoder(16, (1, 28, 28), 1, (32, 64))(torch.zeros(2, 16, 7, 7)).shape
        torch.Size([2, 1, 28, 28])
    """

    def __init__(self, in_channels: int, input_shape: Sequence[int], out_channels: int, channels: Sequence[int] = (32, 64)):
        super().__init__()
        _, h, w = input_shape
        heights, widths = conv_output_sizes(h, len(channels)), conv_output_sizes(w, len(channels))
        if min(heights[-1], widths[-1]) < 1:
            raise ValueError(f"{len(channels)} stride-2 convolutions shrink a {h}×{w} image below 1×1; use fewer channels entries")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels[-1], 3, padding=1), nn.ReLU()]
        outs = [out_channels, *channels[:-1]]  # layer i maps channels[i] -> outs[i]
        for i in reversed(range(len(channels))):
            pad = (heights[i] - 2 * heights[i + 1], widths[i] - 2 * widths[i + 1])
            layers.append(nn.ConvTranspose2d(channels[i], outs[i], 4, stride=2, padding=1, output_padding=pad))
            if i > 0:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)
        self.grid_shape = (heights[-1], widths[-1])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)
