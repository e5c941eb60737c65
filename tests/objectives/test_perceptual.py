"""The feature-space reconstruction cost against a brute-force sum, a closed-form gradient, and its network contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Bernoulli, Independent, Normal

from vaekit.errors import ConfigError
from vaekit.objectives import FeatureReconstruction, feature_distance, feature_maps
from vaekit.objectives.perceptual import feature_shapes, freeze


class TwoLayers(nn.Module):
    """A network exposing feature_maps (the FeatureClassifier interface) and class logits from forward."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.fc = nn.Linear(3 * 6 * 6, 5)

    def feature_maps(self, x):
        h = torch.relu(self.conv(x))
        return [h, torch.tanh(self.fc(h.flatten(1)))]

    def forward(self, x):
        return self.feature_maps(x)[-1].sum(1, keepdim=True)  # not the features: feature_maps takes precedence


def test_feature_distance_is_the_weighted_sum_of_squared_differences():
    g = np.random.default_rng(0)
    a = [g.normal(size=(4, 3, 5, 5)), g.normal(size=(4, 7))]
    b = [g.normal(size=(4, 3, 5, 5)), g.normal(size=(4, 7))]
    w = (0.3, 2.0)
    expected = [sum(w[l] * np.sum((a[l][i] - b[l][i]) ** 2) for l in range(2)) for i in range(4)]
    got = feature_distance([torch.from_numpy(t) for t in a], [torch.from_numpy(t) for t in b], w)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    with pytest.raises(ConfigError, match="one layer weight per feature layer"):
        feature_distance([torch.from_numpy(t) for t in a], [torch.from_numpy(t) for t in b], (1.0,))


def test_feature_maps_contract():
    x = torch.rand(2, 1, 8, 8)
    net = TwoLayers()
    assert [tuple(t.shape) for t in feature_maps(net, x)] == [(2, 3, 6, 6), (2, 5)]  # feature_maps, not forward
    single = nn.Sequential(nn.Flatten(), nn.Linear(64, 4))
    assert [tuple(t.shape) for t in feature_maps(single, x)] == [(2, 4)]  # a tensor: one layer

    class Pair(nn.Module):
        def forward(self, x):
            return x.mean((2, 3)), x.flatten(1)

    assert [tuple(t.shape) for t in feature_maps(Pair(), x)] == [(2, 1), (2, 64)]  # a tuple: one per layer

    class Scalar(nn.Module):
        def forward(self, x):
            return float(x.sum())

    with pytest.raises(ConfigError, match="must return a tensor"):
        feature_maps(Scalar(), x)
    assert feature_shapes(net, (1, 8, 8)) == [(3, 6, 6), (5,)]
    with pytest.raises(ConfigError, match=r"cannot take inputs of shape \(batch, 1, 28, 28\)"):
        feature_shapes(net, (1, 28, 28))


def test_cost_is_pixel_nll_plus_weighted_feature_distance():
    torch.manual_seed(0)
    net = TwoLayers()
    x = torch.rand(3, 1, 8, 8).bernoulli()
    logits = torch.randn(3, 1, 8, 8)
    px = Independent(Bernoulli(logits=logits), 3)
    cost = FeatureReconstruction(net, weight=0.7, layer_weights=(2.0, 0.5))
    mean = torch.sigmoid(logits)
    pixel = -(x * torch.log(mean) + (1 - x) * torch.log1p(-mean)).flatten(1).sum(1)
    with torch.no_grad():
        h_x, h_m = torch.relu(net.conv(x)), torch.relu(net.conv(mean))
        f_x, f_m = torch.tanh(net.fc(h_x.flatten(1))), torch.tanh(net.fc(h_m.flatten(1)))
    feature = 2.0 * (h_x - h_m).pow(2).flatten(1).sum(1) + 0.5 * (f_x - f_m).pow(2).sum(1)
    torch.testing.assert_close(cost(px, x), pixel + 0.7 * feature, rtol=1e-5, atol=1e-5)
    # one layer weight applies to every layer; weight 0 is the pixel term alone
    torch.testing.assert_close(FeatureReconstruction(net, layer_weights=(3.0,)).perceptual(x, mean), 3.0 * ((h_x - h_m).pow(2).flatten(1).sum(1)
                               + (f_x - f_m).pow(2).sum(1)), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(FeatureReconstruction(net, weight=0.0)(px, x), pixel, rtol=1e-5, atol=1e-5)


def test_gradient_reaches_the_reconstruction_and_not_the_network():
    """A linear feature map φ(x) = A·vec(x): ∇_x̂ ‖φ(x) − φ(x̂)‖² = −2 Aᵀ A (vec x − vec x̂)."""
    torch.manual_seed(1)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(16, 6, bias=False)).double()
    cost = FeatureReconstruction(linear, weight=1.0)
    x = torch.rand(2, 1, 4, 4, dtype=torch.float64)
    mean = torch.rand(2, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    px = Independent(Normal(mean, 1.0), 3)
    (grad,) = torch.autograd.grad(cost(px, x).sum(), mean)
    a = linear[1].weight.detach()
    pixel_grad = -(x - mean.detach())  # ∂/∂μ of the Gaussian NLL ½(x − μ)²
    feature_grad = (-2 * (x - mean.detach()).flatten(1) @ a.T @ a).view_as(x)
    torch.testing.assert_close(grad, pixel_grad + feature_grad)
    assert all(not p.requires_grad for p in linear.parameters()) and not linear.training  # frozen in place


def test_freeze_and_refusals():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Dropout(0.5))
    assert freeze(net) is net and not net.training and not any(p.requires_grad for p in net.parameters())
    cost = FeatureReconstruction(TwoLayers(), layer_weights=(1.0, 2.0, 3.0))
    with pytest.raises(ConfigError, match="layer_weights has 3 values but the feature network gives 2 feature layers: give 1 or 2"):
        cost.weights_for(2)
    with pytest.raises(ConfigError, match="weight"):
        FeatureReconstruction(net, weight=-1.0)
    with pytest.raises(ConfigError, match="layer_weights"):
        FeatureReconstruction(net, layer_weights=(-1.0,))
    with pytest.raises(ConfigError, match="nn.Module"):
        FeatureReconstruction("runs/classifier")  # type: ignore[arg-type]


def test_the_network_follows_the_data_dtype():
    net = TwoLayers()
    cost = FeatureReconstruction(net)
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    value = cost.perceptual(x, x * 0.9)
    assert value.dtype == torch.float64 and net.conv.weight.dtype == torch.float64


def test_a_feature_layer_of_one_value_per_example_is_its_squared_difference():
    """A network returning shape (B,) (a score per example) passes the contract, so the cost takes it."""
    torch.manual_seed(2)

    class Score(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 1)

        def forward(self, x):
            return self.fc(x).squeeze(-1)

    net = Score()
    assert feature_shapes(net, (4,)) == [()]
    x, mean = torch.randn(3, 4), torch.randn(3, 4)
    px = Independent(Normal(mean, 1.0), 1)
    with torch.no_grad():
        feature = (net.fc(x) - net.fc(mean)).squeeze(-1).pow(2)
    pixel = -Normal(mean, 1.0).log_prob(x).sum(1)
    torch.testing.assert_close(FeatureReconstruction(net, weight=0.5)(px, x), pixel + 0.5 * feature)
