"""``vaekit.fit``: the training loop. Reads top to bottom: batch, loss, backward, step, log, checkpoint.

Speed is designed in: the data sit in one tensor on the device and batches are slices of
a permutation (no per-sample Dataset calls); loss terms are summed on the device and read
back to the host only when the progress bar or the epoch record needs them.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from vaekit._checks import is_finite_number, is_whole_number
from vaekit._device import resolve_device
from vaekit._io import atomic_write_text
from vaekit.data import Dataset, FileDataset, as_dataset, batch_loader, binarize, binarize_rows, check_data, static_binarize
from vaekit.errors import ConfigError, NonFiniteLossError
from vaekit.models.model import LatentVariableModel
from vaekit.models.persistence import load_weights, save_model
from vaekit.train.averaging import WeightAverage, check_ema
from vaekit.train.callbacks import EXAMPLES, Callback, check_callbacks
from vaekit.train.distributed import lost_process_error, process_group_from_env
from vaekit.train.precision import check_compile, resolve_precision
from vaekit.train.recipes import fast_settings
from vaekit.train.schedules import STEP_SCHEDULES, check_schedule, lr_factor, plateau_scheduler
from vaekit.train.checkpoint import CHECKPOINT_FILE, check_resumable, load_checkpoint, save_checkpoint

__all__ = ["fit", "FitResult", "resolve_device", "apply_warmup_epochs", "warmup_epochs_of", "normalize_gradients", "GRAD_NORMS"]

GRAD_NORMS = ("unit",)
"""Values of ``fit(grad_norm=)``: "unit" scales each parameter's gradient to norm 1 before Adam."""

METRICS_FILE = "metrics.jsonl"


@dataclass
class FitResult:
    """What :func:`fit` returns: the trained model, with the weights of the best epoch on validation
    when there is a validation set (from ``out_dir/model.safetensors``, or kept in memory when
    there is no ``out_dir``), of the last epoch otherwise."""

    model: LatentVariableModel
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    best_val_loss: float | None = None
    out_dir: Path | None = None
    stopped_early: bool = False
    error: BaseException | None = None
    """What ended training when it failed (set for the callbacks' ``on_fit_end``); None on success."""
    settings: dict[str, Any] = field(default_factory=dict)
    """The optimisation settings the run used (:data:`SETTINGS`): the fast recipe's when ``fast=True``."""


SETTINGS = ("epochs", "batch_size", "lr", "schedule", "lr_warmup_epochs", "warmup_epochs", "precision", "compile", "fast", "ema")


