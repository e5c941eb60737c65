"""The fast log p(x) path against a plain torch.distributions computation on the same codes.

``vaekit.log_likelihood`` decodes example-major tiles, scores x without copying it and takes
log q from ε for diagonal posteriors; every piece is checked here against the straightforward
route (torch's own densities, x repeated), on the very codes the decoder saw.
"""

import math
import types

import pytest
import torch
from torch.distributions import Bernoulli, Independent, Normal

import vaekit
from vaekit.distributions import BernoulliLikelihood, DiscretizedLogisticLikelihood, GaussianLikelihood
from vaekit.distributions.likelihoods import bernoulli_log_prob, log_prob_repeated, normal_log_prob
from vaekit.distributions.posteriors import diagonal_gaussian
from vaekit.errors import ConfigError, DataError
from vaekit.eval import likelihood as likelihood_module
from vaekit.objectives import importance, log_importance_weights

SHAPE = (1, 12, 12)  # 144 pixels: one full group of 112 sigmoids and a remainder of 32


def small_model(likelihood: str, posterior: str, **options) -> vaekit.LatentVariableModel:
    torch.manual_seed(0)
    return vaekit.create("vae", input_shape=SHAPE, latent_dim=3, hidden_dims=(16,), likelihood=likelihood, posterior=posterior, **options).eval()


def data_for(likelihood: str, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, *SHAPE, generator=g)
    return x.bernoulli(generator=g) if likelihood == "bernoulli" else (x * 255).round() / 255


def reference_log_likelihood(model, x, y, num_samples, tiles):
    """log-mean-exp over each example's codes of log p(x|z) + log p(z) − log q(z|x), all from torch.distributions.

    ``tiles`` holds, per decoder call, the decoder's input and the examples scored against it
    (rows b·R … b·R + R − 1 belong to example b), as recorded from ``log_likelihood``; the
    codes z are the input's first D columns, decoded again here with each example's own label.
    """
    d = model.latent_dim
    weights = [[] for _ in range(x.shape[0])]
    with torch.no_grad():
        for inputs, xs, repeats in tiles:
            rows = [int(torch.nonzero((x == row).flatten(1).all(1))[0]) for row in xs]  # which examples these are
            z = inputs[:, :d].reshape(len(rows), repeats, d)
            labels = None if y is None else y[rows].repeat_interleave(repeats)
            px = model.decode(z.flatten(0, 1), labels)  # Independent(Bernoulli / Normal / DiscretizedLogistic)
            log_px = px.log_prob(xs.repeat_interleave(repeats, 0)).view(len(rows), repeats)
            log_pz = Independent(Normal(torch.zeros(d), torch.ones(d)), 1).log_prob(z)
            for i, b in enumerate(rows):
                q = model.encode(x[b : b + 1], None if y is None else y[b : b + 1])
                weights[b].append(log_px[i] + log_pz[i] - q.log_prob(z[i]))
    log_w = [torch.cat(w) for w in weights]
    assert all(w.shape == (num_samples,) for w in log_w)  # every example got its K codes, no more
    return torch.stack([w.logsumexp(0) - math.log(num_samples) for w in log_w])


def recorded_run(monkeypatch, model, x, y, num_samples, **kwargs):
    """``log_likelihood``'s result, the tiles it decoded and the largest number of codes decoded at once."""
    inputs, scored = [], []
    hook = model.decoder.register_forward_pre_hook(lambda module, args: inputs.append(args[0].detach().clone()))
    original = importance.log_prob_repeated
    monkeypatch.setattr(importance, "log_prob_repeated", lambda px, xs, r, overwrite=False: scored.append((xs.clone(), r)) or original(px, xs, r, overwrite))
    try:
        result = vaekit.log_likelihood(model, x, num_samples, y=y, **kwargs)
    finally:
        hook.remove()
    assert len(inputs) == len(scored)
    return result, [(i, xs, r) for i, (xs, r) in zip(inputs, scored)], max(i.shape[0] for i in inputs)


GEOMETRIES = {
    "many examples per decoder call": dict(max_codes=8, block=1024, batch_size=3),  # chunks of 2 draws × 3 examples
    "one example's draws split": dict(max_codes=64, block=4, batch_size=3),  # chunks of 20 draws, tiles of 4 per thread
}


