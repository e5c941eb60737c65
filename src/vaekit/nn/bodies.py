"""Encoder and decoder bodies: the networks between the data and the distribution heads.

An encoder body maps x of shape (B, *input_shape) to features (B, F); a decoder body maps
a latent code (B, D) to the raw parameters of p(x|z), shape (B, P * C, H, W) for images
or (B, P * M) for vectors, where P is the number of parameters per observed value that
the likelihood head asks for. Bodies know nothing of distributions.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

__all__ = ["MLPEncoder", "MLPDecoder", "ConvEncoder", "ConvDecoder", "conv_output_sizes"]


def _mlp(sizes: Sequence[int], final_activation: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or final_activation:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """Flatten x and apply Linear-ReLU layers of sizes ``hidden_dims``.

    Arguments:
        in_features: number of values per example (the product of the input shape).
        hidden_dims: hidden layer sizes; the last one is the feature size. Empty means
            the features are the flattened input itself (a linear encoder head).

    Example:
        >>> body = MLPEncoder(784, (512, 256))
        >>> body(torch.zeros(3, 1, 28, 28)).shape
        torch.Size([3, 256])
    """

    def __init__(self, in_features: int, hidden_dims: Sequence[int] = (512, 512)):
        super().__init__()
        self.net = _mlp([in_features, *hidden_dims], final_activation=True)
        self.out_features = hidden_dims[-1] if hidden_dims else in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


class MLPDecoder(nn.Module):
    """Linear-ReLU layers from a latent code to ``out_features`` raw outputs (no final activation).

    Example:
        >>> MLPDecoder(16, 784, (256, 512))(torch.zeros(3, 16)).shape
        torch.Size([3, 784])
    """

    def __init__(self, in_features: int, out_features: int, hidden_dims: Sequence[int] = (512, 512)):
        super().__init__()
        self.net = _mlp([in_features, *hidden_dims, out_features], final_activation=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def conv_output_sizes(size: int, layers: int) -> list[int]:
    """Spatial sizes after each 4×4, stride-2, padding-1 convolution: n -> floor(n / 2)."""
    sizes = [size]
    for _ in range(layers):
        sizes.append((sizes[-1] + 2 - 4) // 2 + 1)
    return sizes


class ConvEncoder(nn.Module):
    """Stride-2 convolutions (4×4 kernels, ReLU) with ``channels``, then flatten.

    Each layer halves the height and width; the image must stay at least 1×1.

    Example:
        >>> ConvEncoder((1, 28, 28), (32, 64))(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 3136])
    """

    def __init__(self, input_shape: Sequence[int], channels: Sequence[int] = (32, 64)):
        super().__init__()
        c, h, w = input_shape
        self.heights = conv_output_sizes(h, len(channels))
        self.widths = conv_output_sizes(w, len(channels))
        if min(self.heights[-1], self.widths[-1]) < 1:
            raise ValueError(f"{len(channels)} stride-2 convolutions shrink a {h}×{w} image below 1×1; use fewer channels entries")
        layers: list[nn.Module] = []
        for a, b in zip([c, *channels[:-1]], channels):
            layers += [nn.Conv2d(a, b, 4, stride=2, padding=1), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Flatten())
        self.out_features = channels[-1] * self.heights[-1] * self.widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvDecoder(nn.Module):
    """Mirror of :class:`ConvEncoder`: a linear map to the smallest feature map, then
    stride-2 transposed convolutions back to ``out_channels`` × H × W.

    ``output_padding`` is chosen per layer so odd sizes come back exactly (7 -> 3 -> 7).
    Like the encoder, it refuses an image that ``channels`` would shrink below 1×1.

    Example:
        >>> ConvDecoder(16, (1, 28, 28), 1, (32, 64))(torch.zeros(2, 16)).shape
        torch.Size([2, 1, 28, 28])
    """

    def __init__(self, in_features: int, input_shape: Sequence[int], out_channels: int, channels: Sequence[int] = (32, 64)):
        super().__init__()
        _, h, w = input_shape
        heights = conv_output_sizes(h, len(channels))
        widths = conv_output_sizes(w, len(channels))
        if min(heights[-1], widths[-1]) < 1:
            raise ValueError(f"{len(channels)} stride-2 convolutions shrink a {h}×{w} image below 1×1; use fewer channels entries")
        self.start = (channels[-1], heights[-1], widths[-1])
        self.project = nn.Sequential(nn.Linear(in_features, math.prod(self.start)), nn.ReLU())
        layers: list[nn.Module] = []
        outs = [out_channels, *channels[:-1]]  # layer i maps channels[i] -> outs[i]
        for i in reversed(range(len(channels))):
            pad = (heights[i] - 2 * heights[i + 1], widths[i] - 2 * widths[i + 1])
            layers.append(nn.ConvTranspose2d(channels[i], outs[i], 4, stride=2, padding=1, output_padding=pad))
            if i > 0:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.project(z).view(-1, *self.start))
