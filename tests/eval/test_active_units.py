import torch

from vaekit.eval import active_units


def test_active_units_counts_dimensions_whose_mean_varies():
    torch.manual_seed(0)
    codes = torch.cat([torch.randn(1000, 2), 0.05 * torch.randn(1000, 1), torch.full((1000, 1), 3.0)], dim=1)
    count, activity = active_units(codes, threshold=0.01)
    assert count == 2
    torch.testing.assert_close(activity, torch.tensor(codes.numpy().var(axis=0, ddof=1), dtype=torch.float32), rtol=1e-5, atol=1e-7)
