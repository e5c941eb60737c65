"""Exporting a model's decoder or encoder for use outside Python and vaekit: ONNX or TorchScript.

An exported part is a graph from tensors to tensors, the distributions left out: it
returns the *parameters* of the distribution vaekit's part returns, so any runtime can
rebuild it (or take its mean) without vaekit.

* ``part="decoder"``: inputs ``z`` (B, D) (and ``y`` for conditional models: (B,) int64
  labels, or (B, K) conditioning vectors) → the parameters of p(x|z), each (B, *input_shape):

  ============  =====================  ===========================================================
  likelihood    outputs                meaning
  ============  =====================  ===========================================================
  bernoulli     ``logits``             p(x_j = 1) = sigmoid(logits_j); the decoder mean is sigmoid(logits)
  gaussian      ``loc``, ``scale``     N(x_j; loc_j, scale_j²); the mean is ``loc``, ``scale`` one σ everywhere
  logistic      ``loc``, ``scale``     discretised logistic on 256 levels of [0, 1], s = exp(max(log s, −7));
                                       its mean is not ``loc`` (the tails are folded into 0 and 1)
  ============  =====================  ===========================================================

  D is ``model.latent_dim`` (the flat D·h·w code of a VQ-VAE, the N·K one-hot values of a
  categorical VAE).
* ``part="encoder"``: inputs ``x`` (B, *input_shape) (and ``y``) → the parameters of q(z|x):
  ``loc`` and ``log_scale`` (B, D) for the diagonal Gaussian (log σ after the
  ``logvar_clamp``), ``loc`` (B, D) and ``scale_tril`` (B, D, D) for the full-covariance
  Gaussian, ``code`` (B, D) for the point mass of deterministic autoencoders (and the
  quantised code of a VQ-VAE). Flow, mixture and categorical posteriors have no fixed set of
  parameters to return and are refused. The full-covariance encoder exports to TorchScript
  only (ONNX has no operator for the ``tril_indices`` that assembles L).

The batch axis is dynamic. ONNX files are written by ``torch.onnx.export`` with the
TorchScript-based exporter (``dynamo=False``), which needs only the ``onnx`` package
(the torch.export-based one would add ``onnxscript``); they carry their description in the
model's metadata (``vaekit_part``, ``vaekit_outputs``, …). TorchScript files
(``torch.jit.trace``) carry it as the extra file ``vaekit.json`` and reload with
``torch.jit.load``. Before writing, the traced graph is run on a batch of another size and
compared with the model, and an ONNX graph is exported from two batch sizes and must come
out the same, so a part whose control flow depends on the data, or whose graph fixes the
batch size (the TorchScript-based exporter does after an ``nn.Unflatten``), is refused
instead of exported wrong.

References:
    ONNX: Open Neural Network Exchange, https://onnx.ai (operator sets and file format).
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import sys
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn
from torch.distributions import Bernoulli, Distribution, Independent, MultivariateNormal, Normal

from vaekit._io import atomic_path
from vaekit._version import __version__
from vaekit.distributions.discretized_logistic import DiscretizedLogistic
from vaekit.distributions.point_mass import PointMass
from vaekit.errors import ConfigError
from vaekit.models.model import LatentVariableModel

__all__ = ["export", "FORMATS", "PARTS", "SUFFIXES", "likelihood_parameters", "posterior_parameters", "part_signature", "require_onnx"]

FORMATS = ("onnx", "torchscript")
PARTS = ("decoder", "encoder")
SUFFIXES: dict[str, tuple[str, ...]] = {"onnx": (".onnx",), "torchscript": (".pt",)}
"""File suffixes each format is written under."""

ONNX_INSTALL = "pip install onnx"

_MEANINGS = {
    ("decoder", "logits"): "Bernoulli logits: p(x=1) = sigmoid(logits), the decoder mean",
    ("decoder", "loc", "gaussian"): "mean of the Gaussian p(x|z)",
    ("decoder", "scale", "gaussian"): "σ of the Gaussian p(x|z) (one value, learned or fixed)",
    ("decoder", "loc", "logistic"): "location μ of the discretised logistic p(x|z) (not its mean)",
    ("decoder", "scale", "logistic"): "scale s of the discretised logistic p(x|z)",
    ("encoder", "loc"): "mean μ of q(z|x)",
    ("encoder", "log_scale"): "log σ of the diagonal Gaussian q(z|x)",
    ("encoder", "scale_tril"): "lower-triangular L of q(z|x) = N(loc, L Lᵀ)",
    ("encoder", "code"): "the code z (a point mass: deterministic encoder)",
}


def likelihood_parameters(px: Distribution) -> dict[str, torch.Tensor]:
    """The named parameters of p(x|z) that the exported decoder returns (see the module docstring)."""
    base = px.base_dist if isinstance(px, Independent) else px
    if isinstance(base, Bernoulli):
        return {"logits": base.logits}
    if isinstance(base, (Normal, DiscretizedLogistic)):
        return {"loc": base.loc, "scale": base.scale}
    raise ConfigError(f"its decoder gives p(x|z) as a {type(base).__name__}, whose parameters export does not know; "
                      "it exports the bernoulli, gaussian and logistic likelihoods")


def posterior_parameters(q: Distribution) -> dict[str, torch.Tensor]:
    """The named parameters of q(z|x) that the exported encoder returns (see the module docstring)."""
    if isinstance(q, PointMass):
        return {"code": q.loc}
    if isinstance(q, Independent) and isinstance(q.base_dist, Normal):
        return {"loc": q.base_dist.loc, "log_scale": q.base_dist.scale.log()}
    if isinstance(q, MultivariateNormal):
        return {"loc": q.loc, "scale_tril": q.scale_tril}
    raise ConfigError(f"its encoder gives q(z|x) as a {type(q).__name__} (a flow, mixture or categorical posterior), which has "
                      "no fixed set of parameters to export; export the decoder (part \"decoder\", --part decoder), or the encoder "
                      "of a model with posterior diagonal or full_covariance, or of a deterministic autoencoder")


class _PartGraph(nn.Module):
    """The decoder or encoder of ``model`` as a function of tensors: (z or x[, y]) → parameter tensors."""

    def __init__(self, model: LatentVariableModel, part: str):
        super().__init__()
        self.model, self.part = model, part

    def forward(self, inputs: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        return tuple(self.named_outputs(inputs, y).values())

    def named_outputs(self, inputs: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if self.part == "decoder":
            return likelihood_parameters(self.model.decode(inputs, y))
        return posterior_parameters(self.model.encode(inputs, y))


def _example_inputs(model: LatentVariableModel, part: str, batch: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Inputs of ``batch`` rows for tracing and checking: z ~ N(0, I) or x ~ U(0, 1), and y when the model is conditional."""
    g = torch.Generator().manual_seed(seed)
    shape = (batch, model.latent_dim) if part == "decoder" else (batch, *model.input_shape)
    first = torch.randn(shape, generator=g) if part == "decoder" else torch.rand(shape, generator=g)
    inputs = [first.to(model.device, model._dtype)]
    if model.num_classes:
        inputs.append(torch.randint(0, model.num_classes, (batch,), generator=g).to(model.device))
    elif model.condition_dim:
        inputs.append(torch.randn(batch, model.condition_dim, generator=g).to(model.device, model._dtype))
    return tuple(inputs)