class LastGoodState:
    """In-place copies of every weight, buffer and optimiser tensor, to undo steps that went non-finite.

    ``save`` refreshes the copies without allocating (after the first call), so taking one
    every ``log_every`` steps costs a memcpy of the model and Adam state.
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer):
        self.model, self.optimizer = model, optimizer
        self.copies: list[torch.Tensor] = []
        self._tensors: list[torch.Tensor] | None = None
        self.save()

    def _live(self) -> list[torch.Tensor]:
        """The model's and the optimiser's tensors; listed once the optimiser has its state (they are updated in place)."""
        if self._tensors is not None:
            return self._tensors
        tensors = list(self.model.state_dict().values())
        for state in self.optimizer.state.values():
            tensors += [v for v in state.values() if isinstance(v, torch.Tensor)]
        if self.optimizer.state:
            self._tensors = tensors
        return tensors

    @torch.no_grad()
    def save(self) -> None:
        live = self._live()
        if [t.shape for t in live] != [c.shape for c in self.copies]:
            self.copies = [t.detach().clone() for t in live]
        else:
            for copy_, t in zip(self.copies, live):
                copy_.copy_(t)
        self.step = self.model.step  # type: ignore[attr-defined]

    @torch.no_grad()
    def restore(self) -> None:
        live = self._live()
        if len(live) != len(self.copies):  # the optimiser's state appeared after the copy was taken
            self.optimizer.state.clear()
            self._tensors = None
            live = self._live()
        for t, copy_ in zip(live, self.copies):
            t.copy_(copy_)
        self.model.step = self.step  # type: ignore[attr-defined]


class BestState:
    """The weights and buffers of the best epoch so far, kept in memory (when ``fit`` has no run folder).

    ``save`` copies the state-dict tensors in place after the first call, so a new best epoch
    costs one memcpy of the model; ``restore`` loads them back.
    """

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.copies: dict[str, torch.Tensor] | None = None

    @torch.no_grad()
    def save(self) -> None:
        live = self.model.state_dict()
        if self.copies is None or [t.shape for t in live.values()] != [t.shape for t in self.copies.values()]:
            self.copies = {k: t.detach().clone() for k, t in live.items()}
        else:
            for k, t in live.items():
                self.copies[k].copy_(t)

    def restore(self) -> None:
        if self.copies is not None:
            self.model.load_state_dict(self.copies)


def check_grad_clip(grad_clip: Any) -> float | None:
    """``grad_clip`` as a float > 0 (the largest gradient norm kept), None for no clipping, or a ``ConfigError``.

    A negative value would turn every step into gradient ascent and 0 would zero every update.
    """
    if grad_clip is None:
        return None
    valid = isinstance(grad_clip, numbers.Real) and not isinstance(grad_clip, bool) and math.isfinite(grad_clip) and grad_clip > 0
    if not valid:
        raise ConfigError(f"grad_clip must be a finite number > 0 (the largest gradient norm), or None for no clipping; got {grad_clip!r}")
    return float(grad_clip)


def apply_warmup_epochs(model: LatentVariableModel, warmup_epochs: int, steps_per_epoch: int) -> None:
    """Set the objective's KL warm-up to ``warmup_epochs`` epochs of ``steps_per_epoch`` steps.

    The objectives with a KL weight schedule (ELBO and the bounds built like it) read
    ``objective.warmup_steps``: w_t = min(1, t / (warmup_epochs · steps_per_epoch)). A model
    created with its own ``warmup_steps`` or whose objective has no KL warm-up is refused.
    """
    if isinstance(warmup_epochs, bool) or int(warmup_epochs) != warmup_epochs or warmup_epochs < 0:
        raise ConfigError(f"warmup_epochs must be an integer ≥ 0 (epochs of KL warm-up; 0: off), got {warmup_epochs!r}")
    if warmup_epochs == 0:
        return
    objective = model.objective
    name = model.config.get("model", "this model")
    if not hasattr(objective, "warmup_steps"):
        raise ConfigError(f"warmup_epochs: {name} has no KL weight to warm up ({type(objective).__name__}); drop warmup_epochs")
    steps = int(warmup_epochs) * steps_per_epoch
    if objective.warmup_steps not in (0, steps):
        raise ConfigError(f"warmup_epochs={warmup_epochs} and the model's warmup_steps={objective.warmup_steps} both set the KL "
                          "warm-up; give one of them")
    objective.warmup_steps = steps


def warmup_epochs_of(model: LatentVariableModel, steps_per_epoch: int) -> int:
    """Epochs the KL warm-up lasts, ⌈warmup_steps / steps_per_epoch⌉ (0 when the objective has none)."""
    steps = int(getattr(model.objective, "warmup_steps", 0) or 0)
    return math.ceil(steps / steps_per_epoch)


def normalize_gradients(parameters: list[torch.Tensor], eps: float = 1e-7) -> None:
    r"""g ← g / (‖g‖₂ + ε) for each parameter tensor's gradient, in place (the VampPrior code's
    ``AdamNormGrad``: every tensor's gradient has norm 1 before the Adam update).

    References:
        VAE with a VampPrior (Tomczak & Welling, 2018), code ``utils/optimizer.py``, arXiv:1705.07120.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    norms = torch._foreach_norm(grads)
    torch._foreach_div_(grads, torch._foreach_add(norms, eps))


CHECK_CHUNK = 16384
"""Examples per read when a file-backed set is checked (and its range taken) before training."""


def _prepare(data: Any, model: LatentVariableModel, name: str, device: torch.device) -> tuple[Dataset | FileDataset, Any]:
    """The data checked and ready to train on, and for a file-backed set its (min, max), read in the same pass."""
    if isinstance(data, FileDataset):
        return data, _prepare_file(data, model, name)
    dataset = as_dataset(data, name=name)
    check_data(dataset.x, input_shape=model.input_shape, likelihood=model.config.get("likelihood"), name=name)
    if model.conditional and dataset.y is None:
        raise ConfigError(f"this conditional model needs labels: pass {name} as an (x, y) tuple or a labelled dataset")
    x = dataset.x.to(device)
    y = None if (dataset.y is None or not model.conditional) else dataset.y.to(device)
    return Dataset(x, y, name=dataset.name), None


def _prepare_file(data: FileDataset, model: LatentVariableModel, name: str) -> tuple[float, float]:
    """Check a file-backed set chunk by chunk, as ``check_data`` checks one in memory, in the one pass that also
    takes its (min, max), returned; memory stays bounded."""
    if len(data) == 0:
        raise ConfigError(f"{name} ({data.path}) is empty")
    if model.conditional and data.y is None:
        raise ConfigError(f"this conditional model needs labels, and {name} ({data.path}) has none")
    return data_range(data, check=lambda chunk: check_data(chunk, input_shape=model.input_shape,
                                                           likelihood=model.config.get("likelihood"), name=f"{name} ({data.path})"))


def data_range(data: Dataset | FileDataset, check: Any = None) -> tuple[float, float]:
    """(min, max) of the examples: one reduction in memory, one chunked pass over a file, calling
    ``check(chunk)`` on each chunk as it is read."""
    if isinstance(data, Dataset):
        return tuple(float(v) for v in torch.aminmax(data.x.float()))
    low, high = math.inf, -math.inf
    for chunk in data.chunks(CHECK_CHUNK):
        if check is not None:
            check(chunk)
        lo, hi = torch.aminmax(chunk)
        low, high = min(low, float(lo)), max(high, float(hi))
    return low, high


