r"""Feature-space (perceptual) reconstruction: the pixel NLL plus distances between a frozen network's feature maps."""

from __future__ import annotations

import itertools
from typing import Sequence

import torch
from torch import nn
from torch.distributions import Distribution

from vaekit.errors import ConfigError

__all__ = ["FeatureReconstruction", "feature_distance", "feature_maps", "feature_shapes", "freeze"]


def freeze(network: nn.Module) -> nn.Module:
    """``network`` itself, in eval mode with every parameter's ``requires_grad`` off (a fixed feature map)."""
    network.eval()
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    return network


def feature_maps(network: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """φ_1(x), …, φ_L(x): ``network.feature_maps(x)`` if it has one, else its output (a tensor, or a list/tuple of tensors).

    Each is a tensor (B, ...) with the batch first.
    """
    out = network.feature_maps(x) if callable(getattr(network, "feature_maps", None)) else network(x)
    layers = [out] if isinstance(out, torch.Tensor) else list(out) if isinstance(out, (list, tuple)) else None
    if not layers or not all(isinstance(t, torch.Tensor) and t.dim() >= 1 and t.shape[0] == x.shape[0] for t in layers):
        raise ConfigError(
            f"feature_network must return a tensor (B, ...) or a list/tuple of them (one per layer), with B = {x.shape[0]} "
            f"rows for a batch of {x.shape[0]}; it returned {type(out).__name__}"
        )
    return layers


def feature_shapes(network: nn.Module, input_shape: Sequence[int]) -> list[tuple[int, ...]]:
    """The shape (without the batch) of each feature map ``network`` gives for inputs of ``input_shape``.

    Runs a batch of two zero inputs; a network that cannot take them is a :class:`ConfigError`
    naming both shapes.
    """
    reference = next(itertools.chain(network.parameters(), network.buffers()), None)
    dtype = reference.dtype if reference is not None and reference.is_floating_point() else torch.float32
    device = reference.device if reference is not None else None
    probe = torch.zeros(2, *input_shape, dtype=dtype, device=device)
    try:
        with torch.no_grad():
            layers = feature_maps(network, probe)
    except ConfigError:
        raise
    except (RuntimeError, ValueError, TypeError, IndexError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"feature_network cannot take inputs of shape (batch, {', '.join(map(str, input_shape))}), "
                          f"the data's: {first}") from None
    return [tuple(t.shape[1:]) for t in layers]


def feature_distance(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor], layer_weights: Sequence[float]) -> torch.Tensor:
    r"""Σ_l w_l ‖a_l − b_l‖² per example, shape (B,): squared differences summed over each layer's values
    (a layer of shape (B,), one value per example, is its squared difference)."""
    if not len(a) == len(b) == len(layer_weights):
        raise ConfigError(f"need one layer weight per feature layer: {len(a)} and {len(b)} layers, {len(layer_weights)} weights")
    total = 0
    for w, fa, fb in zip(layer_weights, a, b):
        squared = (fa - fb).pow(2)
        total = total + w * (squared.flatten(1).sum(1) if squared.dim() > 1 else squared)
    return total


class FeatureReconstruction:
    r"""c(x, z) = −log p(x|z) + λ · Σ_l w_l ‖φ_l(x) − φ_l(x̂)‖² with x̂ = E[x|z], the decoder's mean.

    φ_1, …, φ_L are the feature maps of a fixed network (Hou et al. used layers of VGG-19; vaekit
    takes any frozen ``nn.Module``, e.g. a classifier from ``vaekit train-classifier``). The
    feature term asks a reconstruction to look the same *to that network* (edges, strokes,
    textures) rather than pixel by pixel, which blurs less than the pixel term alone. Used as
    the ELBO's reconstruction (``ELBO(reconstruction=...)``), the DFC-VAE loss is

        −log p(x|z) + λ · Σ_l w_l ‖φ_l(x) − φ_l(x̂)‖² + β · KL(q(z|x) ‖ p(z)).

    Hou et al. normalise each layer by 1/(2 C_l H_l W_l): that is w_l = 1/(2 C_l H_l W_l) here.
    The targets φ(x) carry no gradient; gradients reach the decoder through φ(x̂) only, never
    the network's parameters (frozen). The network is kept as a plain attribute, not a
    sub-module: it is not part of the model's ``state_dict`` and is moved to the data's device
    and dtype when first used there.

    Arguments:
        network: the feature network (frozen in place: eval mode, ``requires_grad`` off).
        weight: λ ≥ 0, the weight of the feature term.
        layer_weights: w_l ≥ 0, one per feature layer, or one value for every layer.

    References:
        Deep Feature Consistent Variational Autoencoder (Hou, Shen, Sun & Qiu, WACV 2017),
        arXiv:1610.00291.

    Example:
        >>> from vaekit.objectives import ELBO
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU())
        >>> objective = ELBO(reconstruction=FeatureReconstruction(net, weight=1.0))
    """

    def __init__(self, network: nn.Module, *, weight: float = 1.0, layer_weights: Sequence[float] = (1.0,)):
        if not isinstance(network, nn.Module):
            raise ConfigError(f"feature_network must be an nn.Module, got {type(network).__name__}")
        if not weight >= 0:
            raise ConfigError(f"weight (λ, the feature term's weight) must be ≥ 0, got {weight}")
        weights = tuple(float(w) for w in layer_weights)
        if not weights or any(not w >= 0 for w in weights):
            raise ConfigError(f"layer_weights must be one or more numbers ≥ 0, got {tuple(layer_weights)}")
        self.network, self.weight, self.layer_weights = freeze(network), float(weight), weights

    def weights_for(self, num_layers: int) -> tuple[float, ...]:
        """w_1 … w_L for a network with ``num_layers`` feature layers (one given value repeats)."""
        if len(self.layer_weights) == 1:
            return self.layer_weights * num_layers
        if len(self.layer_weights) != num_layers:
            raise ConfigError(f"layer_weights has {len(self.layer_weights)} values but the feature network gives {num_layers} "
                              f"feature layers: give 1 or {num_layers} weights")
        return self.layer_weights

    def _follow(self, x: torch.Tensor) -> None:
        reference = next(itertools.chain(self.network.parameters(), self.network.buffers()), None)
        if reference is not None and (reference.device != x.device or (reference.is_floating_point() and reference.dtype != x.dtype)):
            self.network.to(device=x.device, dtype=x.dtype)

    def perceptual(self, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        r"""Σ_l w_l ‖φ_l(x) − φ_l(x̂)‖² per example, shape (B,); gradients flow through x̂ only."""
        self._follow(x_hat)
        with torch.no_grad():
            target = feature_maps(self.network, x.to(x_hat.dtype))
        features = feature_maps(self.network, x_hat)
        return feature_distance(features, target, self.weights_for(len(features)))

    def __call__(self, px: Distribution, x: torch.Tensor) -> torch.Tensor:
        pixel = -px.log_prob(x)
        return pixel + self.weight * self.perceptual(x, px.mean) if self.weight else pixel