@pytest.mark.parametrize("likelihood, posterior", [
    ("bernoulli", "diagonal"), ("bernoulli", "full_covariance"), ("bernoulli", "iaf"),
    ("gaussian", "diagonal"), ("gaussian", "full_covariance"), ("logistic", "diagonal"), ("logistic", "iaf"),
])
@pytest.mark.parametrize("geometry", list(GEOMETRIES))
def test_log_likelihood_equals_torch_distributions_on_the_same_codes(monkeypatch, likelihood, posterior, geometry):
    g = GEOMETRIES[geometry]
    monkeypatch.setattr(likelihood_module, "MAX_CODES_PER_CHUNK", g["max_codes"])
    monkeypatch.setattr(importance, "DECODE_BLOCK", g["block"])
    model = small_model(likelihood, posterior)
    x = data_for(likelihood, 5)
    torch.manual_seed(3)
    fast, tiles, peak = recorded_run(monkeypatch, model, x, None, 20, batch_size=g["batch_size"])
    assert peak <= min(g["max_codes"], importance.decode_block())  # memory: never more codes decoded at once than the limits allow
    assert len(tiles) > 1
    torch.testing.assert_close(fast, reference_log_likelihood(model, x, None, 20, tiles), rtol=1e-6, atol=1e-4)


def test_conditional_model_scores_each_code_with_its_own_label(monkeypatch):
    monkeypatch.setattr(likelihood_module, "MAX_CODES_PER_CHUNK", 12)
    model = small_model("bernoulli", "diagonal", num_classes=3)
    x, y = data_for("bernoulli", 4), torch.tensor([0, 2, 1, 2])
    torch.manual_seed(4)
    fast, tiles, peak = recorded_run(monkeypatch, model, x, y, 9, batch_size=4)
    assert peak <= 12
    torch.testing.assert_close(fast, reference_log_likelihood(model, x, y, 9, tiles), rtol=1e-6, atol=1e-4)


def test_default_batch_fills_one_chunk_and_encodes_each_example_once(monkeypatch):
    monkeypatch.setattr(likelihood_module, "MAX_CODES_PER_CHUNK", 100)
    monkeypatch.setattr(importance, "DECODE_BLOCK", 7)
    model = small_model("bernoulli", "diagonal")
    encoded = []
    model.encoder.register_forward_pre_hook(lambda module, args: encoded.append(args[0].shape[0]))
    assert likelihood_module.examples_per_chunk(40) == 2
    vaekit.log_likelihood(model, data_for("bernoulli", 5), 40)
    assert encoded == [2, 2, 1]  # 2 examples × 40 draws fill the 100-code chunk; each example encoded once


def test_tiles_are_per_thread_on_the_cpu_and_a_whole_chunk_on_a_gpu():
    threads = torch.get_num_threads()
    assert importance.decode_block() == importance.decode_block(torch.device("cpu")) == importance.DECODE_BLOCK * threads
    assert importance.decode_block(torch.device("cuda")) == importance.ACCELERATOR_DECODE_BLOCK == likelihood_module.MAX_CODES_PER_CHUNK


def _heads():
    return {
        "bernoulli binary": (BernoulliLikelihood(SHAPE), lambda x: x.round()),
        "bernoulli grey": (BernoulliLikelihood(SHAPE), lambda x: x),
        "gaussian learned": (GaussianLikelihood(SHAPE, init_scale=0.2), lambda x: x),
        "gaussian fixed": (GaussianLikelihood(SHAPE, scale=0.5), lambda x: x),
        "logistic": (DiscretizedLogisticLikelihood(SHAPE), lambda x: (x * 255).round() / 255),
    }


@pytest.mark.parametrize("name", list(_heads()))
def test_scores_equal_torch_distributions_with_and_without_gradients(name):
    head, prepare = _heads()[name]
    torch.manual_seed(0)
    b, r = 3, 7
    raw = (3 * torch.randn(b * r, head.num_parameters * 144)).requires_grad_()
    x = prepare(torch.rand(b, *SHAPE))
    expected = head(raw).log_prob(x.repeat_interleave(r, 0)).view(b, r)  # torch: x copied R times
    expected_grads = torch.autograd.grad(expected.sum(), [raw, *head.parameters()])
    got = log_prob_repeated(head(raw), x, r)
    got_grads = torch.autograd.grad(got.sum(), [raw, *head.parameters()])
    with torch.no_grad():
        fast = log_prob_repeated(head(raw), x, r)
    for value in (got, fast):
        torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-5)
    for g, e in zip(got_grads, expected_grads):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("scale", [0.1, 3.0, 30.0])
