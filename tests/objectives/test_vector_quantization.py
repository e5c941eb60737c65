"""The VQ-VAE's quantiser and objective: nearest neighbours, straight-through gradient, losses, EMA, restarts, perplexity."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

import vaekit
from vaekit.distributions import CodebookPrior, QuantizedCode, VectorQuantizer
from vaekit.distributions.vector_quantized import ema_codebook_update, nearest_codes, straight_through
from vaekit.objectives import VectorQuantization, code_counts, code_perplexity, codebook_loss, codebook_usage, commitment_loss


def close(a, b, rtol=1e-5, atol=1e-6):
    """numpy's assert_allclose on tensors (torch.testing's first call imports torch.distributed: seconds)."""
    as_array = lambda t: t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)  # noqa: E731
    np.testing.assert_allclose(as_array(a), as_array(b), rtol=rtol, atol=atol)


def test_nearest_codes_match_brute_force_distances():
    rng = np.random.default_rng(0)
    z, codebook = rng.normal(size=(200, 3)), rng.normal(size=(17, 3))
    expected = cdist(z, codebook, "sqeuclidean").argmin(1)
    got = nearest_codes(torch.tensor(z), torch.tensor(codebook))
    np.testing.assert_array_equal(got.numpy(), expected)


def test_the_head_quantises_every_grid_position_to_its_nearest_code():
    torch.manual_seed(0)
    head = VectorQuantizer(6, 2)
    z_e = torch.randn(3, 2, 4, 5)
    q = head(z_e)
    assert isinstance(q, QuantizedCode) and q.batch_shape == (3,) and q.event_shape == (2 * 4 * 5,)
    codebook = head.codebook.numpy()
    vectors = z_e.permute(0, 2, 3, 1).reshape(-1, 2).numpy()  # position by position, row-major
    expected = np.array([min(range(6), key=lambda j: ((codebook[j] - v) ** 2).sum()) for v in vectors])
    np.testing.assert_array_equal(q.indices.reshape(-1).numpy(), expected)
    np.testing.assert_allclose(q.codes.permute(0, 2, 3, 1).reshape(-1, 2).numpy(), codebook[expected])
    close(q.mean, q.codes.flatten(1))  # the decoder reads z_q, channel-major
    with pytest.raises(ValueError, match=r"\(B, 2, h, w\)"):
        head(torch.randn(3, 5, 4, 4))


def test_the_straight_through_gradient_is_the_identity_on_z_e():
    torch.manual_seed(1)
    head = VectorQuantizer(4, 2)
    z_e = torch.randn(1, 2, 2, 2, dtype=torch.float64)
    head.double()
    jacobian = torch.autograd.functional.jacobian(lambda t: head(t).rsample(), z_e)  # (1, 8, 1, 2, 2, 2)
    close(jacobian.reshape(8, 8), torch.eye(8, dtype=torch.float64))
    q = torch.randn(5, dtype=torch.float64)
    z = torch.randn(5, dtype=torch.float64, requires_grad=True)
    out = straight_through(z, q)
    close(out, q)
    (out * torch.arange(5.0, dtype=torch.float64)).sum().backward()
    close(z.grad, torch.arange(5.0, dtype=torch.float64))


def test_codebook_and_commitment_losses_match_their_formulas_and_stop_gradients():
    rng = np.random.default_rng(2)
    z_np, e_np = rng.normal(size=(3, 2, 2, 2)), rng.normal(size=(3, 2, 2, 2))
    expected = ((z_np - e_np) ** 2).reshape(3, -1).sum(1)
    z = torch.tensor(z_np, requires_grad=True)
    e = torch.tensor(e_np, requires_grad=True)
    cb, cm = codebook_loss(z, e), commitment_loss(z, e)
    np.testing.assert_allclose(cb.detach().numpy(), expected)
    np.testing.assert_allclose(cm.detach().numpy(), expected)
    gz, ge = torch.autograd.grad(cb.sum(), (z, e), allow_unused=True, materialize_grads=True)
    np.testing.assert_allclose(gz.numpy(), 0.0)  # ‖sg[z_e] − e‖²: only the codebook moves
    np.testing.assert_allclose(ge.numpy(), 2 * (e_np - z_np))
    gz, ge = torch.autograd.grad(cm.sum(), (z, e), allow_unused=True, materialize_grads=True)
    np.testing.assert_allclose(gz.numpy(), 2 * (z_np - e_np))  # ‖z_e − sg[e]‖²: only the encoder moves
    np.testing.assert_allclose(ge.numpy(), 0.0)


def test_ema_update_matches_a_hand_computation():
    decay, eps = 0.9, 1e-5
    N = [1.0, 2.0, 0.5]
    m = [[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]
    z = [[1.0, 2.0], [3.0, 0.0], [-1.0, 1.0], [0.5, 0.5]]
    idx = [0, 0, 2, 0]
    # by hand, in plain Python: counts n = (3, 0, 1), sums s_0 = z0 + z1 + z3, s_2 = z2
    n = [3, 0, 1]
    s = [[4.5, 2.5], [0.0, 0.0], [-1.0, 1.0]]
    N_new = [decay * N[i] + (1 - decay) * n[i] for i in range(3)]
    m_new = [[decay * m[i][d] + (1 - decay) * s[i][d] for d in range(2)] for i in range(3)]
    total = sum(N_new)
    smoothed = [(N_new[i] + eps) / (total + 3 * eps) * total for i in range(3)]
    e_new = [[m_new[i][d] / smoothed[i] for d in range(2)] for i in range(3)]
    got_N, got_m, got_e = ema_codebook_update(torch.tensor(N), torch.tensor(m), torch.tensor(z), torch.tensor(idx), decay, eps)
    np.testing.assert_allclose(got_N.numpy(), N_new, rtol=1e-6)
    np.testing.assert_allclose(got_m.numpy(), m_new, rtol=1e-6)
    np.testing.assert_allclose(got_e.numpy(), e_new, rtol=1e-6)


def test_the_heads_update_moves_its_buffers_by_the_ema_step():
    torch.manual_seed(3)
    head = VectorQuantizer(5, 3, decay=0.8, restart_after=0)
    z_e = torch.randn(2, 3, 2, 2)
    before = {k: v.clone() for k, v in head.state_dict().items()}
    indices = head(z_e).indices
    head.update(z_e, indices)
    rows = z_e.permute(0, 2, 3, 1).reshape(-1, 3)
    N, m, e = ema_codebook_update(before["cluster_size"], before["embed_sum"], rows, indices.reshape(-1), 0.8)
    close(head.cluster_size, N)
    close(head.embed_sum, m)
    close(head.codebook, e)


def test_a_code_unused_for_restart_after_batches_is_reseeded_from_the_batch():
    torch.manual_seed(4)
    head = VectorQuantizer(4, 2, restart_after=2)
    z_e = torch.randn(1, 2, 3, 3)
    rows = z_e.permute(0, 2, 3, 1).reshape(-1, 2)
    indices = torch.zeros(1, 3, 3, dtype=torch.long)  # only code 0 is used
    assert not head.update(z_e, indices).any()  # one batch unused: not yet
    assert head.unused_steps.tolist() == [0, 1, 1, 1]
    restarted = head.update(z_e, indices)
    assert restarted.tolist() == [False, True, True, True]
    for k in (1, 2, 3):  # each restarted code is one of the batch's encoder outputs, with fresh statistics
        assert (head.codebook[k] == rows).all(1).any()
        close(head.embed_sum[k], head.codebook[k])
        assert float(head.cluster_size[k]) == 1.0
    assert head.unused_steps.tolist() == [0, 0, 0, 0]
    never = VectorQuantizer(4, 2, restart_after=0)
    for _ in range(5):
        assert not never.update(z_e, indices).any()
    assert never.unused_steps.tolist() == [0, 5, 5, 5]


def test_the_first_training_batch_seeds_the_codebook_once():
    torch.manual_seed(5)
    head = VectorQuantizer(4, 2)
    z_e = torch.randn(2, 2, 2, 2)
    rows = z_e.permute(0, 2, 3, 1).reshape(-1, 2)
    head.initialize(z_e)
    assert all((head.codebook[k] == rows).all(1).any() for k in range(4))
    assert len({tuple(r.tolist()) for r in head.codebook}) == 4  # drawn without replacement
    seeded = head.codebook.clone()
    head.initialize(torch.randn(2, 2, 2, 2) + 10)
    close(head.codebook, seeded)


def test_perplexity_and_usage_match_the_histogram_by_hand():
    indices = torch.tensor([[0, 0, 0], [1, 3, 3], [3, 3, 1]])
    counts = code_counts(indices, 5)
    assert counts.tolist() == [3.0, 2.0, 0.0, 4.0, 0.0]
    p = [3 / 9, 2 / 9, 4 / 9]
    entropy = -sum(q * math.log(q) for q in p)
    assert float(code_perplexity(counts)) == pytest.approx(math.exp(entropy), rel=1e-6)
    assert float(codebook_usage(counts)) == pytest.approx(3 / 5)
    assert float(code_perplexity(torch.tensor([0.0, 7.0, 0.0]))) == pytest.approx(1.0)
    assert float(code_perplexity(torch.ones(8))) == pytest.approx(8.0)


@pytest.mark.parametrize("ema", [True, False])
def test_the_objective_adds_its_terms_and_updates_the_codebook_only_in_training(ema):
    torch.manual_seed(6)
    model = vaekit.create("vq_vae", input_shape=(1, 8, 8), latent_dim=3, channels=(4, 8), codebook_size=5, commitment=0.4,
                          ema=ema, likelihood="gaussian", likelihood_scale=1.0)
    x = torch.rand(4, 1, 8, 8)
    model.eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    out = model.loss(x)
    z_e = model.encoder(x)
    q = model.posterior(z_e)
    recon = (model.decode(q.mean).mean - x).pow(2).flatten(1).sum(1).mean()
    distance = (z_e - q.codes).pow(2).flatten(1).sum(1).mean()
    close(out["reconstruction"], recon)
    close(out["commitment"], distance)
    close(out["codebook"], distance)
    close(out["loss"], recon + 0.4 * distance + (0 if ema else distance))
    counts = torch.bincount(q.indices.flatten(), minlength=5).double()
    p = counts[counts > 0] / counts.sum()
    assert float(out["perplexity"]) == pytest.approx(float(torch.exp(-(p * p.log()).sum())), rel=1e-5)
    assert float(out["codebook_usage"]) == pytest.approx(float((counts > 0).double().mean()))
    for k, v in model.state_dict().items():  # evaluation mode changes nothing
        assert torch.equal(v, state[k]), k

    model.train()
    out = model.loss(x)
    assert bool(model.posterior.initialized)
    out["loss"].backward()
    if ema:
        assert not model.posterior.codebook.requires_grad  # moved by averages, not by gradients
    else:
        assert model.posterior.codebook.grad is not None and model.posterior.codebook.grad.abs().sum() > 0
    assert model.encoder.net[0].weight.grad.abs().sum() > 0  # the decoder's gradient reached the encoder


def test_the_commitment_weight_and_codebook_size_are_checked():
    with pytest.raises(vaekit.ConfigError, match=r"commitment.*≥ 0"):
        VectorQuantization(-0.1)
    with pytest.raises(ValueError, match="codebook_size"):
        VectorQuantizer(1, 4)


def test_the_codebook_prior_pushes_index_grids_through_the_codebook():
    codebook = torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])

    class Fixed(torch.distributions.Distribution):  # a point mass on one index grid
        arg_constraints: dict = {}

        def __init__(self):
            super().__init__(torch.Size(), torch.Size([1, 2]), validate_args=False)

        def sample(self, sample_shape=torch.Size()):
            return torch.tensor([[2, 0]]).expand(*sample_shape, 1, 2)

        def log_prob(self, k):
            return torch.where((k == torch.tensor([[2, 0]])).flatten(-2).all(-1), 0.0, -math.inf)

    prior = CodebookPrior(Fixed(), codebook)
    z = prior.sample((3,))
    assert z.shape == (3, 4) and prior.event_shape == (4,)
    close(z[0], torch.tensor([4.0, 0.0, 5.0, 1.0]))  # (D, h, w) flattened: e_2, e_0 per channel
    assert prior.log_prob(z).tolist() == [0.0, 0.0, 0.0]
    assert prior.log_prob(z + 0.1).tolist() == [-math.inf] * 3  # not a grid of codebook vectors
