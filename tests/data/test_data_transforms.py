"""Binarisation, scaling, splitting and denoising corruptions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from vaekit.data import (
    Dataset,
    binarize,
    corrupt,
    min_max_scale,
    parse_noise,
    static_binarize,
    train_val_split,
)
from vaekit.errors import DataError


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- binarisation


def test_binarize_mean_of_many_draws_matches_intensity():
    p = torch.rand(64, generator=gen(1))
    p[:3] = torch.tensor([0.0, 1.0, 0.5])
    draws = binarize(p.expand(4000, 64).contiguous(), generator=gen(2))
    assert set(draws.unique().tolist()) <= {0.0, 1.0}
    assert draws.dtype == p.dtype and draws.shape == (4000, 64)
    # 4000 draws: standard error <= 0.008, so 0.04 is 5 sigma.
    torch.testing.assert_close(draws.mean(0), p, rtol=0, atol=0.04)
    assert torch.all(draws[:, 0] == 0) and torch.all(draws[:, 1] == 1)


def test_binarize_differs_between_calls_but_static_is_reproducible():
    x = torch.full((2000,), 0.5)
    assert not torch.equal(binarize(x), binarize(x))  # dynamic: a fresh draw each epoch
    a, b = static_binarize(x, seed=3), static_binarize(x, seed=3)
    assert torch.equal(a, b) and not torch.equal(a, static_binarize(x, seed=4))
    assert abs(float(a.mean()) - 0.5) < 0.05


def test_binarize_rejects_values_outside_unit_interval():
    with pytest.raises(DataError, match=r"\[0, 1\].*255"):
        binarize(torch.tensor([0.0, 255.0]))
    with pytest.raises(DataError, match="floating-point"):
        binarize(torch.tensor([0, 1]))


# ---------------------------------------------------------------- min_max_scale


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=6),
                  elements=st.floats(-1e3, 1e3, width=32)))
def test_min_max_scale_properties(array):
    x = torch.from_numpy(array)
    scaled, low, high = min_max_scale(x)
    assert scaled.shape == x.shape and low.shape == high.shape == x.shape[1:]
    assert float(scaled.min()) >= 0.0 and float(scaled.max()) <= 1.0 + 1e-6
    constant = high == low
    assert torch.all(scaled[:, constant] == 0)
    varying = ~constant
    torch.testing.assert_close(scaled.amin(0)[varying], torch.zeros(int(varying.sum())))
    torch.testing.assert_close(scaled.amax(0)[varying], torch.ones(int(varying.sum())))
    again, _, _ = min_max_scale(x, low, high)  # given statistics reproduce the result
    torch.testing.assert_close(again, scaled)


def test_min_max_scale_with_training_statistics():
    train = torch.tensor([[0.0, 10.0], [4.0, 10.0]])
    _, low, high = min_max_scale(train)
    test, _, _ = min_max_scale(torch.tensor([[2.0, 7.0], [8.0, 10.0]]), low, high)
    assert test.tolist() == [[0.5, 0.0], [2.0, 0.0]]
    clipped, _, _ = min_max_scale(torch.tensor([[8.0, 10.0]]), low, high, clip=True)
    assert clipped.tolist() == [[1.0, 0.0]]


# ---------------------------------------------------------------- train_val_split


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 300), fraction=st.floats(0.01, 0.99), seed=st.integers(0, 2**31))
def test_train_val_split_is_disjoint_and_covering(n, fraction, seed):
    data = Dataset(torch.arange(n, dtype=torch.float32).unsqueeze(1), torch.arange(n) % 3, name="d")
    n_val = round(n * fraction)
    if n_val in (0, n):
        with pytest.raises(DataError, match="empty"):
            train_val_split(data, fraction, seed)
        return
    train, val = train_val_split(data, fraction, seed)
    ids_train, ids_val = train.x[:, 0].long().tolist(), val.x[:, 0].long().tolist()
    assert len(val) == n_val and not set(ids_train) & set(ids_val)
    assert sorted(ids_train + ids_val) == list(range(n))
    assert train.y.tolist() == [i % 3 for i in ids_train]  # labels follow their examples


def test_train_val_split_is_seeded_and_random():
    data = Dataset(torch.arange(1000.0).unsqueeze(1))
    a = train_val_split(data, 0.2, seed=1)[1].x
    assert torch.equal(a, train_val_split(data, 0.2, seed=1)[1].x)
    assert not torch.equal(a, train_val_split(data, 0.2, seed=2)[1].x)
    assert not torch.equal(a[:, 0], torch.arange(800.0, 1000.0))  # not simply the tail
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(DataError, match="between 0 and 1"):
            train_val_split(data, bad)


# ---------------------------------------------------------------- corruptions


def test_train_val_split_accepts_numpy_fractions_and_names_a_non_number():
    """A numpy float32 val_fraction splits as the float does; a non-number is called one."""
    data = Dataset(torch.arange(10.0).reshape(10, 1), torch.arange(10))
    train, val = train_val_split(data, np.float32(0.3), seed=2)
    ref_train, ref_val = train_val_split(data, 0.3, seed=2)
    assert torch.equal(val.y, ref_val.y) and torch.equal(train.y, ref_train.y)
    with pytest.raises(DataError, match="must be a number strictly between 0 and 1, got '0.3'"):
        train_val_split(data, "0.3")


def test_mask_noise_zeroes_a_fraction_p():
    x = torch.rand(200_000, generator=gen(0)) + 0.5  # no zeros before masking
    out = corrupt(x, "mask", 0.3, generator=gen(1))
    zeroed = out == 0
    assert abs(float(zeroed.float().mean()) - 0.3) < 0.005
    assert torch.equal(out[~zeroed], x[~zeroed])
    assert torch.equal(corrupt(x, "mask", 0.0), x) and torch.all(corrupt(x, "mask", 1.0) == 0)


def test_salt_and_pepper_sets_min_or_max_at_rate_p():
    x = torch.rand(200_000, generator=gen(0)) * 0.6 + 0.2
    low, high = float(x.min()), float(x.max())
    out = corrupt(x, "salt_pepper", 0.2, generator=gen(1))
    changed = out != x
    assert abs(float(changed.float().mean()) - 0.2) < 0.005
    salt, pepper = out[changed] == high, out[changed] == low
    assert torch.all(salt | pepper)  # exactly the data's min or max
    assert abs(float(salt.float().mean()) - 0.5) < 0.02
    explicit = corrupt(x, "salt-pepper", 1.0, generator=gen(2), low=0.0, high=1.0)
    assert set(explicit.unique().tolist()) == {0.0, 1.0}


def test_gaussian_noise_has_std_sigma():
    x = torch.rand(200_000, generator=gen(0))
    noise = corrupt(x, "gaussian", 0.3, generator=gen(1)) - x
    assert abs(float(noise.std()) - 0.3) < 0.005 and abs(float(noise.mean())) < 0.005
    assert torch.equal(corrupt(x, "gaussian", 0.0), x)
    assert torch.equal(corrupt(x, "gaussian", 0.3, generator=gen(5)), corrupt(x, "gaussian", 0.3, generator=gen(5)))


def test_corrupt_does_not_modify_its_input():
    x = torch.rand(100)
    copy = x.clone()
    for noise in ("gaussian", "mask", "salt_pepper"):
        corrupt(x, noise, 0.5)
    assert torch.equal(x, copy)


@pytest.mark.parametrize("noise, level, message", [
    ("blur", 0.1, "unknown noise 'blur'; choose one of gaussian, mask, salt_pepper"),
    ("mask", 1.5, r"probability.*\[0, 1\]"),
    ("salt_pepper", -0.1, r"probability.*\[0, 1\]"),
    ("gaussian", -1.0, ">= 0"),
    ("gaussian", float("nan"), "finite"),
])
def test_corrupt_rejects_bad_arguments(noise, level, message):
    with pytest.raises(DataError, match=message):
        corrupt(torch.rand(4), noise, level)


def test_parse_noise():
    assert parse_noise("gaussian:0.3") == ("gaussian", 0.3)
    assert parse_noise("salt-pepper:0.1") == ("salt_pepper", 0.1)
    assert parse_noise("MASK:0.25") == ("mask", 0.25)
    for bad, message in (("gaussian", "NAME:LEVEL"), ("mask:lots", "must be a number"), ("mask:2", r"\[0, 1\]"),
                         ("speckle:0.1", "unknown noise")):
        with pytest.raises(DataError, match=message):
            parse_noise(bad)


def test_counter_uniform_is_uniform_and_depends_only_on_seed_row_and_position():
    from scipy import stats

    from vaekit.data import counter_uniform

    rows = torch.arange(2000)
    u = counter_uniform(rows, 50, seed=3)
    assert u.shape == (2000, 50) and float(u.min()) >= 0 and float(u.max()) < 1
    assert stats.kstest(u.flatten().numpy(), "uniform").pvalue > 1e-3
    # neighbouring rows and positions are not correlated
    assert abs(float(torch.corrcoef(torch.stack([u[:-1].flatten(), u[1:].flatten()]))[0, 1])) < 0.02
    assert abs(float(torch.corrcoef(torch.stack([u[:, :-1].flatten(), u[:, 1:].flatten()]))[0, 1])) < 0.02
    picked = torch.tensor([1999, 7, 7, 0])
    assert torch.equal(counter_uniform(picked, 50, seed=3), u[picked])  # any subset, order, repeats
    assert not torch.equal(counter_uniform(rows, 50, seed=4), u)


def test_binarize_rows_is_a_fixed_binarisation_whatever_the_batching():
    from vaekit.data import binarize_rows

    x = torch.rand(600, 1, 4, 4)
    whole = binarize_rows(x, torch.arange(600), seed=1)
    assert set(whole.unique().tolist()) <= {0.0, 1.0}
    perm = torch.randperm(600)
    batched = torch.cat([binarize_rows(x[p], p, seed=1) for p in perm.split(64)])
    assert torch.equal(batched, whole[perm])
    assert abs(float(whole.mean() - x.mean())) < 0.02  # P(1) = the value
    assert torch.equal(binarize_rows(torch.ones(3, 2), torch.arange(3)), torch.ones(3, 2))  # u < 1 always
    assert not binarize_rows(torch.zeros(3, 2), torch.arange(3)).any()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (data on another device than the generator)")
def test_corrupt_with_a_cpu_generator_on_gpu_data_draws_on_the_cpu():
    """As documented: a CPU generator corrupts GPU data, exactly as it corrupts the same data on the CPU."""
    x = torch.rand(4, 5)
    for noise, level in (("gaussian", 0.3), ("mask", 0.5), ("salt_pepper", 0.5)):
        on_cpu = corrupt(x, noise, level, generator=torch.Generator().manual_seed(1))
        on_gpu = corrupt(x.cuda(), noise, level, generator=torch.Generator().manual_seed(1))
        assert on_gpu.device.type == "cuda" and torch.allclose(on_gpu.cpu(), on_cpu)