def _file_batches(data: FileDataset, order: torch.Tensor, batch_size: int, steps: int, binarize_data: str | None,
                  generator: torch.Generator, seed: int, group: Any, device: torch.device, conditional: bool):
    """The batches ``(x, y)`` of one epoch of a file-backed set: read by a DataLoader (ahead of the step that
    needs them), copied to ``device`` without blocking, binarised as the in-memory path binarises.

    Dynamic binarisation draws each step's uniforms for the global batch (every process's batch, rank 0's
    first) from the shared generator and keeps its own part, so N processes binarise as one process over
    their union does; static binarisation is :func:`vaekit.data.binarize_rows` of each example's
    position, the same in every epoch, batch and process.
    """
    indices = [order[i * batch_size : (i + 1) * batch_size] for i in range(steps)]
    cuda = device.type == "cuda"
    labels = data.y if conditional else None
    for index, xb in zip(indices, batch_loader(data, indices, pin_memory=cuda)):
        xb = xb.to(device, non_blocking=True)
        if binarize_data == "dynamic":
            b = index.shape[0]
            uniform = torch.rand((group.world_size * b, *xb.shape[1:]), generator=generator)[group.rank * b : (group.rank + 1) * b]
            xb = (uniform.to(device, non_blocking=True) < xb).to(xb.dtype)
        elif binarize_data == "static":
            xb = binarize_rows(xb, index, seed + 1)
        yield xb, None if labels is None else labels[index].to(device, non_blocking=True)


def _memory_batches(data: Dataset, x_epoch: torch.Tensor, order: torch.Tensor, batch_size: int, steps: int):
    """The batches ``(x, y)`` of one epoch of an in-memory set: slices of a permutation, on the device already."""
    for i in range(steps):
        index = order[i * batch_size : (i + 1) * batch_size]
        yield x_epoch[index], None if data.y is None else data.y[index]


SCHEDULES_DONE = 2**62
"""A step count past the end of every schedule (KL warm-up, capacity): validation happens there."""


def _validation_batches(val: Dataset | FileDataset, batch_size: int, binarize_data: str | None, seed: int,
                        device: torch.device, conditional: bool):
    """``val`` in order, ``batch_size`` at a time; a file-backed set binarised with :func:`binarize_rows`
    (the same numbers every epoch), an in-memory one already binarised once by ``fit``."""
    if isinstance(val, Dataset):
        for start in range(0, len(val), batch_size):
            yield val.x[start : start + batch_size], None if val.y is None else val.y[start : start + batch_size]
        return
    labels = val.y if conditional else None
    for start, xb in zip(range(0, len(val), batch_size), val.chunks(batch_size)):
        xb = xb.to(device, non_blocking=True)
        if binarize_data is not None:
            xb = binarize_rows(xb, torch.arange(start, start + xb.shape[0]), seed)
        yield xb, None if labels is None else labels[start : start + xb.shape[0]].to(device)


@torch.no_grad()
def _validate(model: LatentVariableModel, batches: Any, num_examples: int) -> dict[str, float]:
    """Mean loss terms over ``batches`` (``num_examples`` in all), with every schedule at its final value, so
    epochs compare on one scale."""
    model.eval()
    step, model.step = model.step, SCHEDULES_DONE
    sums: dict[str, torch.Tensor] = {}
    try:
        for xb, yb in batches:
            for k, v in model.loss(xb, yb).items():
                sums[k] = sums.get(k, 0) + v.detach() * xb.shape[0]
    finally:
        model.step = step
        model.train()
    return {k: float(v) / num_examples for k, v in sums.items()}


