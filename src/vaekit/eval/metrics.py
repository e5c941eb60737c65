"""Evaluation of a trained model: bound, reconstruction, KL per dimension, active units, log p(x)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from vaekit.distributions import kl_per_dimension, latent_code, sample_and_kl
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


@torch.no_grad()
def evaluate(
    model: "LatentVariableModel",
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    nll_samples: int = 0,
    batch_size: int = 500,
    active_threshold: float = 0.01,
    progress: bool = False,
    nll_limit: int | None = None,
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
    """
    x = check_model_input(model, x)
    was_training = model.training
    model.eval()
    device = model.device
    variational = has_likelihood(model)
    sums = {"elbo": 0.0, "reconstruction": 0.0, "kl": 0.0, "mse": 0.0} if variational else {"mse": 0.0}
    kl_dims: list[torch.Tensor] | None = []
    codes = []
    try:
        for start in range(0, x.shape[0], batch_size):
            xb = x[start : start + batch_size].to(device)
            yb = None if y is None else y[start : start + batch_size].to(device)
            q = model.encode(xb, yb)
            code = latent_code(q)
            mse = (model.decode(code, yb).mean - xb).pow(2).flatten(1).sum(1)
            sums["mse"] += float(mse.sum())
            codes.append(code.cpu())
            if not variational:
                continue
            p = model.prior()
            z, _, kl = sample_and_kl(q, p)  # the training objective's KL: closed form where there is one
            recon = -model.decode(z, yb).log_prob(xb)
            sums["elbo"] += float(-(recon + kl).sum())
            sums["reconstruction"] += float(recon.sum())
            sums["kl"] += float(kl.sum())
            if kl_dims is not None:
                try:
                    kl_dims.append(kl_per_dimension(q, p).sum(0).cpu())
                except NotImplementedError:  # flows: no per-coordinate KL
                    kl_dims = None
    finally:
        model.train(was_training)
    n = x.shape[0]
    result: dict[str, Any] = {k: v / n for k, v in sums.items()}
    result["num_examples"] = n
    if variational:
        result["kl_per_dimension"] = (torch.stack(kl_dims).sum(0) / n).tolist() if kl_dims else None
    count, activity = active_units(torch.cat(codes), active_threshold)
    result["active_units"] = count
    result["unit_activity"] = activity.tolist()
    if nll_samples > 0 and variational:
        m = n if nll_limit is None else max(1, min(n, int(nll_limit)))
        ll = log_likelihood(model, x[:m], nll_samples, y=None if y is None else y[:m], progress=progress)
        result["log_likelihood"] = float(ll.mean())
        result["log_likelihood_samples"] = nll_samples
        result["log_likelihood_examples"] = m
        result["bits_per_dim"] = -result["log_likelihood"] / (math.prod(model.input_shape) * math.log(2))
    return result
