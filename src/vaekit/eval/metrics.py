"""Evaluation of a trained model: bound, reconstruction, KL per dimension, active units, log p(x)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterator

import torch

from vaekit.data import FileDataset, binarize_rows, check_data, static_binarize
from vaekit.distributions import kl_per_dimension, latent_code, sample_and_kl
from vaekit.errors import ConfigError, DataError
from vaekit.eval.likelihood import check_model_input, has_likelihood, log_likelihood

if TYPE_CHECKING:  # pragma: no cover
    from vaekit.models import LatentVariableModel

__all__ = ["active_units", "evaluate"]


def active_units(codes: torch.Tensor, threshold: float = 0.01) -> tuple[int, torch.Tensor]:
    r"""Number of active latent units and each unit's activity A_u = Cov_x(E_q[z_u]).

    A unit is active when A_u > ``threshold`` (0.01 in Burda et al. 2016, §5.2); inactive
    units carry no information about x (posterior collapse, survey §2.10).

    Arguments:
        codes: posterior means E_q[z|x], shape (N, D).
    """
    if codes.shape[0] < 2:  # one code has no variance to measure
        return 0, torch.zeros(codes.shape[1:])
    activity = codes.double().var(dim=0, unbiased=True).float()
    return int((activity > threshold).sum()), activity


NLL_CHUNK = 2000
"""Examples of a file-backed set read into memory at a time for the log-likelihood estimate."""

BINARIZE = ("none", "static")


def _batches(model: "LatentVariableModel", x: "torch.Tensor | FileDataset", y: torch.Tensor | None, batch_size: int,
             binarize: str) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """``(x, y)`` in order, ``batch_size`` examples at a time, on the model's device: slices of a tensor
    (checked and binarised whole beforehand), or rows read from a file-backed set, each batch checked
    and binarised by :func:`vaekit.data.binarize_rows` (seed 0) as it is read."""
    device = model.device
    if isinstance(x, FileDataset):
        cuda = device.type == "cuda"
        for start, xb in zip(range(0, len(x), batch_size), x.chunks(batch_size)):
            if binarize == "static":
                check_data(xb, likelihood="bernoulli", name="x")  # binarisation needs values in [0, 1]
                xb = binarize_rows(xb, torch.arange(start, start + xb.shape[0]), seed=0)
            xb = check_model_input(model, xb)  # checked on the host, then copied without blocking
            xb = (xb.pin_memory() if cuda and xb.device.type == "cpu" else xb).to(device, non_blocking=True)
            yield xb, None if y is None else y[start : start + xb.shape[0]].to(device, non_blocking=True)
        return
    for start in range(0, x.shape[0], batch_size):
        yield x[start : start + batch_size].to(device), None if y is None else y[start : start + batch_size].to(device)


@torch.no_grad()
def evaluate(
    model: "LatentVariableModel",
    x: "torch.Tensor | FileDataset",
    y: torch.Tensor | None = None,
    nll_samples: int = 0,
    batch_size: int = 500,
    active_threshold: float = 0.01,
    progress: bool = False,
    nll_limit: int | None = None,
    binarize: str = "none",
) -> dict[str, Any]:
    """Metrics of ``model`` on ``x`` (nats per example unless stated):

    every model: ``mse`` (squared error of the reconstructions, summed over values),
    ``active_units`` and ``unit_activity`` (variance of each code over the data);
    variational models also: ``elbo`` (one-sample estimate), ``reconstruction``
    (−E_q log p(x|z)), ``kl``, ``kl_per_dimension`` (list, where the posterior has one),
    and with ``nll_samples`` > 0 ``log_likelihood`` (importance-sampled, K = nll_samples)
    and ``bits_per_dim``, computed on the first ``nll_limit`` examples when given (the
    count is ``log_likelihood_examples``). Deterministic autoencoders have no prior, hence no bound,
    and Wasserstein autoencoders no likelihood (see :func:`has_likelihood`).

    ``x`` is a tensor, or a file-backed set (:func:`vaekit.data.open_file_dataset`, e.g. a
    memory-mapped ``.npy`` larger than memory) read ``batch_size`` examples at a time, and
    ``nll_samples`` at a time :data:`NLL_CHUNK` examples: memory stays bounded by the batch,
    whatever the file's size. ``binarize="static"`` binarises the data once with a fixed seed,
    as test sets of binary images are: a tensor by :func:`vaekit.data.static_binarize` (seed 0),
    a file-backed set row by row by :func:`vaekit.data.binarize_rows` (seed 0: the same in any
    batching).
    """
    if binarize not in BINARIZE:
        raise ConfigError(f"binarize must be one of {', '.join(map(repr, BINARIZE))}, got {binarize!r}")
    streamed = isinstance(x, FileDataset)
    if streamed:
        if tuple(x.input_shape) != tuple(model.input_shape):
            raise DataError(f"x holds examples of shape {tuple(x.input_shape)} but the model takes {tuple(model.input_shape)}")
        n = len(x)
    else:
        x = check_model_input(model, x)
        if binarize == "static":
            x = static_binarize(x, seed=0)
        n = x.shape[0]
    if n == 0:
        raise DataError("x holds no examples to evaluate")
    if y is not None:  # labels or conditioning vectors as numpy arrays or lists too, one per example
        y = model.labels_per_example(y, n)
    was_training = model.training
    model.eval()
    variational = has_likelihood(model)
    names = ("elbo", "reconstruction", "kl", "mse") if variational else ("mse",)
    sums = {k: torch.zeros((), dtype=torch.float64, device=model.device) for k in names}  # on the device: no sync per batch
    kl_dims: list[torch.Tensor] | None = []
    codes = []
    try:
        for xb, yb in _batches(model, x, y, batch_size, binarize):
            q = model.encode(xb, yb)
            code = latent_code(q)
            sums["mse"] += (model.decode(code, yb).mean - xb).pow(2).flatten(1).sum(1).sum()
            codes.append(code)
            if not variational:
                continue
            p = model.prior()
            z, _, kl = sample_and_kl(q, p)  # the training objective's KL: closed form where there is one
            recon = -model.decode(z, yb).log_prob(xb)
            sums["elbo"] -= (recon + kl).sum()
            sums["reconstruction"] += recon.sum()
            sums["kl"] += kl.sum()
            if kl_dims is not None:
                try:
                    kl_dims.append(kl_per_dimension(q, p).sum(0))
                except NotImplementedError:  # flows: no per-coordinate KL
                    kl_dims = None
    finally:
        model.train(was_training)
    result: dict[str, Any] = {k: float(v) / n for k, v in sums.items()}
    result["num_examples"] = n
    if variational:
        result["kl_per_dimension"] = (torch.stack(kl_dims).sum(0) / n).tolist() if kl_dims else None
    count, activity = active_units(torch.cat(codes).cpu(), active_threshold)
    result["active_units"] = count
    result["unit_activity"] = activity.tolist()
    if nll_samples > 0 and variational:
        m = n if nll_limit is None else max(1, min(n, int(nll_limit)))
        if streamed:
            chunks = _batches(model, x[:m], None if y is None else y[:m], NLL_CHUNK, binarize)
            ll = torch.cat([log_likelihood(model, xb, nll_samples, y=yb, progress=progress) for xb, yb in chunks])
        else:
            ll = log_likelihood(model, x[:m], nll_samples, y=None if y is None else y[:m], progress=progress)
        result["log_likelihood"] = float(ll.mean())
        result["log_likelihood_samples"] = nll_samples
        result["log_likelihood_examples"] = m
        result["bits_per_dim"] = -result["log_likelihood"] / (math.prod(model.input_shape) * math.log(2))
    return result
