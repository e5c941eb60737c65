"""A normalising flow (zuko's MAF or NSF) fitted to the codes of a trained model."""

from __future__ import annotations

import copy
import math
import sys
import warnings
from typing import Any, Sequence

import torch
from torch import nn

from vaekit.errors import DataError
from vaekit.samplers._checks import check_choice, check_float, check_int, check_int_tuple
from vaekit.samplers.base import Sampler, _generator

__all__ = ["FlowSampler", "build_flow", "standardize"]

FLOWS = ("maf", "nsf")
MIN_SCALE = 1e-6
"""Floor on a code dimension's standard deviation, so a constant dimension standardises to 0, not NaN."""


def build_flow(flow: str, features: int, transforms: int, hidden_dims: Sequence[int]) -> nn.Module:
    """An unconditional zuko flow over ``features`` dimensions: ``flow()`` is its distribution.

    ``"maf"``: masked autoregressive flow, affine autoregressive transforms (Papamakarios,
    Pavlakou & Murray, "Masked Autoregressive Flow for Density Estimation", 2017,
    arXiv:1705.07057); ``"nsf"``: neural spline flow, monotonic rational-quadratic splines
    (Durkan, Bekasov, Murray & Papamakarios, "Neural Spline Flows", 2019,
    arXiv:1906.04032). ``transforms`` autoregressive transforms, each with a masked MLP of
    ``hidden_dims``; the base is N(0, I).
    """
    import zuko

    cls = {"maf": zuko.flows.MAF, "nsf": zuko.flows.NSF}[flow]
    return cls(features, transforms=transforms, hidden_features=tuple(hidden_dims))


