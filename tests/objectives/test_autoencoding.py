"""The autoencoder objective: reconstruction, activity penalties, contractive penalty, corruption.

Each term is checked against an independent computation: torch.nn.functional losses,
activations recomputed layer by layer, and Jacobians from torch.autograd.functional.
"""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.autograd.functional import jacobian
from torch.distributions import Bernoulli, Independent, Normal

import vaekit
from vaekit.errors import ConfigError
from vaekit.objectives import ActivityPenalty, jacobian_frobenius_sq, reconstruction_error


def test_reconstruction_error_is_sse_for_gaussian_and_bce_for_bernoulli():
    torch.manual_seed(0)
    x = torch.rand(4, 2, 3)
    mean = torch.randn(4, 2, 3)
    gauss = Independent(Normal(mean, 0.3), 2)
    torch.testing.assert_close(reconstruction_error(gauss, x), ((x - mean) ** 2).sum((1, 2)))
    logits = torch.randn(4, 2, 3)
    bern = Independent(Bernoulli(logits=logits, validate_args=False), 2)
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((1, 2))
    torch.testing.assert_close(reconstruction_error(bern, x), bce)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_ae_loss_is_the_batch_mean_reconstruction(likelihood):
    torch.manual_seed(0)
    model = vaekit.create("ae", input_shape=(7,), latent_dim=3, hidden_dims=(5,), likelihood=likelihood)
    x = torch.rand(6, 7)
    out = model.loss(x)
    assert set(out) == {"loss", "reconstruction"}
    raw = model.decoder(model.encode(x).mean)  # logits or means
    if likelihood == "gaussian":
        expected = ((x - raw) ** 2).sum(1).mean()
    else:
        expected = F.binary_cross_entropy_with_logits(raw, x, reduction="none").sum(1).mean()
    torch.testing.assert_close(out["loss"], expected)
    torch.testing.assert_close(out["reconstruction"], expected)


def _manual_activations(model, x):
    """Hidden activations of the MLP encoder recomputed layer by layer, then the code."""
    h, acts = x.flatten(1), []
    for layer in model.encoder.net:
        h = layer(h)
        if isinstance(layer, torch.nn.ReLU):
            acts.append(h)
    return acts + [model.posterior.net(h)]


@pytest.mark.parametrize("penalty", ["l1", "l2"])
@pytest.mark.parametrize("layer_weights", [(1.0,), (0.3, 2.0), (0.5, 0.0, 1.5)])
def test_activity_penalty_equals_its_independent_computation(penalty, layer_weights):
    torch.manual_seed(1)
    weight = 0.7
    model = vaekit.create("sparse_ae", input_shape=(9,), latent_dim=4, hidden_dims=(6, 5), likelihood="gaussian",
                          penalty=penalty, weight=weight, layer_weights=layer_weights)
    x = torch.randn(8, 9)
    out = model.loss(x)
    acts = _manual_activations(model, x)
    chosen = acts[len(acts) - len(layer_weights):]
    norms = [a.abs().sum(1) if penalty == "l1" else a.pow(2).sum(1).sqrt() for a in chosen]
    expected = sum(w * n for w, n in zip(layer_weights, norms)).mean()
    torch.testing.assert_close(out["sparsity"], expected)
    torch.testing.assert_close(out["loss"], out["reconstruction"] + weight * expected)
    out["loss"].backward()  # differentiable


def test_activity_penalty_checks_its_options():
    with pytest.raises(ConfigError, match="layer_weights has 4 entries"):
        vaekit.create("sparse_ae", input_shape=(9,), hidden_dims=(6, 5), layer_weights=(1, 1, 1, 1))
    with pytest.raises(ConfigError, match="unknown penalty"):
        ActivityPenalty(0.1, "l3")
    with pytest.raises(ConfigError, match="layer_weights"):
        ActivityPenalty(0.1, "l1", (1.0, -1.0))
    with pytest.raises(ConfigError, match="layer_weights"):
        ActivityPenalty(0.1, "l1", ("a",))


def _per_example_jacobian_sq(encode, x):
    """Σ J² for each example from the full Jacobian of torch.autograd.functional (one example at a time)."""
    return torch.stack([jacobian(lambda xi: encode(xi.unsqueeze(0))[0], xi).pow(2).sum() for xi in x])


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), d=st.integers(1, 4))
def test_jacobian_norm_equals_the_full_autograd_jacobian(seed, d):
    torch.manual_seed(seed)
    model = vaekit.create("contractive_ae", input_shape=(5,), latent_dim=d, hidden_dims=(7,), arch="mlp")
    x = torch.randn(3, 5, dtype=torch.float64)
    model = model.double()

    def encode(t):
        return model.encode(t).mean

    code, sq = jacobian_frobenius_sq(encode, x)
    torch.testing.assert_close(sq, _per_example_jacobian_sq(encode, x))
    torch.testing.assert_close(code, encode(x))


