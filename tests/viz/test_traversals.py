"""vaekit.viz.traversals: a code swept along one dimension at a time, decoded."""

import pytest
import torch

import vaekit
from vaekit.errors import ConfigError
from vaekit.viz.traversals import traversal_rows, traversal_values


def test_each_row_decodes_the_code_with_one_coordinate_replaced():
    torch.manual_seed(0)
    model = vaekit.create("vae", input_shape=(1, 4, 4), latent_dim=3, arch="mlp", hidden_dims=(8,)).eval()
    code = torch.tensor([0.3, -0.7, 1.1])
    values = traversal_values(2.0, 5)
    torch.testing.assert_close(values, torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0]))
    rows = traversal_rows(model, code, [2, 0], values)
    assert [r.shape for r in rows] == [(5, 1, 4, 4)] * 2
    for row, d in zip(rows, [2, 0]):
        for k, v in enumerate(values.tolist()):
            z = code.clone()
            z[d] = v
            with torch.no_grad():
                torch.testing.assert_close(row[k], model.decode(z[None]).mean[0])
    torch.testing.assert_close(code, torch.tensor([0.3, -0.7, 1.1]))  # the starting code is left as it was


def test_a_conditional_row_keeps_the_examples_label():
    torch.manual_seed(0)
    model = vaekit.create("conditional_vae", input_shape=(1, 4, 4), latent_dim=2, arch="mlp", hidden_dims=(8,), num_classes=3).eval()
    code = torch.zeros(2)
    (row,) = traversal_rows(model, code, [1], traversal_values(1.0, 3), y=torch.tensor([2]))
    with torch.no_grad():
        expected = model.decode(torch.tensor([[0.0, -1.0], [0.0, 0.0], [0.0, 1.0]]), torch.tensor([2, 2, 2])).mean
    torch.testing.assert_close(row, expected)


def test_bad_dimensions_and_ranges_are_refused():
    model = vaekit.create("vae", input_shape=(4,), latent_dim=2, hidden_dims=(8,))
    with pytest.raises(ConfigError, match=r"0\.\.1"):
        traversal_rows(model, torch.zeros(2), [2], traversal_values())
    with pytest.raises(ConfigError, match="> 0"):
        traversal_values(0.0)
    with pytest.raises(ConfigError, match="positive number of steps"):
        traversal_values(1.0, 0)


def test_dimensions_given_as_a_numpy_array_or_tensor_are_swept():
    """An array of indices (e.g. from argsort) is as good as a list, even a single index 0."""
    import numpy as np

    model = vaekit.create("vae", input_shape=(1, 4, 4), latent_dim=3, arch="mlp", hidden_dims=(8,)).eval()
    code = torch.zeros(3)
    values = traversal_values(1.0, 3)
    expected = traversal_rows(model, code, [0, 2], values)
    for dims in (np.array([0, 2]), torch.tensor([0, 2])):
        for got, want in zip(traversal_rows(model, code, dims, values), expected, strict=True):
            torch.testing.assert_close(got, want)
    assert len(traversal_rows(model, code, np.array([0]), values)) == 1
