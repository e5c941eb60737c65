"""The user's own networks as the encoder and decoder bodies: ``vaekit.create(..., encoder=module, decoder=module)``.

vaekit keeps the heads (the posterior q(z|x) and the likelihood p(x|z)) and takes any
``nn.Module`` for the bodies between them, under this contract:

* **encoder**: x of shape (B, *input_shape) → features h of shape (B, F), any F ≥ 1 (found
  by running it once). The posterior head reads h (with the conditioning vector appended
  for conditional models): for ``posterior="diagonal"`` a linear map to (μ, log σ).
* **decoder**: a code of shape (B, D + K) → the raw parameters the likelihood head reads,
  shape (B, P·C, H, W) for images (C, H, W) and (B, P·M) for vectors (M,), or the same
  values flat, (B, P·C·H·W). D is ``latent_dim`` (N·K for the one-hot codes of
  ``categorical_vae``, D + N·K for ``joint_vae``), K the condition size (0 unless the model
  is conditional; the condition follows z). P and the values, per likelihood:

  ============  ===  =====================================================================
  likelihood     P   decoder output
  ============  ===  =====================================================================
  bernoulli      1   logits ℓ: p(x_j = 1) = sigmoid(ℓ_j); no final sigmoid
  gaussian       1   the mean μ; σ is one scalar kept by the head (learned, or the fixed
                     ``likelihood_scale``), not a decoder output
  logistic       2   channels 0…C−1 the locations μ, channels C…2C−1 the log-scales log s
                     (clamped at ≥ −7); for vectors the first M values μ, the next M log s
  ============  ===  =====================================================================

Both are checked when the model is created, on a batch of two zeros in eval mode (no
gradients, no change to batch-norm statistics), so a shape mismatch is one line from
``vaekit.create`` instead of an error deep inside training. The modules are wrapped in
:class:`CustomBody` (their weights sit under ``encoder.body.`` / ``decoder.body.`` in the
model's state) and are never pickled: ``model.save`` writes their weights into
``model.safetensors`` and records in ``config.json`` only that the bodies are custom (with
their class names); ``vaekit.load(run, encoder=module, decoder=module)`` rebuilds the model
around modules built again by the user's code.

Presets that build bodies of their own cannot take custom ones and say so:
see :data:`FIXED_BODIES`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from vaekit.errors import CheckpointError, ConfigError

__all__ = [
    "CustomBody", "FIXED_BODIES", "PARTS", "DECODER_OUTPUTS", "check_body_module", "check_encoder", "check_decoder",
    "decoder_output_shape", "custom_bodies_record", "refuse_fixed_bodies", "check_bodies_used", "check_loaded_bodies",
]

PARTS = ("encoder", "decoder")

DECODER_OUTPUTS: dict[str, str] = {
    "bernoulli": "the Bernoulli logits",
    "gaussian": "the Gaussian mean (σ is the head's own scalar)",
    "logistic": "the logistic locations μ, then the log-scales log s",
}
"""What a decoder's output holds, per likelihood (named in the shape-mismatch message)."""

FIXED_BODIES: dict[str, str] = {
    "linear_ae": "its bodies are single linear maps (that is what makes it span PCA's subspace); use 'ae' with your modules",
    "vq_vae": "its bodies are convolutional grids of code vectors (ConvGridEncoder/ConvGridDecoder) that the codebook "
              "quantises position by position, not a feature vector",
    "auxiliary_vae": "it builds a second encoder body for p(a|x,z) and extra networks for q(a|x) and q(z|a,x) from the "
                     "shared options, which one encoder= module cannot stand for",
}
"""Presets that refuse ``encoder=`` / ``decoder=``, with the reason given to the user."""