def test_contractive_term_for_a_conv_encoder_and_its_gradient():
    torch.manual_seed(3)
    model = vaekit.create("contractive_ae", input_shape=(1, 8, 8), latent_dim=3, arch="conv", channels=(2, 3), weight=0.5).double()
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)

    def encode(t):
        return model.encode(t).mean

    out = model.loss(x)
    expected = _per_example_jacobian_sq(encode, x).mean()
    torch.testing.assert_close(out["contractive"], expected)
    torch.testing.assert_close(out["loss"], out["reconstruction"] + 0.5 * expected)
    # gradient of the penalty w.r.t. the encoder weights: against create_graph Jacobians from autograd.functional
    weight = model.encoder.net[0].weight
    (g_ours,) = torch.autograd.grad(out["contractive"], weight)
    full = torch.stack([jacobian(lambda xi: encode(xi.unsqueeze(0))[0], xi, create_graph=True).pow(2).sum() for xi in x]).mean()
    (g_ref,) = torch.autograd.grad(full, weight)
    torch.testing.assert_close(g_ours, g_ref)


def test_contractive_term_is_computed_without_gradients_too():
    torch.manual_seed(0)
    model = vaekit.create("contractive_ae", input_shape=(4,), latent_dim=2, hidden_dims=(3,))
    x = torch.rand(5, 4)
    with torch.no_grad():
        value = model.loss(x)["contractive"]
    torch.testing.assert_close(value, model.loss(x)["contractive"].detach())
    assert not value.requires_grad


def test_linear_encoder_jacobian_is_its_weight():
    model = vaekit.create("linear_ae", input_shape=(6,), latent_dim=2)
    _, sq = jacobian_frobenius_sq(lambda t: model.encode(t).mean, torch.randn(4, 6))
    torch.testing.assert_close(sq, model.posterior.net.weight.pow(2).sum().expand(4))


def test_denoising_corrupts_the_input_only_in_training_and_keeps_the_clean_target():
    torch.manual_seed(0)
    model = vaekit.create("denoising_ae", input_shape=(10,), latent_dim=3, hidden_dims=(8,), noise="mask", noise_level=1.0)
    x = torch.rand(4, 10) * 0.8 + 0.1
    seen = []
    model.encoder.register_forward_pre_hook(lambda _m, args: seen.append(args[0].clone()))
    model.train()
    out = model.loss(x)
    assert torch.equal(seen[-1], torch.zeros_like(x))  # mask with p = 1: every entry dropped
    target = reconstruction_error(model.decode(model.encode(torch.zeros_like(x)).mean), x).mean()
    torch.testing.assert_close(out["reconstruction"], target)  # reconstruction of T(x) compared with x
    model.eval()
    out = model.loss(x)
    assert torch.equal(seen[-1], x)  # no corruption in evaluation mode
    torch.testing.assert_close(out["reconstruction"], reconstruction_error(model.decode(model.transform(x)), x).mean())


def test_salt_pepper_and_gaussian_corruption_are_drawn_per_batch():
    torch.manual_seed(0)
    model = vaekit.create("denoising_ae", input_shape=(50,), latent_dim=3, hidden_dims=(8,), noise="salt_pepper", noise_level=1.0)
    x = torch.rand(6, 50) * 0.5 + 0.25
    seen = []
    model.encoder.register_forward_pre_hook(lambda _m, args: seen.append(args[0].clone()))
    model.train()
    model.loss(x)
    low, high = float(x.min()), float(x.max())
    assert torch.all((seen[-1] == low) | (seen[-1] == high))  # every entry set to the data's min or max
    data = torch.cat([x, torch.zeros(1, 50), torch.ones(1, 50)])  # the training set spans [0, 1]
    vaekit.fit(model, data, epochs=1, batch_size=4, quiet=True)
    assert model.data_range == (0.0, 1.0)
    model.train()
    model.loss(x)  # a batch inside (0.25, 0.75) is salted and peppered with the training set's extremes
    assert torch.all((seen[-1] == 0.0) | (seen[-1] == 1.0)) and bool((seen[-1] == 0.0).any() and (seen[-1] == 1.0).any())
    gaussian = vaekit.create("denoising_ae", input_shape=(50,), latent_dim=3, hidden_dims=(8,), likelihood="gaussian", noise_level=0.2)
    gaussian.encoder.register_forward_pre_hook(lambda _m, args: seen.append(args[0].clone()))
    gaussian.loss(x)
    gaussian.loss(x)
    first, second = seen[-2] - x, seen[-1] - x
    assert not torch.equal(first, second)  # a fresh draw for every batch
    assert abs(float(torch.cat([first, second]).std()) - 0.2) < 0.03


def test_bad_noise_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown noise"):
        vaekit.create("denoising_ae", input_shape=(4,), noise="speckle")
    with pytest.raises(ConfigError, match="probability"):
        vaekit.create("denoising_ae", input_shape=(4,), noise="mask", noise_level=1.5)
