"""Mixed precision and compilation: densities stay float32, bf16 is used only where it is fast, compile is exact."""

import pytest
import torch

import vaekit
from vaekit.errors import ConfigError
from vaekit.train import precision as precision_module
from vaekit.train.precision import check_compile, cpu_has_native_bf16, resolve_precision

CPU = torch.device("cpu")


def test_cpu_flags():
    assert cpu_has_native_bf16("flags : fpu avx2 avx512f avx512_bf16 amx_tile")
    assert cpu_has_native_bf16("flags : fpu amx_bf16")
    assert not cpu_has_native_bf16("flags : fpu avx2 avx512f avx512_vnni")


def test_resolve_precision(monkeypatch):
    assert resolve_precision("fp32", CPU) == (None, None)
    with pytest.raises(ConfigError, match="precision must be one of fp32, bf16"):
        resolve_precision("fp16", CPU)
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(precision_module, "bf16_speedup", lambda device_type="cpu": 1.8)
    assert resolve_precision("bf16", CPU) == (torch.bfloat16, None)
    monkeypatch.setattr(precision_module, "bf16_speedup", lambda device_type="cpu": 0.55)
    dtype, note = resolve_precision("bf16", CPU)
    assert dtype is None and "slow" in note and "0.55×" in note and "\n" not in note
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: False)
    dtype, note = resolve_precision("bf16", CPU)
    assert dtype is None and "no AVX512-BF16" in note


def test_bf16_speedup_is_measured():
    speedup = precision_module.bf16_speedup("cpu", size=64, repeats=3)
    assert 0.01 < speedup < 100


@pytest.mark.parametrize("posterior", ["diagonal", "full_covariance"])
def test_bodies_run_in_bf16_and_densities_in_fp32(posterior):
    """Under body_dtype=bf16 the bodies' outputs are cast back: q(z|x) and p(x|z) carry float32 parameters,
    and the loss equals the loss of an fp32 model whose bodies are rounded to bf16, to bf16 accuracy."""
    torch.manual_seed(0)
    model = vaekit.create("vae", input_shape=(1, 8, 8), latent_dim=3, hidden_dims=(32,), arch="mlp", posterior=posterior,
                          free_bits=0.1)
    x = torch.rand(16, 1, 8, 8).bernoulli()
    torch.manual_seed(1)
    exact = model.loss(x)
    model.body_dtype = torch.bfloat16
    q = model.encode(x)
    params = [q.mean, q.variance]
    assert all(p.dtype == torch.float32 for p in params)
    px = model.decode(q.rsample())
    assert px.base_dist.logits.dtype == torch.float32 and px.log_prob(x).dtype == torch.float32
    # the bodies did run in bf16: their output differs from fp32's by bf16 rounding, not by nothing
    h32 = model.encoder(x).detach()
    h16 = model.run_body(model.encoder, x).detach()
    assert h16.dtype == torch.float32 and 0 < float((h16 - h32).abs().max()) < 0.05 * float(h32.abs().max())
    torch.manual_seed(1)
    mixed = model.loss(x)
    for k in exact:
        assert mixed[k].dtype == torch.float32, k
        torch.testing.assert_close(mixed[k], exact[k], rtol=2e-2, atol=0.5, msg=k)
    model.body_dtype = None


def test_fit_bf16_where_slow_warns_once_and_trains_fp32(monkeypatch):
    monkeypatch.setattr(precision_module, "bf16_speedup", lambda device_type="cpu": 0.5)
    x = torch.rand(64, 1, 4, 4)
    model = vaekit.create("ae", input_shape=(1, 4, 4), latent_dim=2, hidden_dims=(8,), arch="mlp")
    with pytest.warns(RuntimeWarning, match="bf16 would be slow"):
        result = vaekit.fit(model, x, epochs=1, quiet=True, precision="bf16")
    assert result.settings["precision"] == "fp32" and model.body_dtype is None