def fit(
    model: LatentVariableModel,
    train: Any,
    val: Any = None,
    *,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1e-3,
    out_dir: str | Path | None = None,
    quiet: bool = False,
    seed: int = 0,
    device: str | torch.device | None = None,
    grad_clip: float | None = None,
    patience: int | None = None,
    binarize_data: str | None = None,
    resume: bool = True,
    log_every: int = 50,
    weight_decay: float = 0.0,
    warmup_epochs: int = 0,
    grad_norm: str | None = None,
    callbacks: Sequence[Callback] | None = None,
    precision: str = "fp32",
    compile: bool = False,
    schedule: str | None = None,
    lr_warmup_epochs: float = 0,
    lr_patience: int = 10,
    fast: bool = False,
    ema: float | None = None,
) -> FitResult:
    """Train ``model`` with Adam on ``train``; validate on ``val`` every epoch.

    Arguments:
        model: any vaekit model (``vaekit.create``).
        train, val: a tensor or array (B, *input_shape), an ``(x, y)`` tuple, a ``vaekit.data.Dataset``,
            or a ``vaekit.data.FileDataset`` (``open_file_dataset``: a memory-mapped ``.npy``/``.npz``
            or an image folder read lazily) for data larger than memory: checked in one chunked
            pass, then read batch by batch through a DataLoader, with the same permutation, the
            same binarisation rules (``binarize_rows`` for "static": each pixel kept with its
            value's probability, drawn from other random numbers than in memory, so the two paths
            agree in distribution, not bit for bit) and resume semantics.
        epochs, batch_size, lr, weight_decay: the optimisation budget (Adam).
        out_dir: run folder. Gets ``config.json`` + ``model.safetensors`` (the best model so
            far, what ``vaekit.load(out_dir)`` returns), ``checkpoint.safetensors`` (the last
            epoch: weights, optimiser, RNG, history) and ``metrics.jsonl`` (one line per epoch).
            With a validation set the model handed back has the best epoch's weights, read
            from that folder or, with no folder, kept in memory; without one, the last epoch's.
        quiet: no progress bar.
        seed: seeds initial shuffling, binarisation and the reparameterisation noise.
        device: "cpu", "cuda", or None for CUDA when available.
        grad_clip: clip the gradient norm to this value, a finite number > 0 (None: off).
        patience: stop when the validation loss has not improved for this many epochs (an integer
            ≥ 1; it needs ``val``). The
            validation loss is the objective with its schedules (KL warm-up, capacity) at
            their final values, so a rising KL weight does not pass for overfitting; epochs
            of KL warm-up (``warmup_epochs``, or the model's ``warmup_steps`` in epochs) are not
            counted: patience starts when the warm-up is over.
        warmup_epochs: KL warm-up over this many epochs: the objective's KL weight rises
            linearly from 0 to 1 over ``warmup_epochs`` × steps per epoch steps (the VampPrior
            recipe's 100 epochs; 0: the model's own ``warmup_steps``).
        grad_norm: "unit": scale each parameter tensor's gradient to norm 1 before the Adam step
            (the VampPrior code's AdamNormGrad, :func:`normalize_gradients`); None: plain Adam.
        binarize_data: "dynamic" (a fresh Bernoulli draw of the training set every epoch,
            validation binarised once) or "static" (both binarised once), None: as given.
        resume: continue from ``out_dir/checkpoint.safetensors`` when it exists (a killed
            run loses at most the epoch in progress); False starts over. A resumed run keeps
            its weights, Adam moments and RNG states but takes this call's ``lr`` and
            ``weight_decay``; a run that stopped early stays stopped.
        log_every: steps between progress-bar updates and NaN checks.
        callbacks: :class:`vaekit.train.callbacks.Callback` objects (TensorBoard, MLflow, your
            own): ``on_fit_start`` before the first step, ``on_epoch_end`` with each epoch's
            record, and ``on_fit_end`` always, on failure too (``result.error`` set). Called in
            the main process only, once per epoch.
        precision: "fp32", or "bf16": the encoder and decoder bodies run under autocast in
            bfloat16 while heads, densities, KLs and log-sum-exps stay float32
            (:mod:`vaekit.train.precision`). Where bf16 would be slower than fp32 (a CPU without
            native bf16, or whose bf16 matmul measures slower) a one-line warning says so and
            training stays in fp32; a GPU without bf16 is a ``ConfigError``.
        compile: ``torch.compile`` the model's loss (one compilation of ~10 s, then faster
            steps where the model has elementwise work to fuse). A machine that cannot compile
            (no C++ compiler on a CPU, no Triton on a GPU) is a ``ConfigError``.
        schedule: learning-rate schedule, None/"constant", "cosine" or "onecycle"
            (:mod:`vaekit.train.schedules`), spanning the ``epochs`` of this call (a resumed run
            continues it exactly; a run extended to more epochs stretches what is left of it);
            ``lr_warmup_epochs``: its linear warm-up, in epochs (fractions allowed). Or
            "plateau": the rate falls by a factor of 5 whenever the loss early stopping watches
            has not improved for more than ``lr_patience`` epochs after the KL warm-up (torch's
            ``ReduceLROnPlateau``; each epoch's rate is recorded as ``lr``). Give ``patience``
            well above ``lr_patience`` so that a lower rate has time to help before the run stops.
        fast: the time-to-quality recipe (:mod:`vaekit.train.recipes`): reach the quality
            of these settings (``epochs`` at ``batch_size``, ``lr``) in well under half the
            wall time: 0.4× the epochs at twice the learning rate with a one-epoch warm-up and
            cosine decay, a KL warm-up over the first fifth (objectives with a KL weight and
            no warm-up of their own), compiled steps where ``torch.compile`` runs and bf16
            where the hardware runs it fast. The settings actually used are
            ``FitResult.settings`` (and in the callbacks' ``info``).
        ema: a decay β in (0, 1) to keep an exponential moving average of the weights,
            θ̄ ← β θ̄ + (1 − β) θ after every step (:mod:`vaekit.train.averaging`; 0.999 averages
            over about 1000 steps). The averaged weights are what is validated (``val/*``, early
            stopping), saved as ``model.safetensors``, passed to the callbacks and handed back;
            the checkpoint keeps both, so a resumed run continues the same average. None: off.

    Under ``torchrun`` the model is wrapped in ``DistributedDataParallel``: each process
    trains on its shard of every epoch (``batch_size`` per process), the epoch's terms are
    summed over processes, and only rank 0 writes to ``out_dir``. Step i averages the
    gradients of the processes' i-th batches: one process at ``batch_size`` × N whose
    batches are their unions reaches the same weights. ``out_dir`` must be one folder that
    every process sees (on several machines, a shared filesystem); a process that sees
    another checkpoint there is a ``ConfigError``. Objectives that need the whole batch
    (MMD, total correlation, DIP covariance, sliced Wasserstein) see each process's own
    batch. A process that dies ends the others with a one-line ``LostProcessError``; the
    checkpoint of the last finished epoch is intact and the same command resumes from it.

    A NaN or infinite loss restores the weights and optimiser to the last state checked
    good (at most ``log_every`` steps earlier) and raises ``NonFiniteLossError`` naming
    the batch; the files in ``out_dir`` are untouched.

    Example:
        >>> model = vaekit.create("vae", input_shape=(1, 8, 8), latent_dim=4)  # doctest: +SKIP
        >>> result = vaekit.fit(model, x_train, x_val, epochs=5, out_dir="runs/demo")  # doctest: +SKIP
    """
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("log_every", log_every)):
        if not is_whole_number(value) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if not is_finite_number(lr) or lr <= 0:
        raise ConfigError(f"lr must be a finite number > 0 (e.g. 1e-3), got {lr!r}")
    if not is_finite_number(weight_decay) or weight_decay < 0:
        raise ConfigError(f"weight_decay must be a finite number ≥ 0 (0: none), got {weight_decay!r}")
    if not is_whole_number(seed):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    if patience is not None and (not is_whole_number(patience) or patience < 1):
        raise ConfigError(f"patience must be an integer ≥ 1 (epochs without a better validation loss before stopping), or None "
                          f"for no early stopping; got {patience!r}")
    if patience is not None and val is None:
        raise ConfigError("patience stops on the validation loss, and there is no validation set: pass val, or drop patience")
    epochs, batch_size, log_every, seed = int(epochs), int(batch_size), int(log_every), int(seed)
    grad_clip = check_grad_clip(grad_clip)
    ema = check_ema(ema)
    callbacks = check_callbacks(callbacks)
    if grad_norm not in (None, *GRAD_NORMS):
        raise ConfigError(f'grad_norm must be "unit" (each gradient scaled to norm 1 before Adam) or None, got {grad_norm!r}')
    if isinstance(warmup_epochs, bool) or int(warmup_epochs) != warmup_epochs or warmup_epochs < 0:
        raise ConfigError(f"warmup_epochs must be an integer ≥ 0 (epochs of KL warm-up; 0: off), got {warmup_epochs!r}")
    if binarize_data not in (None, "dynamic", "static"):
        raise ConfigError(f'binarize_data must be "dynamic", "static" or None, got {binarize_data!r}')
    schedule = check_schedule(schedule)
    if isinstance(lr_warmup_epochs, bool) or not (isinstance(lr_warmup_epochs, numbers.Real) and 0 <= lr_warmup_epochs < epochs):
        raise ConfigError(f"lr_warmup_epochs must be a number ≥ 0 and below epochs={epochs} (epochs of linear learning-rate "
                          f"warm-up), got {lr_warmup_epochs!r}")
    if lr_warmup_epochs and schedule not in STEP_SCHEDULES:
        raise ConfigError("lr_warmup_epochs (--lr-warmup-epochs) needs a schedule to warm up into: schedule='cosine' or "
                          "'onecycle' (--schedule cosine)")
    if isinstance(lr_patience, bool) or not isinstance(lr_patience, numbers.Integral) or lr_patience < 0:
        raise ConfigError(f"lr_patience must be an integer ≥ 0 (epochs without a better validation loss before "
                          f"schedule='plateau' lowers the learning rate), got {lr_patience!r}")
    group = process_group_from_env(resolve_device(device))
    device = group.device(resolve_device(device))
    if fast:
        kl_warmup = hasattr(model.objective, "warmup_steps") and not warmup_epochs and not model.objective.warmup_steps
        recipe = fast_settings(epochs, batch_size, lr, device, precision=precision, compile=compile, kl_warmup=kl_warmup)
        epochs, batch_size, lr, schedule = recipe["epochs"], recipe["batch_size"], recipe["lr"], recipe["schedule"]
        lr_warmup_epochs, precision, compile = recipe["lr_warmup_epochs"], recipe["precision"], recipe["compile"]
        warmup_epochs = recipe["warmup_epochs"] or warmup_epochs
    body_dtype, precision_note = resolve_precision(precision, device)
    if precision_note is not None and group.is_main and not fast:
        warnings.warn(precision_note, RuntimeWarning, stacklevel=2)
    if compile:
        check_compile(device)
    model.to(device).train()
    writes = out_dir is not None and group.is_main
    train_set, file_range = _prepare(train, model, "train", device)
    val_set = None if val is None else _prepare(val, model, "val", device)[0]
    streamed = isinstance(train_set, FileDataset)
    if binarize_data is not None and isinstance(val_set, Dataset):
        val_set = Dataset(static_binarize(val_set.x, seed=seed), val_set.y, name=val_set.name)
    if binarize_data == "static" and not streamed:
        train_set = Dataset(static_binarize(train_set.x, seed=seed + 1), train_set.y, name=train_set.name)
    n = len(train_set)
    shard = n // group.world_size  # examples per process per epoch (the same for every process)
    if shard == 0:
        raise ConfigError(f"train has {n} examples, fewer than the {group.world_size} training processes; every process needs "
                          "at least one: give more training data or start fewer processes")
    # what objectives may need to know of the whole training set: its size (β-TC's N) and range (salt-and-pepper)
    model.dataset_size = n
    model.data_range = file_range or data_range(train_set)
    batch_size = min(batch_size, shard)
    apply_warmup_epochs(model, warmup_epochs, math.ceil(shard / batch_size))  # checked before anything is written
    warmup_done_epoch = warmup_epochs_of(model, math.ceil(shard / batch_size))  # patience counts only the epochs after it

    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay, **_fastest_adam(model))
    average = WeightAverage(model, ema) if ema is not None else None
    evaluated = model if average is None else average.module  # what is validated, saved and handed back
    generator = torch.Generator().manual_seed(seed)  # the same permutation in every process
    torch.manual_seed(seed + group.rank)  # different reparameterisation noise in each
    step_model = torch.nn.parallel.DistributedDataParallel(model) if group.distributed else model
    result = FitResult(model, out_dir=None if out_dir is None else Path(out_dir))
    start_epoch, bad_epochs = 0, 0
    checkpoint_path = None if out_dir is None else Path(out_dir) / CHECKPOINT_FILE
    if checkpoint_path is not None and checkpoint_path.exists() and resume:
        check_resumable(checkpoint_path, model)
        state = load_checkpoint(checkpoint_path, model, optimizer, generator, average)
        if group.distributed:  # the checkpoint holds rank 0's noise state: give each process its own again
            torch.manual_seed(seed + group.rank + 7919 * state["epoch"])
        start_epoch, bad_epochs, model.step = state["epoch"], state["bad_epochs"], state["step"]
        result.stopped_early = bool(state.get("stopped_early", False))  # a finished run stays finished
        for group_ in optimizer.param_groups:  # the settings of this call, not the checkpoint's
            group_["lr"], group_["weight_decay"] = lr, weight_decay
        result.history, result.best_epoch, result.best_val_loss = state["history"], state["best_epoch"], state["best_val_loss"]
        if writes:
            atomic_write_text(Path(out_dir) / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in result.history))
        if not quiet and group.is_main:
            print(f"resuming {out_dir} from epoch {start_epoch} (step {model.step})", flush=True)
    elif writes:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / METRICS_FILE).write_text("")
    group.barrier()  # rank 0 has set up the folder
    if out_dir is not None and not group.same([start_epoch, int((Path(out_dir) / METRICS_FILE).exists())]):
        raise ConfigError(f"out_dir {out_dir}: the {group.world_size} training processes see different contents there (another "
                          "checkpoint, or no run folder); every process must use the same folder, on a filesystem shared by all "
                          "machines (e.g. NFS) when training on several")
    plateau = plateau_scheduler(optimizer, int(lr_patience)) if schedule == "plateau" else None
    if plateau is not None:  # a resumed run replays the losses it watched after the KL warm-up, and goes on from there
        for r in result.history[warmup_done_epoch:]:
            plateau.step(r.get("val/loss", r["train/loss"]))
    steps_per_epoch = math.ceil(shard / batch_size)
    total_steps, lr_warmup_steps = epochs * steps_per_epoch, round(lr_warmup_epochs * steps_per_epoch)
    loss_fn = torch.compile(step_model) if compile else step_model

    progress = None
    if not quiet and group.is_main:
        from tqdm.auto import tqdm

        progress = tqdm(total=(epochs - start_epoch) * steps_per_epoch, unit="step", dynamic_ncols=True, desc="training")

    good_state = LastGoodState(model, optimizer)
    parameters = [p for p in model.parameters() if p.is_floating_point()]
    # without a run folder the best epoch's weights are kept in memory (only when there is validation)
    best_state = BestState(evaluated) if out_dir is None and val_set is not None else None
    info = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "seed": seed, "grad_clip": grad_clip,
            "patience": patience, "binarize_data": binarize_data, "warmup_epochs": warmup_epochs, "grad_norm": grad_norm,
            "out_dir": None if out_dir is None else str(out_dir), "device": str(device), "start_epoch": start_epoch,
            "num_train": n, "num_val": 0 if val_set is None else len(val_set), "world_size": group.world_size,
            "precision": "fp32" if body_dtype is None else "bf16", "compile": bool(compile), "schedule": schedule,
            "lr_warmup_epochs": lr_warmup_epochs, "lr_patience": lr_patience, "fast": bool(fast), "ema": ema,
            "examples": _in_memory((val_set if val_set is not None else train_set)[:EXAMPLES])}
    result.settings = {k: info[k] for k in SETTINGS}
    started = _start_callbacks(callbacks if group.is_main else [], model, info, result)  # rank 0 alone reports
    model.body_dtype = evaluated.body_dtype = body_dtype
    fit_started = time.perf_counter()
    elapsed_before = float(result.history[-1].get("elapsed_s", 0.0)) if result.history else 0.0  # a resumed run's time so far
    compiler_config = contextlib.ExitStack()
    if compile:  # the schedules read model.step: let it be a dynamic int rather than recompile at every step
        compiler_config.enter_context(torch._dynamo.config.patch(allow_unspec_int_on_nn_module=True))
    try:
        for epoch in range(start_epoch, epochs):
            if result.stopped_early:
                break
            t0 = time.perf_counter()
            order = torch.randperm(n, generator=generator)[group.rank * shard : (group.rank + 1) * shard]
            if streamed:
                batches = _file_batches(train_set, order, batch_size, steps_per_epoch, binarize_data, generator, seed, group, device,
                                        model.conditional)
            else:
                x_epoch = binarize(train_set.x, generator=generator) if binarize_data == "dynamic" else train_set.x
                batches = _memory_batches(train_set, x_epoch, order.to(device), batch_size, steps_per_epoch)
            sums: torch.Tensor | None = None
            keys: list[str] = []
            bad = torch.zeros((), dtype=torch.bool, device=device)
            first_bad = torch.full((), -1, dtype=torch.long, device=device)
            bad_terms = torch.zeros((), device=device)  # the loss terms of the first bad batch
            for i, (xb, yb) in enumerate(batches):
                if schedule in STEP_SCHEDULES:
                    for group_ in optimizer.param_groups:
                        group_["lr"] = lr * lr_factor(model.step, total_steps, lr_warmup_steps, schedule)
                out = loss_fn(xb, yb)  # model.loss, through DDP's gradient hooks when distributed
                optimizer.zero_grad(set_to_none=True)
                out["loss"].backward()
                if grad_norm == "unit":
                    normalize_gradients(parameters)
                if grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                optimizer.step()
                model.step += 1
                if average is not None:
                    average.update()

                # bookkeeping on the device: no host sync here
                keys = keys or list(out)
                terms = torch.stack([out[k].detach() for k in keys]) * xb.shape[0]
                sums = terms if sums is None else sums + terms
                finite = torch.isfinite(out["loss"].detach())
                first_bad = torch.where(~finite & ~bad, i, first_bad)
                bad_terms = torch.where(~finite & ~bad, terms / xb.shape[0], bad_terms)
                bad = bad | ~finite

                if (i + 1) % log_every == 0 or i + 1 == steps_per_epoch:
                    # a finite loss can still come with a non-finite gradient: check the weights too
                    weights_finite = torch.isfinite(torch.stack(torch._foreach_norm(parameters))).all()  # one fused pass
                    if group.any(bad | ~weights_finite):  # one host sync per log_every steps
                        good_state.restore()
                        if progress is not None:
                            progress.close()
                        where = f"epoch {epoch + 1}, batch {int(first_bad) + 1} of {steps_per_epoch}"
                        raise NonFiniteLossError(
                            (f"non-finite loss at {where} (term values: "
                             f"{', '.join(f'{k}={float(v):.4g}' for k, v in zip(keys, bad_terms))})"
                             if bool(bad) else
                             f"non-finite weights after a step of epoch {epoch + 1} (batches {i + 2 - ((i % log_every) + 1)}–{i + 1}; "
                             "the loss was finite, a gradient was not)")
                            + "; the model was restored to its last good state and nothing saved was touched. "
                            "Lower the learning rate, set grad_clip, or check the data for extreme values."
                        )
                    good_state.save()
                    if progress is not None:
                        progress.update((i % log_every) + 1)
                        progress.set_postfix(epoch=f"{epoch + 1}/{epochs}", loss=f"{float(sums[0]) / min(shard, (i + 1) * batch_size):.4g}")

            seconds = time.perf_counter() - t0
            record: dict[str, Any] = {"epoch": epoch + 1, "step": model.step}
            sums = group.sum(sums)
            record.update({f"train/{k}": float(v) / (shard * group.world_size) for k, v in zip(keys, sums)})
            record["samples_per_s"] = shard * group.world_size / seconds
            evaluated.step = model.step  # the averaged copy reports the step it has followed
            if val_set is not None:
                val_batches = _validation_batches(val_set, max(batch_size, 500), binarize_data, seed, device, model.conditional)
                val_terms = _validate(evaluated, val_batches, len(val_set))
                averaged = group.sum(torch.tensor(list(val_terms.values()), dtype=torch.float64, device=device)) / group.world_size
                record.update({f"val/{k}": float(v) for k, v in zip(val_terms, averaged)})  # identical in every process
            record["elapsed_s"] = elapsed_before + time.perf_counter() - fit_started  # wall time of training and validation
            monitored = record.get("val/loss", record["train/loss"])
            if plateau is not None:
                record["lr"] = optimizer.param_groups[0]["lr"]  # this epoch's rate; the next may be lower
                if epoch + 1 > warmup_done_epoch:
                    plateau.step(monitored)
            # without validation data there is nothing to select on: the last epoch is the model
            # a NaN loss never improves on a number, and any number improves on a NaN
            improved = (val_set is None or result.best_val_loss is None or monitored < result.best_val_loss
                        or (math.isnan(result.best_val_loss) and not math.isnan(monitored)))
            if improved:
                result.best_val_loss, result.best_epoch, bad_epochs = monitored, epoch + 1, 0
            elif epoch + 1 > warmup_done_epoch:
                bad_epochs += 1
            result.stopped_early = patience is not None and val_set is not None and bad_epochs >= patience
            result.history.append(record)
            if best_state is not None and improved:
                best_state.save()

            if writes:
                if improved:
                    save_model(evaluated, out_dir)
                trainer_state = {
                    "epoch": epoch + 1, "step": model.step, "bad_epochs": bad_epochs, "history": result.history,
                    "best_epoch": result.best_epoch, "best_val_loss": result.best_val_loss, "model_config": model.config,
                    "stopped_early": result.stopped_early,
                }
                save_checkpoint(checkpoint_path, model, optimizer, trainer_state, generator, average)
                with open(Path(out_dir) / METRICS_FILE, "a") as f:
                    f.write(json.dumps(record) + "\n")
            group.barrier()  # files of this epoch are complete before any process goes on
            for callback in started:
                callback.on_epoch_end(epoch + 1, record, evaluated)
            if progress is not None:
                progress.write(
                    f"epoch {epoch + 1}/{epochs}  train loss {record['train/loss']:.4f}"
                    + (f"  val loss {record['val/loss']:.4f}" if "val/loss" in record else "")
                    + f"  {record['samples_per_s']:.0f} samples/s"
                )
    except torch._dynamo.exc.TorchDynamoException as e:  # compile=True failed on this model, at its first step
        result.error = ConfigError(f"compile=True failed on this model ({type(e).__name__}: {str(e).strip().splitlines()[0][:200]}); "
                                   "train without --compile")
        raise result.error from None
    except RuntimeError as e:  # a process died: gloo/NCCL broke the collective step in progress
        result.error = e
        lost = lost_process_error(e, group, epoch + 1, checkpoint_path)
        if lost is None:
            raise
        if progress is not None:
            progress.close()
        result.error = lost
        raise lost from None
    except BaseException as e:  # a non-finite loss, Ctrl-C, a failing callback: on_fit_end hears of it
        result.error = e
        raise
    else:
        if progress is not None:
            progress.close()
        if out_dir is not None and val_set is not None and result.best_epoch is not None:
            load_weights(model, Path(out_dir) / "model.safetensors")  # hand back the best model
        else:
            if best_state is not None:
                best_state.restore()
            if average is not None:  # the averaged weights (of the best epoch) are the model
                model.load_state_dict(average.module.state_dict())
        model.eval()
    finally:
        model.body_dtype = evaluated.body_dtype = None  # evaluation and sampling after training run in float32
        compiler_config.close()
        _end_callbacks(started, result)
    return result


