"""``vaekit export``: a run's decoder (or encoder) as an ONNX or TorchScript file, for use outside Python and vaekit.

The file maps tensors to the parameters of the part's distribution (the decoder: the
likelihood's, e.g. Bernoulli logits; the encoder: the posterior's, e.g. μ and log σ); see
:mod:`vaekit.models.export`. The command prints the file's inputs and outputs as JSON.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Callable

from vaekit.cli._common import check_output_file

__all__ = ["add_commands"]


def cmd_export(args: argparse.Namespace) -> int:
    """Check -o and the format's package, load the run, export the part, print its signature."""
    from vaekit.models.export import SUFFIXES, export, require_onnx
    from vaekit.samplers.base import load_run_model

    output = check_output_file(args.output or f"{args.part}{SUFFIXES[args.format][0]}", "-o", SUFFIXES[args.format])
    if args.format == "onnx":
        require_onnx()
    model = load_run_model(args.run)  # vaekit.load, refusing a feature classifier's folder (it has no decoder)
    info = export(model, output, format=args.format, part=args.part)
    print(json.dumps({"run": str(args.run), **info}, indent=2, ensure_ascii=False))
    return 0


def add_commands(sub: Any) -> dict[str, Callable[..., int]]:
    """Add ``export``; return its handler."""
    p = sub.add_parser("export", help="write a run's decoder (or encoder) as an ONNX or TorchScript file")
    p.add_argument("run", help="run folder written by `vaekit train` (or model.save)")
    p.add_argument("--format", choices=["onnx", "torchscript"], default="onnx",
                   help="onnx (.onnx; needs the onnx package) or torchscript (.pt, for torch.jit.load); default onnx")
    p.add_argument("--part", choices=["decoder", "encoder"], default="decoder",
                   help="decoder: z -> the likelihood's parameters (default); encoder: x -> the posterior's parameters")
    p.add_argument("-o", "--output", help="file to write (.onnx or .pt, as --format; default PART.onnx / PART.pt)")
    return {"export": cmd_export}
