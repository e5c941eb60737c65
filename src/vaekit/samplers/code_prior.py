"""Fitting a VQ-VAE's code prior: a gated PixelCNN trained on the code grids of the training data.

The VQ-VAE is trained with a uniform prior over its codes, and sampling that prior gives
noise: van den Oord et al. (2017, §3.3) fit an autoregressive prior p(k) over the grid of
code indices afterwards and generate by decoding k ~ p(k). :func:`fit_prior` does this: it
computes k(x) for the training data, trains a :class:`~vaekit.distributions.GatedPixelCNN`
by maximum likelihood (cross-entropy of each code given the codes before it in raster
order), reports the negative log-likelihood in bits per code on the training and test
codes, attaches the prior to the model (``model.sample(n)`` then works) and saves it beside
the model (``RUN/prior.safetensors`` + ``RUN/prior.json``, which ``vaekit.load(RUN)``
attaches).

The NLL in bits per code is −(1 / (N·h·w)) Σ_n Σ_i log₂ p(k_{n,i} | k_{n,<i}); the uniform
prior scores log₂ K.

References:
    Neural Discrete Representation Learning (van den Oord, Vinyals & Kavukcuoglu, NeurIPS
    2017), arXiv:1711.00937. Conditional Image Generation with PixelCNN Decoders (van den
    Oord et al., NeurIPS 2016), arXiv:1606.05328.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from vaekit._checks import is_finite_number, is_whole_number
from vaekit.distributions.pixelcnn import GatedPixelCNN
from vaekit.errors import ConfigError, DataError
from vaekit.models.model import LatentVariableModel
from vaekit.models.persistence import WEIGHTS_FILE
from vaekit.models.vq_vae import VectorQuantizedModel, model_digest, save_code_prior
from vaekit.samplers.base import saved_model_digest

__all__ = ["fit_prior", "fit_code_prior", "CodePriorFit", "code_grids", "nll_bits_per_code"]

CHUNK = 1024
"""Examples encoded, or grids scored, at once: bounds memory; results do not depend on it."""


@dataclass
class CodePriorFit:
    """What :func:`fit_prior` returns: the fitted prior (attached to the model) and its scores in bits per code."""

    prior: GatedPixelCNN
    train_nll_bits: float
    test_nll_bits: float | None
    history: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)


def code_grids(model: VectorQuantizedModel, x: Any, name: str = "x") -> torch.Tensor:
    """k(x) for every example, (N, h, w) long on the model's device, encoded in chunks in evaluation mode.

    ``x`` is a tensor, an array or a vaekit Dataset of (N, *input_shape) finite examples
    (``name`` is what errors call it).
    """
    from vaekit.data import Dataset, check_data

    if isinstance(x, Dataset):
        x = x.x
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError):
            raise DataError(f"{name} must be a tensor or an array of examples, got {type(x).__name__}") from None
    if x.dim() == 0 or x.shape[0] == 0:
        raise DataError(f"{name} holds no examples (shape {tuple(x.shape)}); give at least one (N, {', '.join(map(str, model.input_shape))}) example")
    check_data(x, input_shape=model.input_shape, name=name)  # the shape, and no NaN (whose codes would be silently arbitrary)
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model.code_indices(x[i : i + CHUNK].to(model.device)) for i in range(0, x.shape[0], CHUNK)])
    finally:
        model.train(was_training)


@torch.no_grad()
def nll_bits_per_code(prior: GatedPixelCNN, grids: torch.Tensor) -> float:
    r"""−(1 / (N·h·w)) Σ_n log₂ p(k_n): the prior's negative log-likelihood in bits per code.

    Equals the mean cross-entropy of the codes (in nats) divided by ln 2.
    """
    was_training = prior.training
    prior.eval()
    try:
        total = sum(float(-prior().log_prob(grids[i : i + CHUNK]).sum()) for i in range(0, grids.shape[0], CHUNK))
    finally:
        prior.train(was_training)
    return total / (grids.numel() * math.log(2))


def _check_run_folder(model: VectorQuantizedModel, out_dir: Path) -> None:
    """``out_dir`` must hold this very model: the prior is saved beside the weights it was fitted to."""
    path = out_dir / WEIGHTS_FILE
    if not path.is_file():
        raise ConfigError(f"out_dir {out_dir} holds no saved model ({WEIGHTS_FILE} is missing); save the model there first "
                          "(model.save(out_dir)) so the prior sits beside the weights it was fitted to")
    if saved_model_digest(out_dir) != model_digest(model):
        raise ConfigError(f"the model differs from the one saved in {out_dir} (its weights changed since); save it there first "
                          "(model.save(out_dir)) or fit the prior without out_dir")


def _check_budget(epochs: int, batch_size: int, lr: float, channels: int) -> None:
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("channels", channels)):
        if not is_whole_number(value) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if not is_finite_number(lr) or not lr > 0:
        raise ConfigError(f"lr must be a finite number > 0, got {lr!r}")


def _layers_for(grid_shape: tuple[int, int], layers: int | None, kernel_size: int) -> int:
    """``layers``, checked to cover the grid; None: max(6, the fewest that do)."""
    h, w = grid_shape
    if not is_whole_number(kernel_size) or kernel_size < 3 or kernel_size % 2 == 0:
        raise ConfigError(f"kernel_size must be an odd integer ≥ 3, got {kernel_size}")
    needed = max(1, -(-(max(h, w) - 1) // (kernel_size // 2)))
    if layers is None:
        return max(6, needed)
    if not is_whole_number(layers) or layers < needed:
        raise ConfigError(f"layers must be an integer ≥ {needed} for a {h}×{w} code grid with kernel_size={kernel_size} "
                          f"(the receptive field must cover every earlier code), got {layers}")
    return int(layers)


def fit_code_prior(
    grids: torch.Tensor,
    num_codes: int,
    test_grids: torch.Tensor | None = None,
    *,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 1e-3,
    channels: int = 32,
    layers: int | None = None,
    kernel_size: int = 5,
    seed: int = 0,
    quiet: bool = True,
) -> tuple[GatedPixelCNN, list[dict[str, Any]]]:
    r"""Train a gated PixelCNN on code grids (N, h, w) by maximum likelihood; return it and its per-epoch history.

    Minimises the mean cross-entropy −(1/(B·h·w)) Σ log p(k_i | k_<i) over batches (Adam).
    Each history row holds ``train_nll_bits`` (the epoch's batches, during training) and, with
    ``test_grids``, ``test_nll_bits`` after the epoch, both in bits per code. The grids stay on
    their device; the prior is built there.

    Arguments:
        grids: (N, h, w) integer codes in 0..num_codes − 1.
        num_codes: K.
        test_grids: held-out grids scored after every epoch (or None).
        epochs, batch_size, lr: the training budget.
        channels, layers, kernel_size: the network (:class:`~vaekit.distributions.GatedPixelCNN`).
        seed: seeds the initial weights and the order of the batches.
        quiet: no progress bar.
    """
    _check_budget(epochs, batch_size, lr, channels)
    for name, g in (("grids", grids), ("test_grids", test_grids)):
        if g is None:
            continue
        if g.dim() != 3 or g.is_floating_point() or g.shape[0] < 1:
            raise DataError(f"{name} must be integer code grids of shape (N, h, w) with N ≥ 1, got {g.dtype} {tuple(g.shape)}")
        if bool((g < 0).any() | (g >= num_codes).any()):
            raise DataError(f"{name} must hold codes in 0..{num_codes - 1}")
    if test_grids is not None and test_grids.shape[1:] != grids.shape[1:]:
        raise DataError(f"test_grids are {tuple(test_grids.shape[1:])} grids but grids are {tuple(grids.shape[1:])}")
    grid_shape = (int(grids.shape[1]), int(grids.shape[2]))
    layers = _layers_for(grid_shape, layers, kernel_size)
    grids = grids.long()
    test_grids = None if test_grids is None else test_grids.long().to(grids.device)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # the weights from seed, and torch's global random state left as it was
        torch.default_generator.manual_seed(seed)
        prior = GatedPixelCNN(num_codes, grid_shape, channels=int(channels), layers=layers, kernel_size=int(kernel_size))
    prior = prior.to(grids.device)
    optimizer = torch.optim.Adam(prior.parameters(), lr=lr)
    n = grids.shape[0]
    batch_size = min(int(batch_size), n)
    steps = math.ceil(n / batch_size)
    progress = None
    if not quiet:
        from tqdm.auto import tqdm

        progress = tqdm(total=int(epochs) * steps, unit="step", dynamic_ncols=True, desc="fitting the code prior")
    history: list[dict[str, Any]] = []
    for epoch in range(int(epochs)):
        prior.train()
        order = torch.randperm(n, generator=generator).to(grids.device)
        total = torch.zeros((), device=grids.device)
        for i in range(steps):
            batch = grids[order[i * batch_size : (i + 1) * batch_size]]
            loss = F.cross_entropy(prior.logits(batch), batch)  # nats per code
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * batch.shape[0]
            if progress is not None:
                progress.update(1)
        record: dict[str, Any] = {"epoch": epoch + 1, "train_nll_bits": float(total) / (n * math.log(2))}
        if test_grids is not None:
            record["test_nll_bits"] = nll_bits_per_code(prior, test_grids)
        history.append(record)
        if progress is not None:
            progress.set_postfix(bits=f"{record.get('test_nll_bits', record['train_nll_bits']):.3f}")
    if progress is not None:
        progress.close()
    return prior.eval(), history


def fit_prior(
    model: LatentVariableModel,
    x: torch.Tensor,
    x_test: torch.Tensor | None = None,
    *,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 1e-3,
    channels: int = 32,
    layers: int | None = None,
    kernel_size: int = 5,
    seed: int = 0,
    quiet: bool = True,
    out_dir: str | Path | None = None,
) -> CodePriorFit:
    """Fit a gated PixelCNN prior over the code grids of ``x`` and attach it to ``model``.

    Arguments:
        model: a trained ``vq_vae``.
        x: training examples (N, *input_shape), finite (tensor, array or vaekit Dataset); their code
            grids k(x) are the prior's data.
        x_test: held-out examples (as ``x``) whose NLL is reported (None: no test score).
        epochs, batch_size, lr: the prior's training budget (Adam, cross-entropy per code).
        channels, layers, kernel_size: the PixelCNN (see :class:`~vaekit.distributions.GatedPixelCNN`);
            ``layers=None`` picks max(6, the fewest layers whose receptive field covers the grid).
        seed: seeds the prior's initial weights and the order of the batches.
        quiet: no progress bar.
        out_dir: the model's run folder (it must hold these very weights): the prior is saved
            there as ``prior.safetensors`` + ``prior.json`` and ``vaekit.load(out_dir)`` attaches it.

    Returns a :class:`CodePriorFit`: the train and test NLL in bits per code (one pass over
    each set with the fitted prior) and the per-epoch ``history`` of :func:`fit_code_prior`.
    Everything is checked before anything is computed or written.

    Example:
        >>> fit = fit_prior(model, x_train, x_test, epochs=5, out_dir="runs/vq_vae")  # doctest: +SKIP
        >>> images = model.sample(64)  # doctest: +SKIP
    """
    if not isinstance(model, VectorQuantizedModel):
        name = model.config.get("model", type(model).__name__) if isinstance(getattr(model, "config", None), dict) else type(model).__name__
        raise ConfigError(f"fit_prior fits the code prior of a vq_vae; got {name!r} (continuous codes take an ex-post sampler: "
                          "vaekit.samplers.GaussianMixtureSampler / FlowSampler)")
    _check_budget(epochs, batch_size, lr, channels)
    _layers_for(model.grid_shape, layers, kernel_size)
    if out_dir is not None:
        out_dir = Path(out_dir)
        _check_run_folder(model, out_dir)
    train = code_grids(model, x)
    test = None if x_test is None else code_grids(model, x_test, "x_test")
    prior, history = fit_code_prior(train, model.codebook_size, test, epochs=epochs, batch_size=batch_size, lr=lr, channels=channels,
                                    layers=layers, kernel_size=kernel_size, seed=seed, quiet=quiet)
    train_bits = nll_bits_per_code(prior, train)
    test_bits = None if test is None else nll_bits_per_code(prior, test)
    info = {"train_nll_bits_per_code": train_bits, "test_nll_bits_per_code": test_bits, "uniform_bits_per_code": math.log2(model.codebook_size),
            "epochs": int(epochs), "train_examples": int(train.shape[0]), "test_examples": None if test is None else int(test.shape[0]),
            "history": history}
    model.attach_code_prior(prior, info)
    files = save_code_prior(model, out_dir) if out_dir is not None else {}
    return CodePriorFit(prior, train_bits, test_bits, history, files)
