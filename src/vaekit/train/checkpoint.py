"""Training checkpoints: model, optimiser, RNG and trainer state in ONE safetensors file.

Tensors (weights, Adam moments, RNG states) are safetensors entries; everything else (the
epoch, the step, the history, the optimiser's hyper-parameters) is JSON in the file's
metadata. One file, written to a temporary name and renamed, so a kill -9 leaves either
the previous checkpoint or the new one, never a mix. Nothing is ever unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from vaekit._io import atomic_path, check_tensors_sha256, tensors_sha256
from vaekit.errors import CheckpointError
from vaekit.train.averaging import WeightAverage

__all__ = ["save_checkpoint", "load_checkpoint", "read_trainer_state", "check_resumable", "config_differences", "CHECKPOINT_FILE"]

CHECKPOINT_FILE = "checkpoint.safetensors"


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, entries in state["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{name}"] = value.detach().cpu().contiguous().clone()
            else:
                scalars[f"{index}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def save_checkpoint(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, trainer_state: dict[str, Any],
                    generator: torch.Generator, average: WeightAverage | None = None) -> None:
    """Write the full training state atomically to ``path`` (with ``average``, the averaged weights too)."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    if average is not None:
        tensors.update({f"average.{k}": v.detach().cpu().contiguous().clone() for k, v in average.state_dict().items()})
    opt_tensors, opt_meta = _optimizer_tensors(optimizer)
    tensors.update(opt_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.generator"] = generator.get_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    metadata = {"trainer": json.dumps(trainer_state), "optimizer": json.dumps(opt_meta), "format": "vaekit-checkpoint-1",
                "sha256": tensors_sha256(tensors)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def read_trainer_state(path: str | Path) -> dict[str, Any]:
    """The trainer state (epoch, step, history, model config) of a checkpoint, without loading tensors."""
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        state = json.loads(metadata["trainer"])
    except (SafetensorError, OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"checkpoint {path} is unreadable ({e}); it is truncated or tampered with — delete it to start over") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} has damaged metadata (its trainer state is not a JSON object) — delete it to start over")
    return state


def check_resumable(path: str | Path, model: Any, fix: str = "start over with resume=False, or choose another out_dir") -> dict[str, Any]:
    """The trainer state of checkpoint ``path``, or a CheckpointError naming each option that differs from ``model``'s.

    ``fix`` is the advice that ends the message (the CLI gives its flags, the API its arguments).
    """
    state = read_trainer_state(path)
    saved_config = state.get("model_config", {})
    differences = config_differences(saved_config, model.config) if saved_config != model.config else []
    if differences:
        raise CheckpointError(
            f"{Path(path).parent} holds a run of {saved_config.get('model')!r} with other settings "
            f"({'; '.join(differences[:6])}{'; …' if len(differences) > 6 else ''}); {fix}"
        )
    return state


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``"name: saved value in the run → value now"`` for every option that differs (preset options flattened)."""

    def flat(config: dict[str, Any]) -> dict[str, Any]:
        items = {k: v for k, v in config.items() if k not in ("options", "vaekit_version")}
        items.update(config.get("options") or {})
        return items

    a, b = flat(saved), flat(current)
    # an option added after the run was saved (shared or the preset's own) counts as its default there,
    # so runs stay resumable across versions
    for key, default in {**_spec_defaults(), **_preset_defaults(saved.get("model"))}.items():
        if key not in a and key in b:
            a[key] = list(default) if isinstance(default, tuple) else default
    return [f"{k}: {a.get(k, 'unset')!r} in the run, {b.get(k, 'unset')!r} now" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _spec_defaults() -> dict[str, Any]:
    """The defaults of :class:`~vaekit.models.spec.ModelSpec`'s options, as a saved config writes them."""
    import dataclasses

    from vaekit.models.spec import ModelSpec

    return {f.name: f.default for f in dataclasses.fields(ModelSpec)
            if f.default is not dataclasses.MISSING and f.metadata.get("option", True) and f.name != "extra"}


def _preset_defaults(name: Any) -> dict[str, Any]:
    """The defaults of preset ``name``'s own options (none for an unknown or custom model)."""
    from vaekit.models.registry import available_models, get_preset

    return dict(get_preset(name).defaults) if isinstance(name, str) and name in available_models() else {}


def load_checkpoint(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, generator: torch.Generator,
                    average: WeightAverage | None = None) -> dict[str, Any]:
    """Restore model, optimiser and RNG states from ``path``; return the trainer state.

    ``average`` gets the averaged weights the checkpoint holds; one saved without them (a run
    trained without ``ema``) starts the average from the restored weights."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} is unreadable ({e}); it is truncated or tampered with — delete it to start over") from None
    if metadata.get("format") != "vaekit-checkpoint-1":
        raise CheckpointError(f"{path} is not a vaekit training checkpoint")
    check_tensors_sha256(Path(path), metadata.get("sha256"), tensors, "delete it to start over")
    try:
        trainer_state = json.loads(metadata["trainer"])
        opt_meta = json.loads(metadata["optimizer"])
        if not (isinstance(trainer_state, dict) and isinstance(opt_meta, dict) and isinstance(opt_meta.get("scalars"), dict)
                and isinstance(opt_meta.get("param_groups"), list)):
            raise ValueError("its trainer or optimiser state is not what vaekit writes")
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} has damaged metadata ({e}) — delete it to start over") from None
    device = next(model.parameters()).device
    model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(model_state, strict=True)
        average_state = {k[len("average."):]: v for k, v in tensors.items() if k.startswith("average.")}
        if average is not None and average_state:
            average.load_state_dict(average_state)
        elif average is not None:
            average.reset()
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {path} does not fit this model ({str(e).splitlines()[0]})") from None
    try:  # the metadata is outside the digest, and a file without one may lack entries or hold them in another form
        state: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith("optimizer."):
                _, index, name = key.split(".", 2)
                state.setdefault(int(index), {})[name] = value.to(device) if name != "step" else value
        for key, value in opt_meta["scalars"].items():
            index, name = key.split(".", 1)
            state.setdefault(int(index), {})[name] = value
        optimizer.load_state_dict({"state": state, "param_groups": opt_meta["param_groups"]})
        torch.set_rng_state(tensors["rng.torch"])
        generator.set_state(tensors["rng.generator"])
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint {path} holds a damaged optimiser or RNG state ({type(e).__name__}: "
                              f"{(str(e) or repr(e)).splitlines()[0]}) — delete it to start over") from None
    if torch.cuda.is_available():
        cuda_states = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
    return trainer_state