@pytest.mark.parametrize("shape, event_dims", [((4, 6, 3), 1), ((4, 6, 112), 1), ((4, 6, 113), 1), ((2, 5, 1, 28, 28), 3), ((7,), 0)])
def test_fused_bernoulli_sum_equals_binary_cross_entropy(scale, shape, event_dims):
    g = torch.Generator().manual_seed(0)
    logits = scale * torch.randn(shape, generator=g)
    for x in (torch.rand(shape, generator=g).round(), torch.rand(shape, generator=g)):
        expected = Bernoulli(logits=logits, validate_args=False).log_prob(x)
        if event_dims:
            expected = expected.flatten(-event_dims).sum(-1)
        with torch.no_grad():
            got = bernoulli_log_prob(logits, x, event_dims)
        size = math.prod(shape[len(shape) - event_dims :])
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=6e-8 * size + 1e-6)  # σ(|ℓ|) rounded: ≤ 6·10⁻⁸ nats a value


@pytest.mark.parametrize("scale", [0.1, 3.0, 30.0])
@pytest.mark.parametrize("event", [(784,), (1, 28, 28), (113,)])
@pytest.mark.parametrize("examples", [1, 3])
def test_fused_bernoulli_sum_of_one_example_against_its_codes_in_place(scale, event, examples):
    """x (B, 1, *event) against R codes each (the importance-sampling layout: Σ(1 − 2x)ℓ is a
    matrix-vector product per example; one example, as in a tile of its K codes, goes through
    ``mv``), computed in ℓ's own memory or not: the same values as torch's on x repeated, also
    when Σ|ℓ| and Σ(1 − 2x)ℓ nearly cancel (scale 30)."""
    g = torch.Generator().manual_seed(1)
    logits = scale * torch.randn(examples, 50, *event, generator=g)
    x = torch.rand(examples, 1, *event, generator=g).round()
    expected = Bernoulli(logits=logits, validate_args=False).log_prob(x.expand_as(logits)).flatten(2).sum(-1)
    with torch.no_grad():
        kept = bernoulli_log_prob(logits, x, len(event))
        scratch = logits.clone()
        in_place = bernoulli_log_prob(scratch, x, len(event), overwrite=True)
    size = math.prod(event)
    torch.testing.assert_close(kept, expected, rtol=1e-5, atol=6e-8 * size + 1e-6)
    torch.testing.assert_close(in_place, kept, rtol=0, atol=0)
    assert not torch.equal(scratch, logits)  # overwritten, as asked; the default left ℓ alone
    assert torch.equal(logits, scale * torch.randn(examples, 50, *event, generator=torch.Generator().manual_seed(1)))
    # never in place on memory that is not the caller's scratch: a parameter, or one value expanded over codes
    weight = torch.nn.Parameter(logits[:, :1].clone())
    with torch.no_grad():
        for shared in (weight, weight.expand_as(logits)):
            got = bernoulli_log_prob(shared, x, len(event), overwrite=True)
            torch.testing.assert_close(got, bernoulli_log_prob(shared.detach().clone(), x, len(event)))
    torch.testing.assert_close(weight.detach(), logits[:, :1])