def _in_memory(data: Dataset | FileDataset) -> Dataset:
    return data.load() if isinstance(data, FileDataset) else data


def _fastest_adam(model: torch.nn.Module) -> dict[str, bool]:
    """``fused=True`` where torch has a fused Adam kernel for these parameters (CPU and CUDA float tensors): one
    kernel per step instead of a dozen multi-tensor passes, a few percent of a small model's step."""
    parameters = list(model.parameters())
    fusable = parameters and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in parameters)
    return {"fused": True} if fusable else {}


def _start_callbacks(callbacks: list[Callback], model: LatentVariableModel, info: dict[str, Any], result: FitResult) -> list[Callback]:
    """Call each ``on_fit_start``; when one fails, end those already started (with the error) and re-raise."""
    started: list[Callback] = []
    try:
        for callback in callbacks:
            callback.on_fit_start(model, info)
            started.append(callback)
    except BaseException as e:
        result.error = e
        _end_callbacks(started, result)
        raise
    return started


def _end_callbacks(callbacks: list[Callback], result: FitResult) -> None:
    """Call every ``on_fit_end`` (each one, even after another fails); re-raise the first failure."""
    failure: BaseException | None = None
    for callback in callbacks:
        try:
            callback.on_fit_end(result)
        except BaseException as e:
            failure = failure or e
    if failure is not None and result.error is None:  # never hide the error that ended training
        raise failure