def part_signature(model: LatentVariableModel, part: str = "decoder") -> dict[str, Any]:
    """Inputs and outputs of the exported ``part``: names, shapes per example and meanings (a ConfigError if unsupported)."""
    _check_part(part)
    graph = _PartGraph(model, part)
    try:
        with _eval_mode(model), torch.no_grad():
            outputs = graph.named_outputs(*_example_inputs(model, part, 2, seed=0))
    except ConfigError as e:
        options = model.config.get("options") or {}
        posterior = f", posterior {options['posterior']!r}" if part == "encoder" and "posterior" in options else ""
        raise ConfigError(f"cannot export the {part} of this {model.config.get('model', 'model')}{posterior}: {e}") from None
    first = ("z", [model.latent_dim], "latent code") if part == "decoder" else ("x", list(model.input_shape), "data")
    inputs = {first[0]: {"shape": ["batch", *first[1]], "meaning": first[2]}}
    if model.num_classes:
        inputs["y"] = {"shape": ["batch"], "dtype": "int64", "meaning": f"class labels 0..{model.num_classes - 1}"}
    elif model.condition_dim:
        inputs["y"] = {"shape": ["batch", model.condition_dim], "meaning": "conditioning vector"}
    likelihood = model.config.get("likelihood")

    def meaning(name: str) -> str:
        return _MEANINGS.get((part, name, likelihood)) or _MEANINGS[(part, name)]

    return {
        "model": model.config.get("model"),
        "part": part,
        "likelihood": likelihood if part == "decoder" else None,
        "inputs": inputs,
        "outputs": {name: {"shape": ["batch", *t.shape[1:]], "meaning": meaning(name)} for name, t in outputs.items()},
    }