def test_fused_bernoulli_sum_is_finite_for_saturated_and_uninformative_logits():
    logits = torch.tensor([[100.0, -100.0, 0.0, 90.0], [-100.0, 100.0, 1e-3, -90.0]])
    x = torch.tensor([[1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 1.0]])
    with torch.no_grad():
        got = bernoulli_log_prob(logits, x, 1)
    expected = Independent(Bernoulli(logits=logits, validate_args=False), 1).log_prob(x)
    torch.testing.assert_close(got, expected)  # [−90 − log 2, −280 − log 2] up to rounding: no overflow, no −inf
    assert torch.isfinite(got).all()
    # ℓ = 0 everywhere: each σ(|ℓ|) = ½, the smallest factor, so each group's product is at its floor 2⁻¹¹²
    x = torch.rand(3, 784, generator=torch.Generator().manual_seed(0)).round()
    with torch.no_grad():
        torch.testing.assert_close(bernoulli_log_prob(torch.zeros(3, 784), x, 1), torch.full((3,), -784 * math.log(2)))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_fused_bernoulli_sum_in_other_precisions_is_as_close_as_torchs_own(dtype):
    """Grouped products stay normal numbers in narrower types (float16's smallest is 2⁻¹⁴: groups of 14):
    the fused sum is as close to the exact value as torch's own Bernoulli in that type, up to one
    rounding of the result (products of 112 in float16 underflow and were 41 nats off)."""
    g = torch.Generator().manual_seed(0)
    logits, x = (3 * torch.randn(4, 784, generator=g)).to(dtype), torch.rand(4, 784, generator=g).round().to(dtype)
    exact = Bernoulli(logits=logits.double(), validate_args=False).log_prob(x.double()).sum(-1)
    torchs = Bernoulli(logits=logits, validate_args=False).log_prob(x).sum(-1).double()
    with torch.no_grad():
        got = bernoulli_log_prob(logits, x, 1).double()
    assert torch.isfinite(got).all()
    assert (got - exact).abs().max() <= (torchs - exact).abs().max() + torch.finfo(dtype).eps * exact.abs().max()


@pytest.mark.parametrize("x_shape", [(784,), (1, 784), (3, 784), (2, 1, 784)])
@pytest.mark.parametrize("logits_dtype", [torch.float32, torch.float64])
def test_fused_bernoulli_sum_broadcasts_like_torch(x_shape, logits_dtype):
    """One ℓ against one x, one x with leading ones, several x's, and x of another dtype: torch's
    shapes and values (the matrix-vector product is taken only where it is the same sum)."""
    g = torch.Generator().manual_seed(2)
    logits = (3 * torch.randn(5, 784, generator=g)).to(logits_dtype)[:1].squeeze(0)  # (784,)
    x = torch.rand(x_shape, generator=g).round()
    expected = Bernoulli(logits=logits.double(), validate_args=False).log_prob(x.double()).sum(-1)
    with torch.no_grad():
        got = bernoulli_log_prob(logits, x, 1)
    assert got.shape == expected.shape
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-4)


def test_isotropic_gaussian_sum_before_scaling_equals_normal_log_prob():
    g = torch.Generator().manual_seed(0)
    loc, x = torch.rand(3, 4, 5, generator=g), torch.rand(3, 1, 5, generator=g)
    for sigma in (1e-3, 0.1, 2.0):
        scale = torch.tensor(sigma).expand(3, 4, 5)
        expected = Normal(loc, scale).log_prob(x).sum(-1)
        torch.testing.assert_close(normal_log_prob(loc, scale, x, 1), expected, rtol=1e-5, atol=1e-4)
    per_pixel = torch.rand(3, 4, 5, generator=g) + 0.1
    torch.testing.assert_close(normal_log_prob(loc, per_pixel, x, 1), Normal(loc, per_pixel).log_prob(x).sum(-1))
    # x with more batch dimensions than μ, and two event dimensions: M counts the values of one example
    for loc, x, event_dims in ((loc[0, 0], torch.rand(6, 5, generator=g), 1), (loc[0], torch.rand(2, 3, 4, 5, generator=g), 2)):
        scale = torch.tensor(0.3).expand(loc.shape)
        expected = Normal(loc, scale).log_prob(x).flatten(-event_dims).sum(-1)
        torch.testing.assert_close(normal_log_prob(loc, scale, x, event_dims), expected, rtol=1e-5, atol=1e-4)


