"""Saving and loading samplers: bit-identical round trips, safetensors + JSON only, and refusals."""

import json
import shutil
import struct

import pytest
import torch
from safetensors import safe_open

import vaekit
from vaekit.errors import CheckpointError, ConfigError
from vaekit.samplers import FlowSampler, GaussianMixtureSampler, PriorSampler, fitted_kinds, load
from tests.apps.models import orthonormal, projector


def data(n: int = 300, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g) * torch.tensor([2.0, 1.0, 0.5, 0.1]) + (torch.rand(n, 1, generator=g) < 0.5) * 3


def run_with(tmp_path, name: str, seed: int = 0):
    model = projector(orthonormal(4, 2, seed=seed))
    model.save(tmp_path / name)
    return model, tmp_path / name


def small_flow() -> FlowSampler:
    return FlowSampler(transforms=1, hidden_dims=(8,), epochs=3, seed=0)


@pytest.mark.parametrize("make", [lambda: GaussianMixtureSampler(3, seed=1), small_flow], ids=["gmm", "flow"])
def test_round_trip_gives_bit_identical_samples(tmp_path, make):
    model, run = run_with(tmp_path, "run")
    sampler = make().fit(model, data())
    files = sampler.save(run)
    loaded = load(run)  # the single sampler there, bound to vaekit.load(run)
    def params(s):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in s.get_params().items()}

    assert type(loaded) is type(sampler) and params(loaded) == params(sampler)
    assert torch.equal(loaded.sample(50, seed=3), sampler.sample(50, seed=3))
    codes = torch.randn(10, 2)
    assert torch.equal(loaded.log_prob(codes), sampler.log_prob(codes))
    assert loaded.train_log_likelihood_ == sampler.train_log_likelihood_ and loaded.num_codes_ == 300
    assert set(files) == {"weights", "config"} and fitted_kinds(run) == [sampler.kind]


def test_files_are_safetensors_and_json(tmp_path):
    model, run = run_with(tmp_path, "run")
    GaussianMixtureSampler(2).fit(model, data()).save(run)
    new = sorted(p.name for p in run.iterdir() if p.name.startswith("sampler"))
    assert new == ["sampler_gmm.json", "sampler_gmm.safetensors"]
    raw = (run / "sampler_gmm.safetensors").read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])  # safetensors: an 8-byte header length, a JSON header, raw tensor bytes
    header = json.loads(raw[8 : 8 + size])
    assert {k for k in header if k != "__metadata__"} == {"weights", "means", "covariances", "precisions_cholesky"}
    assert header["covariances"]["dtype"] == "F64" and header["covariances"]["shape"] == [2, 2, 2]
    assert len(raw) == 8 + size + max(v["data_offsets"][1] for k, v in header.items() if k != "__metadata__")
    meta = json.loads((run / "sampler_gmm.json").read_text())
    assert meta["kind"] == "gmm" and meta["params"]["components"] == 2 and len(meta["model"]["sha256"]) == 64
    with safe_open(str(run / "model.safetensors"), framework="pt") as f:
        assert meta["model"]["sha256"] == f.metadata()["sha256"]  # the digest model.save wrote


def test_a_sampler_from_another_run_is_refused(tmp_path):
    model_a, run_a = run_with(tmp_path, "a", seed=0)
    _, run_b = run_with(tmp_path, "b", seed=1)
    GaussianMixtureSampler(2).fit(model_a, data()).save(run_a)
    for name in ("sampler_gmm.json", "sampler_gmm.safetensors"):
        shutil.copy(run_a / name, run_b / name)
    before = {p.name: p.read_bytes() for p in run_b.iterdir()}
    with pytest.raises(CheckpointError, match="fitted to another model.*vaekit fit-sampler"):
        load(run_b)
    assert {p.name: p.read_bytes() for p in run_b.iterdir()} == before  # nothing saved is touched


def test_a_retrained_model_makes_its_sampler_stale(tmp_path):
    model, run = run_with(tmp_path, "run")
    GaussianMixtureSampler(2).fit(model, data()).save(run)
    projector(orthonormal(4, 2, seed=7)).save(run)
    with pytest.raises(CheckpointError, match="another model"):
        load(run, "gmm")


def test_weights_of_another_fit_and_damaged_files_are_refused(tmp_path):
    model, run = run_with(tmp_path, "run")
    GaussianMixtureSampler(2, seed=0).fit(model, data()).save(run)
    json_first = (run / "sampler_gmm.json").read_bytes()
    GaussianMixtureSampler(2, seed=0).fit(model, data(seed=1)).save(run)
    (run / "sampler_gmm.json").write_bytes(json_first)
    with pytest.raises(CheckpointError, match="different fits"):
        load(run)
    GaussianMixtureSampler(2).fit(model, data()).save(run)
    raw = bytearray((run / "sampler_gmm.safetensors").read_bytes())
    raw[-3] ^= 0xFF
    (run / "sampler_gmm.safetensors").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="integrity|non-finite"):
        load(run)
    (run / "sampler_gmm.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load(run)


def test_choosing_the_kind(tmp_path):
    model, run = run_with(tmp_path, "run")
    with pytest.raises(ConfigError, match="no fitted sampler.*vaekit fit-sampler"):
        load(run)
    with pytest.raises(ConfigError, match="no fitted flow sampler.*--sampler flow"):
        load(run, "flow")
    with pytest.raises(ConfigError, match="unknown sampler 'vamp'"):
        load(run, "vamp")
    GaussianMixtureSampler(2).fit(model, data()).save(run)
    small_flow().fit(model, data()).save(run)
    with pytest.raises(ConfigError, match=r"several samplers \(flow, gmm\)"):
        load(run)
    assert isinstance(load(run, "flow", model=model), FlowSampler)


def test_prior_kind(tmp_path):
    vae = vaekit.create("vae", input_shape=(4,), latent_dim=2, hidden_dims=(8,))
    vae.save(tmp_path / "vae")
    prior = load(tmp_path / "vae", "prior")
    assert isinstance(prior, PriorSampler) and prior.sample(6, seed=0).shape == (6, 4)
    torch.manual_seed(0)
    z = vae.prior().sample((6,))
    torch.testing.assert_close(prior.sample_codes(6, seed=0), z)
    torch.testing.assert_close(prior.log_prob(z), torch.distributions.Normal(0, 1).log_prob(z).sum(-1).double())
    model, run = run_with(tmp_path, "ae")
    with pytest.raises(ConfigError, match="no prior.*vaekit fit-sampler"):
        load(run, "prior")
    with pytest.raises(ConfigError, match="nothing to save"):
        prior.save(tmp_path / "vae")


def test_save_refuses_a_folder_without_that_model(tmp_path):
    model, run = run_with(tmp_path, "run")
    sampler = GaussianMixtureSampler(2).fit(model, data())
    with pytest.raises(ConfigError, match="holds no saved model"):
        sampler.save(tmp_path / "empty")
    other = projector(orthonormal(4, 2, seed=3))
    other.save(tmp_path / "other")
    with pytest.raises(ConfigError, match="not the one this sampler was fitted to"):
        sampler.save(tmp_path / "other")
    assert not any(p.name.startswith("sampler") for p in (tmp_path / "other").iterdir())


def test_a_model_without_a_decoder_is_refused():
    model = projector(orthonormal(4, 2))
    model.decoder = None
    with pytest.raises(ConfigError, match="has no decoder"):
        GaussianMixtureSampler(2).fit(model, data())