class CustomBody(nn.Module):
    """A user's network used as a body, with the feature size vaekit's heads need.

    Arguments:
        body: the user's ``nn.Module``; ``forward`` is ``body(x)``.
        out_features: the size of its output per example (F for an encoder).

    Example:
        >>> body = CustomBody(nn.Sequential(nn.Flatten(), nn.Linear(784, 32)), 32)
        >>> body(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 32])
    """

    def __init__(self, body: nn.Module, out_features: int):
        super().__init__()
        self.body = body
        self.out_features = int(out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def check_body_module(value: Any, part: str) -> nn.Module | None:
    """``value`` if it is an ``nn.Module`` (or None); else a ConfigError naming ``part``."""
    if value is None or isinstance(value, nn.Module):
        return value
    raise ConfigError(f"{part}= takes an nn.Module (your {part} network, from Python), got {type(value).__name__} {value!r:.60}; "
                      f"vaekit's own {part} is chosen by the shared options arch, hidden_dims and channels (--arch, --hidden-dims, "
                      "--channels)")


def _shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _dry_run(module: nn.Module, shape: tuple[int, ...]) -> Any:
    """``module`` applied to zeros of ``shape`` on its own device and dtype, in eval mode, without gradients.

    Every submodule's training flag is restored afterwards; nothing random is drawn.
    """
    reference = next(module.parameters(), None)
    if reference is None:
        reference = next(module.buffers(), None)
    floating = reference is not None and reference.is_floating_point()
    x = torch.zeros(shape, device=reference.device if reference is not None else None,
                    dtype=reference.dtype if floating else torch.get_default_dtype())
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with torch.no_grad():
            return module(x)
    finally:
        for m, training in modes:
            m.training = training


def check_encoder(module: nn.Module, input_shape: Sequence[int], batch: int = 2) -> int:
    """F, the feature size of ``module`` as an encoder of data shaped ``input_shape``; a ConfigError if it breaks the contract.

    Runs the module once on ``batch`` zeros of shape (batch, *input_shape).
    """
    name, shape = type(module).__name__, (batch, *input_shape)
    contract = f"a custom encoder maps x (B, {', '.join(map(str, input_shape))}) to features (B, F)"
    try:
        h = _dry_run(module, shape)
    except Exception as e:  # noqa: BLE001 — whatever the user's network raises, the fix is the same
        raise ConfigError(f"encoder={name} fails on a batch of shape {_shape(shape)} (input_shape {_shape(input_shape)}): "
                          f"{_first_line(e)}; {contract}") from None
    if not isinstance(h, torch.Tensor) or not h.is_floating_point():
        what = f"a {h.dtype} tensor" if isinstance(h, torch.Tensor) else type(h).__name__
        raise ConfigError(f"encoder={name} returns {what} for a batch of shape {_shape(shape)}; {contract} of floating point")
    if h.dim() != 2 or h.shape[0] != batch or h.shape[1] < 1:
        raise ConfigError(f"encoder={name} maps x of shape {_shape(shape)} to {_shape(h.shape)}, but {contract}; "
                          "flatten its output (end it with nn.Flatten())")
    return int(h.shape[1])


def decoder_output_shape(input_shape: Sequence[int], num_parameters: int) -> tuple[int, ...]:
    """The per-example shape a decoder must return: (P·C, H, W) for images, (P·M) for vectors."""
    return (num_parameters * int(input_shape[0]), *(int(s) for s in input_shape[1:]))


def check_decoder(module: nn.Module, in_features: int, input_shape: Sequence[int], likelihood: str, num_parameters: int,
                  batch: int = 2) -> None:
    """A ConfigError unless ``module`` maps codes (B, in_features) to the raw parameters of ``likelihood``.

    Runs the module once on ``batch`` zeros of shape (batch, in_features). Accepted outputs:
    (B, P·C, H, W) for images and (B, P·M) for vectors, or the same values flat.
    """
    name, shape = type(module).__name__, (batch, int(in_features))
    per_example = decoder_output_shape(input_shape, num_parameters)
    expected, flat = (batch, *per_example), (batch, num_parameters * int(torch.Size(input_shape).numel()))

    def needs(b: str) -> str:
        return (f"({b}, {', '.join(map(str, per_example))}), {DECODER_OUTPUTS.get(likelihood, 'its raw parameters')}"
                + (f" (or flat ({b}, {flat[1]}))" if len(input_shape) > 1 else ""))

    try:
        out = _dry_run(module, shape)
    except Exception as e:  # noqa: BLE001 — whatever the user's network raises, the fix is the same
        raise ConfigError(f"decoder={name} fails on a code of shape {_shape(shape)}: {_first_line(e)}; for this model a custom "
                          f"decoder maps (B, {in_features}) to {needs('B')} for likelihood {likelihood!r}") from None
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        what = f"a {out.dtype} tensor" if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"decoder={name} returns {what} for a code of shape {_shape(shape)}; likelihood {likelihood!r} needs a "
                          f"floating-point tensor {needs(str(batch))}")
    if tuple(out.shape) not in (expected, flat):
        raise ConfigError(f"decoder={name} maps a code of shape {_shape(shape)} to {_shape(out.shape)}, but likelihood "
                          f"{likelihood!r} on input_shape {_shape(input_shape)} needs {needs(str(batch))}")