def test_diagonal_draws_take_log_q_from_eps_with_the_same_value_and_gradient():
    torch.manual_seed(0)
    loc, log_scale = torch.randn(3, 4, requires_grad=True), (0.5 * torch.randn(3, 4)).requires_grad_()
    q = diagonal_gaussian(loc, log_scale)
    z, log_q = importance.diagonal_gaussian_draws(q, 5000)  # (B, K, D), (B, K)
    assert z.shape == (3, 5000, 4) and log_q.shape == (3, 5000)
    expected = q.log_prob(z.transpose(0, 1)).t()  # torch's density at the same z, via (z − μ)/σ
    torch.testing.assert_close(log_q, expected, rtol=1e-5, atol=1e-5)
    grads = torch.autograd.grad(log_q.sum() + z.sum(), [loc, log_scale], retain_graph=True)
    expected_grads = torch.autograd.grad(expected.sum() + z.sum(), [loc, log_scale])
    for g, e in zip(grads, expected_grads):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-3)
    with torch.no_grad():  # and z ~ N(μ, σ²): moments within 5 standard errors
        mean_err = (z.mean(1) - loc) / (log_scale.exp() / math.sqrt(5000))
        assert mean_err.abs().max() < 5
        assert ((z.std(1) / log_scale.exp()) - 1).abs().max() < 5 / math.sqrt(2 * 5000)


def test_diagonal_gaussian_prior_density_equals_torch():
    z = torch.randn(2, 6, 3, generator=torch.Generator().manual_seed(0))
    for loc, scale in ((torch.zeros(3), torch.ones(3)), (torch.tensor([0.5, -1.0, 0.0]), torch.tensor([0.3, 2.0, 1.0]))):
        prior = Independent(Normal(loc, scale), 1)
        model = types.SimpleNamespace(prior=lambda prior=prior: prior)
        torch.testing.assert_close(importance._prior_log_prob(model, z), prior.log_prob(z))


def test_bf16_decoder_pass_on_the_same_codes_stays_close_to_fp32(monkeypatch):
    model = small_model("bernoulli", "diagonal")
    x = data_for("bernoulli", 6)
    values, codes = {}, {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(5)
        values[precision], tiles, _ = recorded_run(monkeypatch, model, x, None, 50, precision=precision)
        codes[precision] = [t[0] for t in tiles]
    assert all(torch.equal(a, b) for a, b in zip(codes["fp32"], codes["bf16"]))  # sampling untouched: the same z
    assert values["bf16"].dtype == torch.float32
    delta = (values["bf16"] - values["fp32"]).abs()
    assert delta.max() > 0  # the decoder did run in bf16
    # bf16 keeps 8 bits: ≈ 2⁻⁹ relative error per logit, ≲ 0.1 nat over 144 pixels of log p(x|z) ≈ −100
    assert delta.mean() < 0.1, delta


def test_precision_and_batch_size_are_checked():
    model = small_model("bernoulli", "diagonal")
    x = data_for("bernoulli", 2)
    with pytest.raises(ConfigError, match="precision"):
        vaekit.log_likelihood(model, x, 5, precision="fp16")
    with pytest.raises(ConfigError, match="batch_size"):
        vaekit.log_likelihood(model, x, 5, batch_size=0)
    auxiliary = vaekit.create("auxiliary_vae", input_shape=SHAPE, latent_dim=3, hidden_dims=(16,), likelihood="bernoulli")
    with pytest.raises(ConfigError, match="own precision"):
        vaekit.log_likelihood(auxiliary, x, 5, precision="bf16")
    assert log_importance_weights(model, x, 4, decoder_dtype=torch.bfloat16).dtype == torch.float32


def test_labels_as_numpy_arrays_or_lists_give_the_tensor_result_and_must_match_x():
    """y is taken as encode takes it (numpy, lists); one label per example, no more, no fewer."""
    model = small_model("bernoulli", "diagonal", num_classes=3)
    x, y = data_for("bernoulli", 4), torch.tensor([0, 2, 1, 2])
    torch.manual_seed(6)
    expected = vaekit.log_likelihood(model, x, 5, y=y, batch_size=3)
    for labels in (y.numpy(), y.tolist()):
        torch.manual_seed(6)
        torch.testing.assert_close(vaekit.log_likelihood(model, x, 5, y=labels, batch_size=3), expected, rtol=0, atol=0)
    for wrong in (torch.tensor([0, 2, 1, 2, 0]), torch.tensor(1)):
        with pytest.raises(DataError, match="one label or vector per example"):
            vaekit.log_likelihood(model, x, 5, y=wrong)
