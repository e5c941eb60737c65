"""vaekit.evaluate on a file-backed set (read batch by batch) against the same data in memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vaekit
from vaekit.data import binarize_rows, open_file_dataset
from vaekit.errors import DataError


@pytest.fixture
def digits_file(tmp_path):
    x = vaekit.data.load_digits("train").x[:230].numpy()  # values in [0, 1], 1×8×8
    path = tmp_path / "digits.npy"
    np.save(path, x.astype(np.float32))
    return path, torch.from_numpy(x)


def _model(**options) -> vaekit.LatentVariableModel:
    torch.manual_seed(0)
    return vaekit.create("vae", (1, 8, 8), arch="mlp", latent_dim=3, hidden_dims=(16,), **options)


def _same_draws(model, x, **kwargs) -> dict:
    torch.manual_seed(5)
    return vaekit.evaluate(model, x, **kwargs)


@pytest.mark.parametrize("batch_size", [64, 500])
def test_a_file_backed_set_scores_as_the_same_data_in_memory(digits_file, batch_size):
    """Same batches, same draws: every metric equal (the bound, the KL per dimension, the active
    units, and log p(x) read NLL_CHUNK examples at a time)."""
    path, x = digits_file
    model = _model()
    kwargs = dict(nll_samples=7, batch_size=batch_size, nll_limit=150)
    memory = _same_draws(model, x, **kwargs)
    streamed = _same_draws(model, open_file_dataset(str(path)), **kwargs)
    assert memory.keys() == streamed.keys() and streamed["num_examples"] == 230 and streamed["log_likelihood_examples"] == 150
    for k, v in memory.items():
        assert streamed[k] == pytest.approx(v, rel=1e-5, abs=1e-6), k


def test_static_binarisation_of_a_file_is_binarize_rows_of_each_example(digits_file):
    path, x = digits_file
    model = _model()
    expected = _same_draws(model, binarize_rows(x, torch.arange(len(x)), seed=0), nll_samples=3, batch_size=100)
    got = _same_draws(model, open_file_dataset(str(path)), nll_samples=3, batch_size=100, binarize="static")
    for k, v in expected.items():
        assert got[k] == pytest.approx(v, rel=1e-5, abs=1e-6), k
    # a tensor is binarised by static_binarize (seed 0), the established binarised test set
    in_memory = _same_draws(model, vaekit.data.static_binarize(x, seed=0), batch_size=100)
    assert _same_draws(model, x, batch_size=100, binarize="static") == in_memory


def test_bad_input_is_refused_with_what_to_do(digits_file, tmp_path):
    path, x = digits_file
    model = vaekit.create("vae", (1, 4, 4), arch="mlp", latent_dim=2, hidden_dims=(8,))
    with pytest.raises(DataError, match=r"shape \(1, 8, 8\) but the model takes \(1, 4, 4\)"):
        vaekit.evaluate(model, open_file_dataset(str(path)))
    with pytest.raises(vaekit.ConfigError, match="binarize must be one of"):
        vaekit.evaluate(_model(), x, binarize="dynamic")
    np.save(tmp_path / "wide.npy", np.full((5, 1, 8, 8), 3.0, np.float32))
    with pytest.raises(DataError):  # binarising needs values in [0, 1]
        vaekit.evaluate(_model(), open_file_dataset(str(tmp_path / "wide.npy")), binarize="static")
