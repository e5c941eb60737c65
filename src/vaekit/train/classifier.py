"""``train_classifier``: the feature classifier's training loop (Adam, cross-entropy, a fixed seed).

Reads top to bottom like :func:`vaekit.fit`: the data sit in one tensor on the device,
batches are slices of a seeded permutation, losses and correct counts are summed on the
device and read back once per epoch. With a validation set the weights of the epoch with
the best validation accuracy are handed back (kept in memory). With the same seed, data and
thread count the trained weights, hence their SHA-256, are the same on every run.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from vaekit._device import resolve_device
from vaekit._io import atomic_write_text
from vaekit.data import Dataset, as_dataset, check_data
from vaekit.errors import ConfigError, DataError, NonFiniteLossError
from vaekit.models.classifier import FeatureClassifier, save_classifier
from vaekit.train.trainer import METRICS_FILE, BestState

__all__ = ["train_classifier", "classifier_accuracy"]


def _labelled(data: Any, name: str, input_shape: Sequence[int] | None) -> Dataset:
    dataset = as_dataset(data, name=name)
    if dataset.y is None or dataset.num_classes is None:
        raise DataError(f"{name}: a classifier needs integer class labels, and this data has "
                        f"{'none' if dataset.y is None else 'float condition vectors'}; pass (x, y) with y in 0..K-1 "
                        "(a labelled dataset, or a CSV with --label-column)")
    check_data(dataset.x, input_shape=input_shape, name=name)
    return dataset


@torch.no_grad()
def classifier_accuracy(classifier: FeatureClassifier, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """The share of examples whose largest logit is their label."""
    _, logits = classifier.outputs(x, batch_size=batch_size)
    return float((logits.argmax(1) == y.cpu()).double().mean()) if len(y) else float("nan")


@torch.no_grad()
def _validate(model: FeatureClassifier, val: Dataset, batch_size: int) -> dict[str, float]:
    loss, correct = torch.zeros((), device=model.device), torch.zeros((), device=model.device)
    for start in range(0, len(val), batch_size):
        logits = model(val.x[start : start + batch_size])
        yb = val.y[start : start + batch_size]
        loss += F.cross_entropy(logits, yb, reduction="sum")
        correct += (logits.argmax(1) == yb).sum()
    return {"val/loss": float(loss) / len(val), "val/accuracy": float(correct) / len(val)}


def train_classifier(
    train: Any,
    val: Any = None,
    *,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 2e-3,
    seed: int = 0,
    out_dir: str | Path | None = None,
    quiet: bool = False,
    model: FeatureClassifier | None = None,
    arch: str = "auto",
    channels: Sequence[int] = (16, 32),
    hidden_dims: Sequence[int] = (128,),
    num_classes: int | None = None,
    device: str | torch.device | None = None,
) -> tuple[FeatureClassifier, list[dict[str, Any]]]:
    r"""Train a :class:`~vaekit.models.FeatureClassifier` with Adam on the cross-entropy −log softmax(f(x))_y.

    Arguments:
        train, val: labelled data: an ``(x, y)`` tuple (tensors or arrays, y integer class
            indices) or a labelled ``vaekit.data.Dataset``.
        epochs, batch_size, lr: the optimisation budget (Adam, β = (0.9, 0.999)).
        seed: seeds the initial weights (when ``model`` is None) and the shuffling.
        out_dir: folder for ``model.safetensors`` + ``config.json`` (:func:`save_classifier`,
            written once at the end) and ``metrics.jsonl`` (one line per epoch).
        quiet: no progress bar.
        model: a classifier to train; None builds one from the data's shape and classes
            with ``arch``, ``channels`` and ``hidden_dims``.
        num_classes: K; None takes the largest label in ``train`` (and ``val``) plus one.
        device: "cpu", "cuda", or None for CUDA when available.

    Returns:
        ``(classifier, history)``: the classifier in eval mode (the best epoch on ``val``
        when given, else the last) and one record per epoch (``train/loss``,
        ``train/accuracy``, ``val/loss``, ``val/accuracy``, ``samples_per_s``).

    Example:
        >>> digits = vaekit.data.load_digits("train")  # doctest: +SKIP
        >>> clf, history = train_classifier((digits.x, digits.y), epochs=10, quiet=True)  # doctest: +SKIP
    """
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value}")
    if not lr > 0:
        raise ConfigError(f"lr must be > 0, got {lr}")
    shape = None if model is None else model.input_shape
    train_set = _labelled(train, "train", shape)
    val_set = None if val is None else _labelled(val, "val", train_set.input_shape)
    largest = max(train_set.num_classes, 0 if val_set is None else val_set.num_classes)
    if model is not None:
        num_classes = model.num_classes if num_classes is None else num_classes
        if num_classes != model.num_classes:
            raise ConfigError(f"num_classes={num_classes} but the model given has {model.num_classes} classes")
    num_classes = largest if num_classes is None else int(num_classes)
    if largest > num_classes:
        raise DataError(f"the labels go up to {largest - 1} but the classifier has {num_classes} classes (0..{num_classes - 1}); "
                        "give num_classes covering every label")
    device = resolve_device(device)
    if model is None:
        torch.manual_seed(seed)  # the initial weights
        model = FeatureClassifier(train_set.input_shape, num_classes, arch=arch, channels=channels, hidden_dims=hidden_dims)
    model.to(device).train()
    x, y = train_set.x.to(device), train_set.y.to(device)
    if val_set is not None:
        val_set = Dataset(val_set.x.to(device), val_set.y.to(device), name=val_set.name)
    n = len(train_set)
    batch_size = min(int(batch_size), n)
    steps = math.ceil(n / batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    best, best_accuracy = BestState(model), -1.0
    history: list[dict[str, Any]] = []
    progress = None
    if not quiet:
        from tqdm.auto import tqdm

        progress = tqdm(total=epochs * steps, unit="step", dynamic_ncols=True, desc="training classifier")
    try:
        for epoch in range(epochs):
            t0 = time.perf_counter()
            order = torch.randperm(n, generator=generator).to(device)
            loss_sum, correct = torch.zeros((), device=device), torch.zeros((), device=device)
            for i in range(steps):
                index = order[i * batch_size : (i + 1) * batch_size]
                logits = model(x[index])
                loss = F.cross_entropy(logits, y[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach() * index.shape[0]
                correct += (logits.detach().argmax(1) == y[index]).sum()
                if progress is not None and ((i + 1) % 50 == 0 or i + 1 == steps):
                    progress.update((i % 50) + 1)
                    progress.set_postfix(epoch=f"{epoch + 1}/{epochs}", loss=f"{float(loss_sum) / min(n, (i + 1) * batch_size):.4f}")
            record: dict[str, Any] = {"epoch": epoch + 1, "train/loss": float(loss_sum) / n, "train/accuracy": float(correct) / n}
            if not math.isfinite(record["train/loss"]):
                raise NonFiniteLossError(f"non-finite cross-entropy in epoch {epoch + 1}; lower the learning rate (--lr) "
                                         "or check the data for extreme values")
            record["samples_per_s"] = n / (time.perf_counter() - t0)
            model.eval()
            if val_set is not None:
                record.update(_validate(model, val_set, max(batch_size, 1000)))
                if record["val/accuracy"] > best_accuracy:
                    best_accuracy = record["val/accuracy"]
                    best.save()
            model.train()
            history.append(record)
            if out_dir is not None:
                atomic_write_text(Path(out_dir) / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in history))
            if progress is not None:
                progress.write(f"epoch {epoch + 1}/{epochs}  train loss {record['train/loss']:.4f}  "
                               f"train accuracy {record['train/accuracy']:.4f}"
                               + (f"  val accuracy {record['val/accuracy']:.4f}" if "val/accuracy" in record else "")
                               + f"  {record['samples_per_s']:.0f} samples/s", file=sys.stderr)
    finally:
        if progress is not None:
            progress.close()
    best.restore()
    model.eval()
    if out_dir is not None:
        save_classifier(model, out_dir)
    return model, history
