"""An autoregressive distribution over grids of discrete codes: the gated PixelCNN.

The VQ-VAE's prior over its (h, w) grid of code indices k ∈ {0..K−1}^{h×w} (van den Oord
et al. 2017, §3.3) is fitted after the autoencoder, in raster order:

    p(k) = Π_{i=1}^{h·w} p(k_i | k_1, …, k_{i−1}),

each factor a softmax over the K codes computed by a gated PixelCNN (van den Oord et al.
2016). :class:`GatedPixelCNN` is the network and, like every prior module in vaekit, a module
whose ``forward()`` returns the distribution (:class:`CodeGridDistribution`, with
``log_prob`` and ``sample``).

References:
    Conditional Image Generation with PixelCNN Decoders (van den Oord, Kalchbrenner,
    Vinyals, Espeholt, Graves & Kavukcuoglu, NeurIPS 2016), arXiv:1606.05328. Neural Discrete
    Representation Learning (van den Oord, Vinyals & Kavukcuoglu, NeurIPS 2017), arXiv:1711.00937.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Categorical, Distribution, constraints

__all__ = ["GatedPixelCNN", "GatedMaskedLayer", "CodeGridDistribution", "gate"]


def gate(a: torch.Tensor) -> torch.Tensor:
    r"""The gated activation tanh(W_f ∗ x) ⊙ σ(W_g ∗ x): ``a`` holds the two halves along dim 1.

    (van den Oord et al. 2016, eq. 2.)
    """
    f, g = a.chunk(2, dim=1)
    return torch.tanh(f) * torch.sigmoid(g)


class GatedMaskedLayer(nn.Module):
    r"""One layer of the gated PixelCNN: a vertical and a horizontal stack (van den Oord et al. 2016, §2.2, fig. 2).

    * Vertical stack: a (⌊k/2⌋+1) × k convolution over the rows above and the current row,
      v' = gate(V ∗ v). It sees every column of those rows, so the stack has no blind spot.
    * Horizontal stack: a 1 × (⌊k/2⌋+1) convolution over the current row up to the current
      column, plus the vertical stack's pre-activation *shifted down one row* (so it only
      brings rows strictly above) through a 1×1 convolution:
      h' = h + W ∗ gate(H ∗ h + U ∗ shift(V ∗ v)).
    * The first layer (``first=True``) masks the current column of the horizontal kernel
      (mask "A": position i does not see its own input) and has no residual connection;
      later layers see the current column of the previous layer's features (mask "B"), which
      depend only on earlier positions.

    Position (r, c) of the output therefore depends only on inputs at rows < r, and at row r
    on columns < c: strictly earlier positions in raster order.

    Arguments:
        channels: feature channels of both stacks.
        kernel_size: k (odd), the width of the vertical kernel.
        first: mask "A" and no residual (the layer that reads the embedded input).
    """

    def __init__(self, channels: int, kernel_size: int, first: bool):
        super().__init__()
        self.pad = kernel_size // 2
        self.vertical = nn.Conv2d(channels, 2 * channels, (self.pad + 1, kernel_size))
        self.horizontal = nn.Conv2d(channels, 2 * channels, (1, self.pad + 1))
        self.vertical_to_horizontal = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.horizontal_out = nn.Conv2d(channels, channels, 1)
        self.first = first
        mask = torch.ones_like(self.horizontal.weight)
        if first:
            mask[..., -1] = 0  # the current column
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, v: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.pad
        v_pre = self.vertical(F.pad(v, (p, p, p, 0)))  # row r sees rows r−p..r
        shifted = F.pad(v_pre, (0, 0, 1, 0))[:, :, :-1]  # row r now holds row r−1: only rows above
        h_pre = F.conv2d(F.pad(h, (p, 0, 0, 0)), self.horizontal.weight * self.mask, self.horizontal.bias)
        h_new = self.horizontal_out(gate(h_pre + self.vertical_to_horizontal(shifted)))
        return gate(v_pre), h_new if self.first else h + h_new


class CodeGridDistribution(Distribution):
    r"""p(k) = Π_i softmax(f(k_{<i}))_{k_i} over grids k ∈ {0..K−1}^{h×w}, raster order.

    ``log_prob(k)`` takes (*batch, h, w) long grids and returns (*batch,) in nats (one pass of
    the network); ``sample((n,))`` draws n grids position by position (h·w passes).
    ``batch_shape`` is (), ``event_shape`` (h, w).

    Arguments:
        network: the :class:`GatedPixelCNN` giving the logits.
    """

    arg_constraints: dict = {}
    has_rsample = False

    def __init__(self, network: "GatedPixelCNN"):
        self.network = network
        super().__init__(torch.Size(), torch.Size(network.grid_shape), validate_args=False)

    @property
    def support(self) -> constraints.Constraint:
        return constraints.independent(constraints.integer_interval(0, self.network.num_codes - 1), 2)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        batch = value.shape[:-2]
        grids = value.reshape(-1, *self.event_shape)
        log_p = self.network.logits(grids).log_softmax(1).gather(1, grids.unsqueeze(1)).squeeze(1)
        return log_p.flatten(1).sum(1).reshape(batch)

    @torch.no_grad()
    def sample(self, sample_shape: torch.Size | Sequence[int] = torch.Size()) -> torch.Tensor:
        sample_shape = torch.Size(sample_shape)
        n = math.prod(sample_shape)
        h, w = self.event_shape
        device = next(self.network.parameters()).device
        grids = torch.zeros(n, h, w, dtype=torch.long, device=device)
        for r in range(h):
            for c in range(w):
                grids[:, r, c] = Categorical(logits=self.network.logits(grids)[:, :, r, c]).sample()
        return grids.reshape(*sample_shape, h, w)


class GatedPixelCNN(nn.Module):
    r"""Gated PixelCNN over (h, w) grids of K-way codes; ``forward()`` returns :class:`CodeGridDistribution`.

    logits(k) = O(h_L),  (v_0, h_0) = (E[k], E[k]),  (v_l, h_l) = layer_l(v_{l−1}, h_{l−1})

    with E an embedding of the K codes into ``channels`` dimensions, L = ``layers`` gated layers
    (:class:`GatedMaskedLayer`; the first with mask "A"), and O = 1×1 conv ∘ ReLU ∘ 1×1 conv ∘
    ReLU to K logits per position. The logits at position i depend only on positions < i in
    raster order. The receptive field grows by ⌊k/2⌋ rows and columns per layer, so it covers
    every earlier position of the grid when ``layers`` · ⌊k/2⌋ ≥ max(h, w) − 1 (checked).

    Arguments:
        num_codes: K, the number of codes (the VQ-VAE's ``codebook_size``).
        grid_shape: (h, w).
        channels: feature channels.
        layers: L, gated layers.
        kernel_size: k, odd, ≥ 3.

    References:
        Conditional Image Generation with PixelCNN Decoders (van den Oord et al., NeurIPS 2016),
        arXiv:1606.05328.

    Example:
        >>> prior = GatedPixelCNN(16, (4, 4), channels=8, layers=2)
        >>> p = prior()
        >>> k = p.sample((3,))
        >>> k.shape, p.log_prob(k).shape
        (torch.Size([3, 4, 4]), torch.Size([3]))
    """

    def __init__(self, num_codes: int, grid_shape: Sequence[int], *, channels: int = 32, layers: int = 6, kernel_size: int = 5):
        super().__init__()
        h, w = (int(s) for s in grid_shape)
        if num_codes < 2 or min(h, w) < 1 or channels < 1 or layers < 1:
            raise ValueError(f"GatedPixelCNN needs num_codes ≥ 2, a grid of ≥ 1×1, channels ≥ 1 and layers ≥ 1; got "
                             f"{num_codes}, {(h, w)}, {channels}, {layers}")
        if kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and ≥ 3, got {kernel_size}")
        if layers * (kernel_size // 2) < max(h, w) - 1:
            need = -(-(max(h, w) - 1) // (kernel_size // 2))
            raise ValueError(f"{layers} layers of kernel {kernel_size} do not see the whole {h}×{w} grid; use layers ≥ {need}")
        self.num_codes, self.grid_shape = int(num_codes), (h, w)
        self.channels, self.layers, self.kernel_size = int(channels), int(layers), int(kernel_size)
        self.embedding = nn.Embedding(num_codes, channels)
        self.stack = nn.ModuleList(GatedMaskedLayer(channels, kernel_size, first=i == 0) for i in range(layers))
        self.output = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, num_codes, 1))

    @property
    def config(self) -> dict:
        """The arguments that rebuild this network."""
        return {"num_codes": self.num_codes, "grid_shape": list(self.grid_shape), "channels": self.channels,
                "layers": self.layers, "kernel_size": self.kernel_size}

    def embed(self, grids: torch.Tensor) -> torch.Tensor:
        """E[k]: (B, h, w) long -> (B, channels, h, w)."""
        return self.embedding(grids).permute(0, 3, 1, 2)

    def logits_from_embedding(self, e: torch.Tensor) -> torch.Tensor:
        """The logits (B, K, h, w) from an embedded grid (B, channels, h, w); differentiable in ``e``."""
        v = h = e
        for layer in self.stack:
            v, h = layer(v, h)
        return self.output(h)

    def logits(self, grids: torch.Tensor) -> torch.Tensor:
        """Logits (B, K, h, w) of p(k_i | k_<i) at every position i, one pass."""
        return self.logits_from_embedding(self.embed(grids))

    def forward(self) -> CodeGridDistribution:
        return CodeGridDistribution(self)

    def extra_repr(self) -> str:
        return f"num_codes={self.num_codes}, grid_shape={self.grid_shape}"
