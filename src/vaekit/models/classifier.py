r"""The feature classifier: a small network trained by vaekit whose penultimate layer is a feature space.

Sample-quality scores (``vaekit.eval.sample_quality``: Fréchet distance, KID, precision and
recall, density and coverage) and the DFC-VAE's perceptual loss need a network that maps
images to meaningful features. FID uses Inception-v3 (Heusel et al. 2017), whose weights
cannot be downloaded here, so vaekit trains its own on the labelled data: a small CNN for
images, an MLP for vectors, trained with a fixed seed. Its weights' SHA-256
(:func:`classifier_sha256`) is saved with it and reported with every score, so a score
names the exact feature network it was computed in.

Files: ``model.safetensors`` (weights, with their digest in the metadata) and
``config.json`` (``"kind": "classifier"``, the shape options, ``weights_sha256``), both
written atomically; nothing is unpickled.

References:
    GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium
    (Heusel, Ramsauer, Unterthiner, Nessler & Hochreiter, NeurIPS 2017), arXiv:1706.08500.
    Deep Feature Consistent Variational Autoencoder (Hou, Shen, Sun & Qiu, WACV 2017),
    arXiv:1610.00291.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import torch
from safetensors.torch import save_file
from torch import nn

from vaekit._device import resolve_device
from vaekit._io import atomic_path, atomic_write_text, tensors_sha256
from vaekit._version import __version__
from vaekit.errors import CheckpointError, ConfigError, DataError
from vaekit.models.persistence import CONFIG_FILE, WEIGHTS_FILE, load_weights, state_tensors

__all__ = ["FeatureClassifier", "save_classifier", "load_classifier", "classifier_sha256", "CLASSIFIER_KIND", "MIN_CONV_SIZE"]

CLASSIFIER_KIND = "classifier"
"""The ``kind`` recorded in a classifier's ``config.json`` (model runs have a ``model`` name instead)."""

MIN_CONV_SIZE = 8
"""Images at least this many pixels high and wide get the CNN under ``arch="auto"``; smaller ones the MLP."""

_FIX = "train one with `vaekit train-classifier --data DATA --out DIR`"


