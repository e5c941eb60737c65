"""The trainer, evaluation and samplers on a CUDA GPU: data, RNG and steps stay on the device.

Marked ``cuda``: these run where a GPU is present (``pytest -m cuda``) and are skipped, with
that reason, on machines without one. The same code paths run on the CPU in the rest of the
suite; here the point is that nothing assumes a CPU (a tensor left on the host, a CPU
generator used for GPU data, a pinned-memory copy that does not happen).
"""

import numpy as np
import pytest
import torch

import vaekit
from vaekit.data import open_file_dataset

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

SHAPE = dict(input_shape=(1, 8, 8), latent_dim=3, hidden_dims=(64,), arch="mlp")


def _digits() -> torch.Tensor:
    return vaekit.data.load_digits("train").x[:512]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fit_in_memory_on_the_gpu(precision):
    torch.manual_seed(0)
    model = vaekit.create("vae", **SHAPE, posterior="full_covariance", free_bits=0.05)
    result = vaekit.fit(model, _digits()[:448], _digits()[448:], epochs=3, batch_size=64, quiet=True, device="cuda",
                        binarize_data="dynamic", precision=precision)
    assert model.device.type == "cuda" and result.settings["precision"] == precision
    assert result.history[-1]["val/loss"] < result.history[0]["val/loss"]


def test_fit_from_a_file_on_the_gpu_equals_in_memory(tmp_path):
    """Pinned, non-blocking copies of batches read from a memory-mapped file give the in-memory path's weights."""
    np.save(tmp_path / "digits.npy", _digits().numpy())
    weights = []
    for data in (_digits(), open_file_dataset(tmp_path / "digits.npy")):
        torch.manual_seed(0)
        model = vaekit.create("ae", **SHAPE)
        vaekit.fit(model, data, epochs=2, batch_size=64, quiet=True, device="cuda")
        weights.append(model.state_dict())
    for k in weights[0]:
        torch.testing.assert_close(weights[1][k], weights[0][k], rtol=1e-5, atol=1e-6, msg=k)


def test_log_likelihood_and_sampling_on_the_gpu():
    torch.manual_seed(0)
    model = vaekit.create("vae", **SHAPE).cuda()
    x = _digits()[:32].bernoulli().cuda()
    ll = vaekit.log_likelihood(model, x, num_samples=1000)
    assert ll.device.type == "cpu" and torch.isfinite(ll).all()  # computed on the GPU, returned on the host
    cpu = vaekit.log_likelihood(model.cpu(), x.cpu(), num_samples=1000)
    assert abs(float(ll.mean().cpu()) - float(cpu.mean())) < 1.0
    model.cuda()
    assert model.sample(8).device.type == "cuda"


def test_evaluate_a_file_on_the_gpu_equals_the_cpu(tmp_path):
    """Batches read from a memory-mapped file, binarised as read, copied from pinned memory: the same metrics as on the CPU."""
    np.save(tmp_path / "digits.npy", _digits().numpy())
    torch.manual_seed(0)
    model = vaekit.create("vae", **SHAPE)
    results = []
    for device in ("cuda", "cpu"):
        torch.manual_seed(1)
        results.append(vaekit.evaluate(model.to(device), open_file_dataset(tmp_path / "digits.npy"), batch_size=100, binarize="static"))
    for k in ("mse", "active_units", "num_examples"):
        assert results[0][k] == pytest.approx(results[1][k], rel=1e-4), k


def test_vamp_prior_training_step_on_the_gpu():
    """The VampPrior's float64 quadratic form on the GPU: the loss and its gradients match the CPU's."""
    torch.manual_seed(0)
    model = vaekit.create("vamp_vae", **SHAPE, pseudo_inputs=20)
    x = _digits()[:64].bernoulli()
    grads = []
    for device in ("cpu", "cuda"):
        model.to(device).zero_grad()
        prior = model.prior()
        z = torch.randn(64, 3, generator=torch.Generator().manual_seed(2)).to(device)
        prior.log_prob(z).sum().backward()
        grads.append(model.prior_module.pseudo_inputs.grad.cpu())
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-6)
    assert vaekit.fit(model, x, epochs=1, batch_size=32, quiet=True, device="cuda").history[-1]["train/loss"] > 0


def test_weight_averaging_on_the_gpu(tmp_path):
    """fit(ema=β) keeps its averaged copy on the GPU, validates it, and checkpoints it beside the live weights."""
    torch.manual_seed(0)
    model = vaekit.create("vae", **SHAPE)
    result = vaekit.fit(model, _digits()[:448], _digits()[448:], epochs=2, batch_size=64, quiet=True, device="cuda",
                        binarize_data="dynamic", ema=0.9, out_dir=tmp_path)
    assert model.device.type == "cuda" and result.settings["ema"] == 0.9
    from safetensors.torch import load_file

    checkpoint = load_file(tmp_path / "checkpoint.safetensors")
    assert any(k.startswith("average.") for k in checkpoint) and any(k.startswith("model.") for k in checkpoint)
