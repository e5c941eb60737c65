"""Disentanglement on the procedural sprites: five models × seeds, five metrics (mean ± sd), traversals.

The models, body, budget and metrics are described (once) in ``vaekit.bench.disentanglement``:
five models (``vae``, ``beta_vae`` β = 4 and with a capacity, ``beta_tc_vae``, ``dip_vae``),
an MLP 512-256-10, 40 epochs of 20 000 32×32 sprites, posterior means as codes.

Full budget (15 models, two at a time, one thread each; about 30–35 minutes on 2 idle
CPU cores, from the measured CPU time: 3 600–3 900 training images/s per core, about 35 s
of metrics per model):

    nice -n 10 python benchmarks/disentanglement_sprites.py

Smoke run (2 seeds, 2 000 images, 2 epochs, small metric samples; 1–2 minutes):

    python benchmarks/disentanglement_sprites.py --quick

The models, their training and the metrics are ``vaekit.bench.disentanglement``'s, which
``vaekit bench --suite sprites`` runs one after the other in resumable run folders; this
script runs them in parallel processes.

Writes ``benchmarks/results/disentanglement_sprites.{json,md}`` (``_quick`` with --quick)
and one traversal PNG per model (seed 0): one row per latent dimension, most active first,
the code of one test image with that dimension swept over [−2.5, 2.5].
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

from vaekit.bench.disentanglement import METRIC_SIZES, QUICK_METRIC_SIZES, configurations, summary_table, train_and_score

RESULTS = Path(__file__).resolve().parent / "results"


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 seeds, 2 000 images, 2 epochs, small metric samples")
    parser.add_argument("--models", type=lambda t: [v.strip() for v in t.split(",") if v.strip()], default=None,
                        help="comma-separated subset of " + ", ".join(configurations(1)))
    parser.add_argument("--seeds", type=ints, default=None, help="default 0,1,2 (quick: 0,1)")
    parser.add_argument("--size", type=int, default=32, help="sprite images are SIZE×SIZE")
    parser.add_argument("--train-size", type=int, default=None, help="training images (default 20 000; quick: 2 000)")
    parser.add_argument("--epochs", type=int, default=None, help="default 40 (quick: 2)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--latent-dim", type=int, default=10)
    parser.add_argument("--hidden-dims", type=ints, default=[512, 256])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per job (default 1)")
    parser.add_argument("--jobs", type=int, default=2, help="models trained at once, one process each (default 2: one per core)")
    args = parser.parse_args()
    args.seeds = args.seeds or ([0, 1] if args.quick else [0, 1, 2])
    args.train_size = args.train_size or (2_000 if args.quick else 20_000)
    args.epochs = args.epochs or (2 if args.quick else 40)
    args.metric_sizes = QUICK_METRIC_SIZES if args.quick else METRIC_SIZES
    return args


def job(name: str, preset: str, options: dict[str, Any], seed: int, args: argparse.Namespace, picture: Path | None) -> dict[str, Any]:
    """One model in a worker process: ``vaekit.bench.disentanglement.train_and_score`` with this script's budget."""
    torch.set_num_threads(args.threads)
    return train_and_score(name, preset, options, seed, size=args.size, train_size=args.train_size, epochs=args.epochs,
                           batch_size=args.batch_size, lr=args.lr, latent_dim=args.latent_dim, hidden_dims=args.hidden_dims,
                           metric_sizes=args.metric_sizes, picture=picture)


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    total_steps = args.epochs * math.ceil(args.train_size / args.batch_size)
    configs = configurations(total_steps)
    names = args.models or list(configs)
    unknown = sorted(set(names) - set(configs))
    if unknown:
        raise SystemExit(f"unknown models {unknown}; choose from {', '.join(configs)}")
    suffix = "_quick" if args.quick else ""
    RESULTS.mkdir(parents=True, exist_ok=True)
    jobs = [(name, *configs[name], seed, args,
             RESULTS / f"disentanglement_sprites{suffix}_{name}.png" if seed == args.seeds[0] else None)
            for name in names for seed in args.seeds]
    runs: list[dict[str, Any]] = []
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        for run in pool.map(job, *zip(*jobs)):
            runs.append(run)
            print(f"{run['model']:<18} seed {run['seed']}  MIG {run['mig']:.3f}  FactorVAE {run['factorvae_score']:.3f}  "
                  f"β-VAE {run['betavae_score']:.3f}  SAP {run['sap']:.3f}  DCI {run['dci_disentanglement']:.3f}/"
                  f"{run['dci_completeness']:.3f}/{run['dci_informativeness']:.3f}  active {run['active_units']}  "
                  f"({run['train_seconds']:.0f} s training, {run['metric_seconds']:.0f} s metrics)", flush=True)
    table = summary_table(runs, names)
    budget = {k: v for k, v in vars(args).items()}
    header = (f"Sprites {args.size}×{args.size}, {args.train_size} training images, MLP {'-'.join(map(str, args.hidden_dims))}, "
              f"D = {args.latent_dim}, {args.epochs} epochs, batch {args.batch_size}, Adam {args.lr:g}, seeds {args.seeds}; "
              f"mean ± sd over seeds.\n\n")
    (RESULTS / f"disentanglement_sprites{suffix}.md").write_text(header + table + "\n")
    out = RESULTS / f"disentanglement_sprites{suffix}.json"
    out.write_text(json.dumps({"budget": budget, "runs": runs, "table": table,
                               "seconds": round(time.perf_counter() - started, 1)}, indent=2) + "\n")
    print("\n" + table)
    print(f"\nresults: {out} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