def standardize(codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(shift, scale): per-dimension mean and standard deviation (floored at ``MIN_SCALE``) of codes (N, D)."""
    return codes.mean(0), codes.std(0, unbiased=False).clamp_min(MIN_SCALE)


class FlowSampler(Sampler):
    r"""A normalising flow fitted to the codes of the training data, decoded.

    The codes are standardised, u = (z − m) / s (per-dimension mean and standard deviation
    of the training codes), and a flow with density q_u is fitted to u by maximum
    likelihood (Adam on minibatches), holding out ``val_fraction`` of the codes and keeping
    the weights of the epoch with the best held-out log-likelihood (early stopping after
    ``patience`` epochs without improvement). In code space,

        log q(z) = log q_u((z − m) / s) − Σ_d log s_d,

    and a sample is z = m + s ⊙ T⁻¹(ε), ε ~ N(0, I), with T the flow's transform (data →
    base). The flow is zuko's (MAF or NSF); its weights are saved in safetensors and its
    hyper-parameters in JSON, and it is rebuilt from them on load.

    References:
        Masked Autoregressive Flow for Density Estimation (Papamakarios, Pavlakou & Murray,
        2017), arXiv:1705.07057. Neural Spline Flows (Durkan, Bekasov, Murray &
        Papamakarios, 2019), arXiv:1906.04032. Pythae: Unifying Generative Autoencoders in
        Python (Chadebec, Vincent & Allassonnière, 2022), arXiv:2206.08309 — a MAF fitted
        to the codes as an ex-post sampler.

    Arguments:
        flow: ``"maf"`` or ``"nsf"``.
        transforms: number of autoregressive transforms.
        hidden_dims: widths of each transform's masked MLP.
        epochs: passes over the training codes at most.
        batch_size: codes per Adam step.
        lr: Adam's learning rate.
        val_fraction: share of the codes held out for early stopping, in [0, 1) (0: train
            all ``epochs`` and keep the last weights).
        patience: stop after this many epochs without a better held-out log-likelihood
            (None: never stop early).
        seed: seeds the initial weights, the split and the shuffling.
        verbose: a progress bar over epochs on stderr.

    Fitted attributes: ``flow_`` (the zuko module), ``shift_`` and ``scale_`` (m and s, (D,)),
    ``best_epoch_``, ``history_`` (per epoch: average log q(z) of the training codes during
    the epoch and of the held-out codes after it), ``val_log_likelihood_`` (held-out
    average log q(z) at the best epoch, None without a held-out share), and those of :class:`~vaekit.samplers.base.Sampler`.

    Example:
        >>> sampler = FlowSampler("maf", epochs=50).fit(model, x_train)  # doctest: +SKIP
        >>> images = sampler.sample(64, seed=0)                          # doctest: +SKIP
    """

    kind = "flow"

    def __init__(self, flow: str = "maf", *, transforms: int = 3, hidden_dims: Sequence[int] = (64, 64), epochs: int = 100,
                 batch_size: int = 256, lr: float = 1e-3, val_fraction: float = 0.1, patience: int | None = 10,
                 seed: int = 0, verbose: bool = False):
        self.flow = flow
        self.transforms = transforms
        self.hidden_dims = hidden_dims
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.val_fraction = val_fraction
        self.patience = patience
        self.seed = seed
        self.verbose = verbose

    def check_params(self) -> None:
        check_choice(self.flow, "flow", FLOWS)
        check_int(self.transforms, "transforms", low=1)
        check_int_tuple(self.hidden_dims, "hidden_dims")
        check_int(self.epochs, "epochs", low=1)
        check_int(self.batch_size, "batch_size", low=1)
        check_float(self.lr, "lr", 0.0, math.inf, low_open=True, high_open=True)
        check_float(self.val_fraction, "val_fraction", 0.0, 1.0, high_open=True)
        if self.patience is not None:
            check_int(self.patience, "patience", low=1)
        check_int(self.seed, "seed", low=0)

    # -- fitting -----------------------------------------------------------------------------
    def _split(self, u: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        n = u.shape[0]
        n_val = max(1, round(self.val_fraction * n)) if self.val_fraction > 0 else 0
        if n - n_val < 1:
            raise DataError(f"a flow needs at least one training code besides the {n_val} held out, got {n} codes: "
                            "give more examples or val_fraction=0")
        order = torch.randperm(n, generator=generator)
        return u[order[n_val:]], (u[order[:n_val]] if n_val else None)

    def _fit_codes(self, codes: torch.Tensor) -> None:
        codes = codes.to(torch.float32)
        shift, scale = standardize(codes)
        generator = torch.Generator().manual_seed(self.seed)
        train, val = self._split((codes - shift) / scale, generator)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            flow = build_flow(self.flow, codes.shape[1], self.transforms, self.hidden_dims)
        optimizer = torch.optim.Adam(flow.parameters(), lr=self.lr)
        best, best_state, best_epoch, history, stale = -math.inf, copy.deepcopy(flow.state_dict()), 0, [], 0
        log_scale = float(scale.log().sum())  # log q(z) = log q_u(u) − Σ_d log s_d: report in code space
        epochs = range(1, self.epochs + 1)
        if self.verbose:
            from tqdm.auto import tqdm

            epochs = tqdm(epochs, desc=f"fitting a {self.flow.upper()} to {codes.shape[0]} codes", unit="epoch", file=sys.stderr)
        for epoch in epochs:
            flow.train()
            order, total = torch.randperm(train.shape[0], generator=generator), 0.0
            for i in range(0, train.shape[0], self.batch_size):
                batch = train[order[i : i + self.batch_size]]
                loss = -flow().log_prob(batch).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * batch.shape[0]
            flow.eval()
            train_ll = -total / train.shape[0] - log_scale
            if not math.isfinite(train_ll):
                warnings.warn(f"the flow's training loss became non-finite at epoch {epoch}; keeping the weights of epoch "
                              f"{best_epoch} (try a smaller lr)", stacklevel=3)
                break
            with torch.no_grad():
                val_ll = float(flow().log_prob(val).mean()) - log_scale if val is not None else train_ll
            history.append({"epoch": epoch, "train": train_ll, "val": val_ll if val is not None and math.isfinite(val_ll) else None})
            if self.verbose:
                epochs.set_postfix(train=f"{train_ll:.3f}", val=f"{val_ll:.3f}")
            if val is None or val_ll > best:
                best, best_state, best_epoch, stale = val_ll, copy.deepcopy(flow.state_dict()), epoch, 0
            else:
                stale += 1
                if self.patience is not None and stale >= self.patience:
                    break
        flow.load_state_dict(best_state)
        self.flow_ = flow.eval()
        self.shift_, self.scale_ = shift, scale
        self.best_epoch_, self.history_ = best_epoch, history
        self.val_log_likelihood_ = best if val is not None and best_epoch else None

    # -- using it ----------------------------------------------------------------------------
    def _sample_codes(self, n: int, seed: int | None) -> torch.Tensor:
        with torch.no_grad():
            q = self.flow_()
            eps = torch.randn(n, self.latent_dim_, generator=_generator(seed))
            u = q.transform.inv(q.base.mean + q.base.stddev * eps)  # what q.sample draws, from our generator
            return self.shift_ + self.scale_ * u

    def _log_prob(self, codes: torch.Tensor) -> torch.Tensor:
        u = (codes.to(torch.float32) - self.shift_) / self.scale_
        return self.flow_().log_prob(u).double() - self.scale_.double().log().sum()

    # -- persistence -------------------------------------------------------------------------
    def _tensors(self) -> dict[str, torch.Tensor]:
        return {"shift": self.shift_, "scale": self.scale_, **{f"flow.{k}": v for k, v in self.flow_.state_dict().items()}}

    def _fitted_info(self) -> dict[str, Any]:
        return {**super()._fitted_info(), "best_epoch": self.best_epoch_, "val_log_likelihood": self.val_log_likelihood_,
                "history": self.history_}

    def _restore(self, tensors: dict[str, torch.Tensor], fitted: dict[str, Any]) -> None:
        d = self.latent_dim_
        for name in ("shift", "scale"):
            if name not in tensors or tuple(tensors[name].shape) != (d,):
                raise ValueError(f"{name} should have shape ({d},)")
        flow = build_flow(self.flow, d, self.transforms, self.hidden_dims)
        flow.load_state_dict({k[len("flow."):]: v for k, v in tensors.items() if k.startswith("flow.")}, strict=True)
        self.flow_ = flow.eval()
        self.shift_, self.scale_ = tensors["shift"].float(), tensors["scale"].float()
        self.best_epoch_, self.history_ = int(fitted["best_epoch"]), list(fitted["history"])
        value = fitted["val_log_likelihood"]
        self.val_log_likelihood_ = None if value is None else float(value)
