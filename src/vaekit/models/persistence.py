"""Saving and loading models: safetensors weights + a JSON config. Nothing is ever unpickled."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from vaekit._device import resolve_device
from vaekit._io import atomic_path, atomic_write_text, read_checked_tensors, tensors_sha256
from vaekit._version import __version__
from vaekit.errors import CheckpointError, ConfigError
from vaekit.models.custom_bodies import PARTS, check_loaded_bodies
from vaekit.models.model import LatentVariableModel

__all__ = ["save_model", "load_model", "read_config", "load_weights", "WEIGHTS_FILE", "CONFIG_FILE"]

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def state_tensors(model: LatentVariableModel) -> dict[str, torch.Tensor]:
    """The model's state as contiguous CPU tensors (safetensors refuses shared storage)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


def save_model(model: LatentVariableModel, directory: str | Path) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``directory``, each atomically.

    A model whose weights hold NaN or inf is refused (loading refuses such files), leaving the
    files already in ``directory`` as they were.
    """
    directory = Path(directory).expanduser()  # "~/runs/vae" is the home folder's, as the data loaders read it
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"cannot save the model to {directory}: it is a file, and a saved model is a folder "
                          "(config.json + model.safetensors); give a folder path")
    tensors = state_tensors(model)
    broken = [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:
        raise CheckpointError(f"cannot save the model to {directory}: its weights hold non-finite values (in {broken[0]}), "
                              "and such a model could not be loaded again; nothing was written — retrain it, or "
                              "restore its last good state before saving")
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / WEIGHTS_FILE) as tmp:
        save_file(tensors, str(tmp), metadata={"vaekit_version": __version__, "sha256": tensors_sha256(tensors)})
    config = {**model.config, "vaekit_version": __version__}
    atomic_write_text(directory / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
    save_attached = getattr(model, "save_attached", None)  # parts fitted after training, kept beside the model (a VQ-VAE's code prior)
    if save_attached is not None:
        save_attached(directory)
    return directory


def read_config(directory: str | Path) -> dict:
    """The JSON config of a saved model, with a clear error when it is missing or damaged."""
    path = Path(directory).expanduser() / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"no saved model in {directory}: {CONFIG_FILE} is missing (train one with `vaekit train` or model.save(dir))")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e}); the file is damaged — retrain or restore it") from None
    if not isinstance(config, dict) or "model" not in config or "input_shape" not in config:
        raise CheckpointError(f"{path} is not a vaekit model config (it lacks 'model' or 'input_shape')")
    return config


def load_weights(model: LatentVariableModel, path: str | Path) -> None:
    """Load safetensors weights into ``model``, refusing damaged or mismatched files.

    A floating tensor keeps the dtype it has in the file (a model saved in float64 or with
    bfloat16 buffers loads bit-identical); any other dtype difference is refused.
    """
    path = Path(path)
    tensors = read_checked_tensors(path, "retrain or restore it")
    mismatch = first_mismatch(model.state_dict(), tensors)
    custom = model.config.get("custom_bodies") or {}
    if mismatch and any(custom.get(part) for part in PARTS):
        given = ", ".join(f"{part}={custom.get(f'{part}_class', 'module')}" for part in PARTS if custom.get(part))
        raise CheckpointError(f"{path} does not fit the modules given to vaekit.load ({given}): {mismatch}; build them as they "
                              "were when the model was saved")
    recast = []  # (model tensor, the file's dtype), applied only once the whole file is known to fit
    for name, value in [*model.named_parameters(), *model.named_buffers()]:
        saved = tensors.get(name)
        if saved is None or saved.dtype == value.dtype or tuple(saved.shape) != tuple(value.shape):
            continue
        if not (saved.is_floating_point() and value.is_floating_point()):
            raise CheckpointError(f"{path} does not match the model in config.json (tensor {name!r} is {saved.dtype} in the "
                                  f"file but {value.dtype} in the model); the files come from different runs")
        recast.append((value, saved.dtype))
    if mismatch is None:
        for value, dtype in recast:
            value.data = value.data.to(dtype)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        first = mismatch or (str(e).splitlines()[0] if str(e) else "")
        raise CheckpointError(f"{path} does not match the model in config.json ({first}); the files come from different runs") from None


def first_mismatch(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> str | None:
    """The first tensor (in the model's order) that ``found`` lacks, has in another shape, or has extra; None if all fit."""
    for name, tensor in expected.items():
        if name not in found:
            return f"the model's tensor {name!r} {tuple(tensor.shape)} is not in the file"
        if tuple(found[name].shape) != tuple(tensor.shape):
            return f"tensor {name!r} is {tuple(found[name].shape)} in the file but {tuple(tensor.shape)} in the model"
    extra = [name for name in found if name not in expected]
    return f"the file's tensor {extra[0]!r} {tuple(found[extra[0]].shape)} is not in the model" if extra else None


def load_model(directory: str | Path, device: str | torch.device = "cpu", **overrides: object) -> LatentVariableModel:
    """Rebuild a saved model from ``config.json`` and load ``model.safetensors``.

    ``overrides`` are preset options given again because JSON cannot hold them (never
    pickled): ``vaekit.load(run, feature_network=module)`` for a ``dfc_vae`` created with an
    ``nn.Module``. They replace the saved options of the same name. A model created with
    custom bodies takes them the same way, ``vaekit.load(run, encoder=module, decoder=module)``
    (see :mod:`vaekit.models.custom_bodies`); without them it is refused with that call.

    Example:
        >>> model = load_model("runs/vae")  # doctest: +SKIP
    """
    from vaekit.models.registry import create

    directory = Path(directory).expanduser()
    config = read_config(directory)
    if not isinstance(config.get("options", {}), dict):
        raise CheckpointError(f"{Path(directory) / CONFIG_FILE}: 'options' must be a mapping, got {config['options']!r}; the file is damaged")
    check_loaded_bodies(directory, config.get("custom_bodies"), overrides)
    options = {**dict(config.get("options", {})), **overrides}
    common = {k: v for k, v in config.items() if k not in ("model", "options", "vaekit_version", "input_shape", "custom_bodies")}
    try:
        model = create(config["model"], input_shape=tuple(config["input_shape"]), **common, **options)
    except (ConfigError, TypeError, ValueError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__  # torch's errors may carry a C++ backtrace
        raise CheckpointError(f"{Path(directory) / CONFIG_FILE} describes a model this vaekit cannot build: {reason}") from None
    load_weights(model, Path(directory) / WEIGHTS_FILE)
    load_attached = getattr(model, "load_attached", None)  # parts fitted after training (a VQ-VAE's code prior)
    if load_attached is not None:
        load_attached(directory)
    return model.to(resolve_device(device)).eval()