def custom_bodies_record(encoder: nn.Module | None, decoder: nn.Module | None) -> dict[str, Any]:
    """What ``config.json`` keeps of custom bodies: which parts are custom and their class names, never the modules."""
    record: dict[str, Any] = {part: module is not None for part, module in zip(PARTS, (encoder, decoder))}
    for part, module in zip(PARTS, (encoder, decoder)):
        if module is not None:
            record[f"{part}_class"] = type(module).__name__
    return record


def refuse_fixed_bodies(model: str, given: Sequence[str]) -> None:
    """A ConfigError when the preset ``model`` builds its own bodies and ``given`` names custom ones."""
    if given and model in FIXED_BODIES:
        flags = " and ".join(f"{part}=" for part in given)
        raise ConfigError(f"{model} cannot take {flags}: {FIXED_BODIES[model]}")


def check_bodies_used(model_name: str, model: nn.Module, bodies: dict[str, nn.Module]) -> None:
    """A ConfigError unless each custom body is used exactly once in the built ``model``.

    Catches a preset that builds its bodies without ``ModelSpec.encoder()`` / ``decoder()``
    (the module would be silently ignored) or calls them twice (one module, two roles).
    """
    for part, body in bodies.items():
        uses = sum(1 for _, m in model.named_modules(remove_duplicate=False) if m is body)
        if uses != 1:
            why = "builds its own bodies" if uses == 0 else f"would use the one module in {uses} places"
            raise ConfigError(f"{model_name} cannot take {part}=: it {why}; custom bodies work with the presets built on the "
                              "shared bodies (vae, beta_vae, iwae, ae, ... see vaekit.models.custom_bodies)")


def _load_call(directory: str | Path, record: dict[str, Any]) -> str:
    parts = [f"{part}={record.get(f'{part}_class', 'Module')}(...)" for part in PARTS if record.get(part)]
    return f"vaekit.load({str(directory)!r}, {', '.join(parts)})"


def check_loaded_bodies(directory: str | Path, record: Any, given: dict[str, Any]) -> None:
    """A CheckpointError unless ``given`` (the ``encoder=`` / ``decoder=`` of ``vaekit.load``) matches the saved ``record``.

    A run saved with custom bodies needs its modules again (the command line cannot rebuild
    them); a run with vaekit's own bodies takes none.
    """
    record = record if isinstance(record, dict) else {}
    missing = [part for part in PARTS if record.get(part) and given.get(part) is None]
    if missing:
        classes = " and ".join(f"{part} ({record.get(f'{part}_class', 'an nn.Module')})" for part in missing)
        raise CheckpointError(f"{directory} was saved with a custom {classes}, and nn.Modules are never saved: load it from "
                              f"Python with the modules, {_load_call(directory, record)} (the command line cannot rebuild them)")
    unexpected = [part for part in PARTS if given.get(part) is not None and not record.get(part)]
    if unexpected:
        raise CheckpointError(f"{directory} was saved with vaekit's own {unexpected[0]} body, not a custom one; "
                              f"load it without {unexpected[0]}=")
