"""``vaekit disentanglement RUN``: the five disentanglement metrics of a run trained on the sprites.

The run must have been trained on ``--data sprites[:SIZE[:N]]`` (its ``train.yaml`` says so):
only there are the factors of every image known. Its codes are posterior means; the
metrics render the images they need at the run's image size. JSON on stdout and in
``RUN/disentanglement.json`` (where ``vaekit report`` finds it), progress on stderr unless
``--quiet``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Callable

from vaekit.cli._common import STATE_FILE, _count, _run_settings, _say

__all__ = ["add_commands"]


def cmd_disentanglement(args: argparse.Namespace) -> int:
    import torch

    import vaekit
    from vaekit._io import atomic_write_text
    from vaekit.data.sprites import Sprites, is_sprites_source, parse_sprites_source
    from vaekit.errors import ConfigError
    from vaekit.eval import disentanglement_scores
    from vaekit.eval.disentanglement import PAPER_SAMPLE_SIZES, QUICK_SAMPLE_SIZES
    from vaekit.viz.report import DISENTANGLEMENT_FILE

    if not Path(args.run).is_dir():
        raise ConfigError(f"no run folder {args.run}; give the --out folder of `vaekit train MODEL --data sprites`")
    if not (Path(args.run) / STATE_FILE).is_file():
        raise ConfigError(f"{args.run} has no {STATE_FILE}, so its training data is unknown; `vaekit disentanglement` needs "
                          "a run written by `vaekit train MODEL --data sprites`")
    data = str(_run_settings(args.run)["data"])
    if not is_sprites_source(data):
        raise ConfigError(f"{args.run} was trained on {data}; `vaekit disentanglement` needs a run trained on the sprites, "
                          "whose factors are known: `vaekit train MODEL --data sprites`")
    sprites = Sprites(parse_sprites_source(data)["size"])
    model = vaekit.load(args.run, device=args.device)
    if tuple(model.input_shape) != sprites.input_shape:
        raise ConfigError(f"{args.run} takes inputs of shape {tuple(model.input_shape)}, not the {sprites.input_shape} sprites "
                          f"its train.yaml names ({data})")
    if model.conditional:
        raise ConfigError(f"{args.run} is a conditional model: its codes depend on a label too; the disentanglement "
                          "metrics take unconditional codes")
    sizes = QUICK_SAMPLE_SIZES if args.quick else PAPER_SAMPLE_SIZES
    started = time.perf_counter()
    torch.manual_seed(args.seed)
    scores = disentanglement_scores(model, sprites, **sizes, dci_predictor=args.dci_predictor, seed=args.seed,
                                    progress=lambda message: _say(args, f"disentanglement: {message}"))
    result = {"run": str(args.run), "model": model.config.get("model"), "data": data, "latent_dim": model.latent_dim,
              "quick": bool(args.quick), "seed": args.seed, "dci_predictor": args.dci_predictor, "sample_sizes": sizes,
              **{k: round(v, 4) for k, v in scores.items()}, "seconds": round(time.perf_counter() - started, 1)}
    text = json.dumps(result, indent=2)
    atomic_write_text(Path(args.run) / DISENTANGLEMENT_FILE, text + "\n")
    print(text)
    return 0


def add_commands(sub: Any) -> dict[str, Callable[..., int]]:
    """Add ``disentanglement``; return its handler."""
    p = sub.add_parser("disentanglement",
                       help="β-VAE, FactorVAE, MIG, SAP and DCI scores of a run trained on the sprites (JSON; also RUN/disentanglement.json)")
    p.add_argument("run", help="run folder written by `vaekit train MODEL --data sprites`")
    p.add_argument("--quick", action="store_true",
                   help="smaller samples (3 000 codes, 500 classifier points): seconds instead of minutes, noisier scores")
    p.add_argument("--dci-predictor", choices=["lasso", "gbt"], default="lasso",
                   help="DCI's per-factor predictor: lasso (default, fast) or gradient-boosted trees as disentanglement_lib (slow)")
    p.add_argument("--seed", type=_count, default=0, help="seeds every sample the metrics draw")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return {"disentanglement": cmd_disentanglement}