def test_fit_bf16_where_fast_trains_in_bf16_and_restores_fp32(monkeypatch):
    """Forced to bf16 (as on a CPU with a fast bf16 matmul): a VAE with a full-covariance posterior, free bits and KL
    warm-up trains to a loss close to fp32 training's; evaluation afterwards runs in fp32."""
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(precision_module, "bf16_speedup", lambda device_type="cpu": 2.0)
    x = vaekit.data.load_digits("train").x[:512].bernoulli(generator=torch.Generator().manual_seed(0))
    losses = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = vaekit.create("vae", input_shape=(1, 8, 8), latent_dim=4, hidden_dims=(64,), arch="mlp", posterior="full_covariance",
                              free_bits=0.05, warmup_steps=20)
        seen = []
        original = model.run_body
        model.run_body = lambda body, inputs: (seen.append(model.body_dtype), original(body, inputs))[1]
        result = vaekit.fit(model, x[:448], x[448:], epochs=4, batch_size=32, quiet=True, precision=precision)
        assert result.settings["precision"] == precision and model.body_dtype is None
        assert set(seen) == ({None} if precision == "fp32" else {torch.bfloat16})
        losses[precision] = result.history[-1]["val/loss"]
    assert abs(losses["bf16"] - losses["fp32"]) < 0.03 * abs(losses["fp32"])


def test_compile_refused_without_a_cxx_compiler(monkeypatch):
    monkeypatch.setattr(precision_module.shutil, "which", lambda name: None)
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(ConfigError, match="C\\+\\+ compiler"):
        check_compile(CPU)
    x = torch.rand(32, 1, 4, 4)
    with pytest.raises(ConfigError, match="without --compile"):
        vaekit.fit(vaekit.create("ae", input_shape=(1, 4, 4), latent_dim=2, hidden_dims=(8,), arch="mlp"), x, epochs=1,
                   quiet=True, compile=True)


def test_a_failing_compilation_is_one_config_error_and_the_checkpoint_is_intact(tmp_path, monkeypatch):
    x = torch.rand(32, 1, 4, 4)
    model = vaekit.create("ae", input_shape=(1, 4, 4), latent_dim=2, hidden_dims=(8,), arch="mlp")
    vaekit.fit(model, x, epochs=1, quiet=True, out_dir=tmp_path)
    before = (tmp_path / "checkpoint.safetensors").read_bytes()

    def broken(fn, **kwargs):
        def call(*args):
            raise torch._dynamo.exc.TorchDynamoException("inductor: unsupported operator aten.foo\nmore detail")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    with pytest.raises(ConfigError, match=r"compile=True failed on this model \(TorchDynamoException: inductor: unsupported"):
        vaekit.fit(model, x, epochs=2, quiet=True, out_dir=tmp_path, compile=True)
    assert (tmp_path / "checkpoint.safetensors").read_bytes() == before


@pytest.mark.slow
def test_compiled_training_equals_eager_training_without_recompiling_each_step():
    """torch.compile of the loss of a deterministic autoencoder with a KL-free objective reaches the eager
    weights; a VAE with KL warm-up (its objective reads model.step) compiles a bounded number of graphs."""
    import torch._dynamo

    x = vaekit.data.load_digits("train").x[:256]
    weights = []
    for compiled in (False, True):
        torch.manual_seed(0)
        model = vaekit.create("ae", input_shape=(1, 8, 8), latent_dim=3, hidden_dims=(32,), arch="mlp")
        vaekit.fit(model, x, epochs=2, batch_size=64, quiet=True, compile=compiled)
        weights.append(model.state_dict())
    for k in weights[0]:
        torch.testing.assert_close(weights[1][k], weights[0][k], rtol=1e-4, atol=1e-5, msg=k)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    model = vaekit.create("vae", input_shape=(1, 8, 8), latent_dim=3, hidden_dims=(32,), arch="mlp", warmup_steps=30)
    vaekit.fit(model, x, epochs=3, batch_size=32, quiet=True, compile=True)  # 24 steps, each with another model.step
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] <= 6