class FeatureClassifier(nn.Module):
    r"""A small classifier: hidden blocks, then a linear head to class logits.

    ``arch="conv"`` (images): per entry of ``channels`` a block 3×3 convolution (padding 1) →
    ReLU → 2×2 max-pooling, which halves height and width; then flatten. Both archs then
    have per entry of ``hidden_dims`` a block Linear → ReLU, and a linear head to
    ``num_classes`` logits. The output of the last hidden block is the feature vector,
    F = ``hidden_dims[-1]`` values (:meth:`features`); every block's output is returned by
    :meth:`feature_maps`. No dropout or batch normalisation: train and eval modes compute
    the same function, so features never depend on the mode.

    Arguments:
        input_shape: the shape of one example, (C, H, W) or (M,).
        num_classes: the number of classes (≥ 2).
        arch: ``"conv"``, ``"mlp"`` (flattens the input), or ``"auto"``: conv for images of
            at least 8×8 (:data:`MIN_CONV_SIZE`), mlp otherwise.
        channels: output channels of the convolution blocks (conv only).
        hidden_dims: sizes of the fully connected blocks; the last one is F.

    Example:
        >>> net = FeatureClassifier((1, 28, 28), 10)
        >>> x = torch.rand(4, 1, 28, 28)
        >>> net(x).shape, net.features(x).shape, [tuple(h.shape[1:]) for h in net.feature_maps(x)]
        (torch.Size([4, 10]), torch.Size([4, 128]), [(16, 14, 14), (32, 7, 7), (128,)])
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        *,
        arch: str = "auto",
        channels: Sequence[int] = (16, 32),
        hidden_dims: Sequence[int] = (128,),
    ):
        super().__init__()
        input_shape = tuple(int(d) for d in input_shape)
        channels, hidden_dims = [int(c) for c in channels], [int(h) for h in hidden_dims]
        if not input_shape or any(d < 1 for d in input_shape):
            raise ConfigError(f"input_shape must be (C, H, W) or (M,) with positive sizes, got {input_shape}")
        if int(num_classes) != num_classes or num_classes < 2:
            raise ConfigError(f"num_classes must be an integer ≥ 2, got {num_classes}")
        if not hidden_dims or any(h < 1 for h in hidden_dims):
            raise ConfigError(f"hidden_dims must be one or more positive sizes (the last is the feature size), got {hidden_dims}")
        arch = _resolve_arch(arch, input_shape, channels)
        blocks: list[nn.Module] = []
        width = math.prod(input_shape)
        if arch == "conv":
            c, h, w = input_shape
            for a, b in zip([c, *channels[:-1]], channels):
                blocks.append(nn.Sequential(nn.Conv2d(a, b, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)))
                h, w = h // 2, w // 2
            width = channels[-1] * h * w
        for i, size in enumerate(hidden_dims):
            layers: list[nn.Module] = [nn.Flatten()] if i == 0 else []
            blocks.append(nn.Sequential(*layers, nn.Linear(width, size), nn.ReLU()))
            width = size
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(width, int(num_classes))
        self.input_shape, self.num_classes, self.arch = input_shape, int(num_classes), arch
        self.channels = channels if arch == "conv" else []
        self.hidden_dims = hidden_dims
        self.num_features = hidden_dims[-1]  # the attribute torchmetrics reads from a custom feature network

    @property
    def config(self) -> dict[str, Any]:
        """What rebuilds this network: ``FeatureClassifier(**{k: v for k, v in config.items() if k != "kind"})``."""
        return {"kind": CLASSIFIER_KIND, "input_shape": list(self.input_shape), "num_classes": self.num_classes,
                "arch": self.arch, "channels": list(self.channels), "hidden_dims": list(self.hidden_dims)}

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def check_input(self, x: torch.Tensor) -> None:
        if x.dim() != len(self.input_shape) + 1 or tuple(x.shape[1:]) != self.input_shape:
            raise DataError(
                f"input has shape {tuple(x.shape)} but the classifier expects (batch, {', '.join(map(str, self.input_shape))}); "
                "use a classifier trained on data of this shape (`vaekit train-classifier --data ...`)"
            )

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of every hidden block, in order: (B, C_i, H_i, W_i) for convolutions, (B, h_j) after."""
        self.check_input(x)
        maps = []
        h = x.to(self.head.weight.dtype)
        for block in self.blocks:
            h = block(h)
            maps.append(h)
        return maps

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate layer, (B, F): the feature space of the sample-quality scores."""
        return self.feature_maps(x)[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, (B, num_classes)."""
        return self.head(self.features(x))

    @torch.no_grad()
    def outputs(self, x: torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
        """(features (N, F), logits (N, K)) of a whole set, in batches on the network's device, returned on the CPU."""
        self.check_input(x)
        feats, logits = [], []
        for start in range(0, x.shape[0], batch_size):
            f = self.features(x[start : start + batch_size].to(self.device))
            feats.append(f.cpu())
            logits.append(self.head(f).cpu())
        if not feats:
            return torch.zeros(0, self.num_features), torch.zeros(0, self.num_classes)
        return torch.cat(feats), torch.cat(logits)

    def extra_repr(self) -> str:
        return f"arch={self.arch!r}, input_shape={self.input_shape}, num_classes={self.num_classes}, features={self.num_features}"


def _resolve_arch(arch: str, input_shape: tuple[int, ...], channels: list[int]) -> str:
    if arch not in ("auto", "conv", "mlp"):
        raise ConfigError(f'arch must be "auto", "conv" or "mlp", got {arch!r}')
    is_image = len(input_shape) == 3
    if arch == "auto":
        arch = "conv" if is_image and min(input_shape[1:]) >= MIN_CONV_SIZE else "mlp"
    if arch == "conv":
        if not is_image:
            raise ConfigError(f'arch="conv" needs images (C, H, W), got input_shape {input_shape}; use arch="mlp"')
        if not channels or any(c < 1 for c in channels):
            raise ConfigError(f"channels must be one or more positive sizes for the conv classifier, got {channels}")
        if min(input_shape[1:]) < 2 ** len(channels):
            raise ConfigError(f"{len(channels)} pooling blocks shrink a {input_shape[1]}×{input_shape[2]} image below 1×1; "
                              "give fewer channels entries")
    return arch


def classifier_sha256(model: FeatureClassifier) -> str:
    """SHA-256 of the classifier's weights (names, dtypes, shapes, bytes): the digest saved with them.

    Two classifiers give the same digest exactly when their weights are bitwise equal, so a
    score that reports it names the feature network it was computed in.
    """
    return tensors_sha256(state_tensors(model))


def save_classifier(model: FeatureClassifier, directory: str | Path) -> Path:
    """Write ``model.safetensors`` and ``config.json`` (with ``weights_sha256``) into ``directory``, each atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = state_tensors(model)
    digest = tensors_sha256(tensors)
    with atomic_path(directory / WEIGHTS_FILE) as tmp:
        save_file(tensors, str(tmp), metadata={"vaekit_version": __version__, "sha256": digest})
    config = {**model.config, "weights_sha256": digest, "vaekit_version": __version__}
    atomic_write_text(directory / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
    return directory


def read_classifier_config(directory: str | Path) -> dict[str, Any]:
    """The ``config.json`` of a saved classifier; a clear CheckpointError when it is missing, damaged or a model run's."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"no feature classifier in {directory}: {CONFIG_FILE} is missing ({_FIX})")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e}); the file is damaged — retrain or restore it") from None
    if not isinstance(config, dict) or config.get("kind") != CLASSIFIER_KIND:
        what = f"a {config['model']!r} model run" if isinstance(config, dict) and "model" in config else "not a classifier config"
        raise CheckpointError(f"{directory} holds {what}, not a feature classifier; give a folder written by "
                              f"`vaekit train-classifier` ({_FIX})")
    return config


def load_classifier(directory: str | Path, device: str | torch.device | None = None) -> FeatureClassifier:
    """Rebuild a saved classifier from ``config.json`` and load its weights, checking their SHA-256.

    The digest in the safetensors metadata must match the tensors (damage inside the file is
    caught) and the one recorded in ``config.json`` (the two files come from one save).

    Arguments:
        directory: a folder written by :func:`save_classifier` or ``vaekit train-classifier``.
        device: "cpu", "cuda", or None for CUDA when available.

    Example:
        >>> clf = load_classifier("benchmarks/models/classifier_fmnist")  # doctest: +SKIP
        >>> clf.features(x).shape  # doctest: +SKIP
        torch.Size([64, 128])
    """
    config = read_classifier_config(directory)
    options = {k: v for k, v in config.items() if k not in ("kind", "weights_sha256", "vaekit_version")}
    try:
        model = FeatureClassifier(**options)
    except (ConfigError, TypeError, ValueError) as e:
        raise CheckpointError(f"{Path(directory) / CONFIG_FILE} describes a classifier this vaekit cannot build: {e}") from None
    load_weights(model, Path(directory) / WEIGHTS_FILE)
    recorded, actual = config.get("weights_sha256"), classifier_sha256(model)
    if recorded is not None and recorded != actual:
        raise CheckpointError(f"{Path(directory) / CONFIG_FILE} records weights {recorded[:12]}… but {WEIGHTS_FILE} holds "
                              f"{actual[:12]}…; the files come from different saves — retrain or restore them")
    return model.to(resolve_device(device)).eval()