def require_onnx() -> None:
    """A ConfigError with the install command unless the ``onnx`` package (which ``torch.onnx.export`` writes with) is installed."""
    if importlib.util.find_spec("onnx") is None:
        raise ConfigError(f"exporting to ONNX needs the onnx package, which is not installed: {ONNX_INSTALL} "
                          "(and onnxruntime to run the file); or export with format torchscript")


def _check_part(part: str) -> None:
    if part not in PARTS:
        raise ConfigError(f"part must be one of {', '.join(PARTS)}, got {part!r}")


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode within the block, every submodule's flag restored afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


@contextmanager
def _quiet_tracing() -> Iterator[None]:
    """Silence torch's notices about its own exporters (the TorchScript-based ONNX exporter and
    ``torch.jit`` are deprecated in favour of torch.export) and the tracer's notes on vaekit's
    input checks (shape comparisons that are constant for a given model); the graph is checked
    numerically instead."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=r".*legacy TorchScript-based ONNX export.*")
        yield


def _check_trace(graph: _PartGraph, traced: nn.Module, model: LatentVariableModel, part: str) -> None:
    """Refuse a trace that does not reproduce the model on a batch of another size."""
    inputs = _example_inputs(model, part, 3, seed=1)
    with torch.no_grad():
        expected, got = graph(*inputs), traced(*inputs)
    for name, a, b in zip(graph.named_outputs(*inputs), expected, got):
        if a.shape != b.shape or not torch.allclose(a, b, rtol=1e-5, atol=1e-5):
            raise ConfigError(f"the traced {part} does not reproduce the model on another batch (output {name!r}): its forward "
                              "depends on the batch size or on the data through Python control flow, which a trace cannot record; "
                              "make the body's forward a fixed sequence of tensor operations")


def export(model: LatentVariableModel, path: str | Path, format: str = "onnx", part: str = "decoder") -> dict[str, Any]:
    """Write the ``part`` ("decoder" or "encoder") of ``model`` to ``path`` as ONNX or TorchScript.

    Returns the part's signature (:func:`part_signature`) with ``path``, ``format`` and, for
    ONNX, ``opset``. The file is written atomically; nothing is written when a check fails.

    Arguments:
        model: a vaekit model (``vaekit.create`` or ``vaekit.load``); it is left in the mode it was in.
        path: the file to write: ``.onnx`` for ONNX, ``.pt`` for TorchScript.
        format: "onnx" (needs the ``onnx`` package) or "torchscript".
        part: "decoder" (z → parameters of p(x|z)) or "encoder" (x → parameters of q(z|x)).

    Example:
        >>> model = vaekit.create("vae", input_shape=(1, 28, 28), latent_dim=8)  # doctest: +SKIP
        >>> export(model, "decoder.onnx")["outputs"]["logits"]["shape"]  # doctest: +SKIP
        ['batch', 1, 28, 28]
    """
    if format not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    _check_part(part)
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES[format]:
        raise ConfigError(f"{path}: a {format} file is written under a name ending in {' or '.join(SUFFIXES[format])}")
    if format == "onnx":
        require_onnx()
    signature = part_signature(model, part)  # refuses unsupported posteriors and likelihoods before any tracing
    graph = _PartGraph(model, part)
    example = _example_inputs(model, part, 2, seed=0)
    input_names, output_names = list(signature["inputs"]), list(signature["outputs"])
    with _eval_mode(model), _quiet_tracing(), torch.no_grad():
        try:
            traced = torch.jit.trace(graph, example, check_trace=False)
        except Exception as e:  # noqa: BLE001 — a body the tracer cannot follow: one line, not its traceback
            raise ConfigError(f"the {part} cannot be traced ({_first_line(e)}); its forward must be a function of tensors") from None
        _check_trace(graph, traced, model, part)
        if format == "torchscript":
            buffer = io.BytesIO()
            torch.jit.save(traced, buffer, _extra_files={"vaekit.json": json.dumps({**signature, "vaekit_version": __version__})})
            data = buffer.getvalue()
        else:
            other = _example_inputs(model, part, 3, seed=1)
            data, signature["opset"] = _onnx_bytes(graph, (example, other), input_names, output_names, signature)
    with atomic_path(path) as tmp:  # only now, every check passed
        tmp.write_bytes(data)
    return {**signature, "path": str(path), "format": format}


def _onnx_bytes(graph: nn.Module, examples: tuple[tuple[torch.Tensor, ...], ...], input_names: list[str],
                output_names: list[str], signature: dict[str, Any]) -> tuple[bytes, int]:
    """``graph`` as an ONNX file's bytes, with a dynamic batch axis and vaekit's metadata, and its opset.

    The graph is exported once per example batch (of different sizes) and the graphs must be
    identical: torch's TorchScript-based exporter can fix the batch size as a constant (after
    an ``nn.Unflatten``, for one), which would only show when the file is run on another batch.
    """
    import onnx

    axes = {name: {0: "batch"} for name in [*input_names, *output_names]}
    protos = []
    for example in examples:
        buffer = io.BytesIO()
        try:
            with _onnx_log_held_back() as kept:
                torch.onnx.export(graph, example, buffer, dynamo=False, input_names=input_names, output_names=output_names,
                                  dynamic_axes=axes)
        except torch.onnx.OnnxExporterError as e:
            raise ConfigError(f"ONNX cannot express the {signature['part']} of this model ({_first_line(e)}); "
                              "export it with format torchscript (--format torchscript)") from None
        if kept and kept[0]:
            sys.stderr.write(kept[0])
        protos.append(onnx.load_from_string(buffer.getvalue()))
    if any(p.graph.SerializeToString() != protos[0].graph.SerializeToString() for p in protos[1:]):
        raise ConfigError(f"the ONNX exporter fixed the batch size of the {signature['part']} as a constant (an operation in it "
                          "records its input's shape, e.g. nn.Unflatten), so the file would fail on other batch sizes; reshape "
                          "with -1 for the batch (x.view(-1, C, H, W)), or export it with format torchscript (--format torchscript)")
    proto = protos[0]
    metadata = {"vaekit_version": __version__, "vaekit_model": str(signature["model"]), "vaekit_part": signature["part"],
                "vaekit_likelihood": str(signature["likelihood"]), "vaekit_inputs": json.dumps(signature["inputs"]),
                "vaekit_outputs": json.dumps(signature["outputs"])}
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "vaekit"
    return proto.SerializeToString(), int(next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0))


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


@contextmanager
def _onnx_log_held_back() -> Iterator[list[str]]:
    """Hold back the ONNX exporter's log within the block: the yielded list receives it on exit.

    torch's TorchScript-based ONNX exporter prints its whole IR graph to standard output when
    an operator is unsupported (its log switch tests a function object, so it is always on);
    vaekit reports that failure in one line instead. The log is sent to the C++ standard error
    (torch's default stream, stdout, is restored after), file descriptor 2 is caught in a
    temporary file, and on success the caller writes out whatever was held back, so nothing
    else is lost.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(2)
    kept: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        torch._C._jit_set_onnx_log_output_stream("stderr")
        try:
            yield kept
        finally:
            torch._C._jit_set_onnx_log_output_stream("stdout")
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept.append(sink.read().decode(errors="replace"))
