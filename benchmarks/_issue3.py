"""Shared set-up of the application benchmarks (issue 3): data, model training, result files.

Every benchmark trains MLP models on Fashion-MNIST (grey levels in [0, 1], Bernoulli
decoder, i.e. binary cross-entropy for the autoencoders) with ``vaekit.fit`` and the
same budget for every model; the command-line flags set that budget.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

import vaekit
from vaekit.bench.applications import train_model as bench_train_model
from vaekit.data import Dataset, load_fashion_mnist

__all__ = ["RESULTS", "ints", "names", "budget_arguments", "setup", "fashion", "train_model", "write"]

RESULTS = Path(__file__).resolve().parent / "results"


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def budget_arguments(parser: argparse.ArgumentParser, epochs: int = 30) -> None:
    parser.add_argument("--train-size", type=int, default=None, help="training images per model (default: all)")
    parser.add_argument("--test-size", type=int, default=None, help="test images (default: all 10 000)")
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--hidden-dims", type=ints, default=[512, 256])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None, help="folder of the Fashion-MNIST IDX files")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a shared machine more threads spin against each other)")


def setup(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse the flags and apply the thread count."""
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return args


def fashion(args: argparse.Namespace) -> tuple[Dataset, Dataset]:
    train, test = load_fashion_mnist("train", args.data_dir), load_fashion_mnist("test", args.data_dir)
    return train, (test[: args.test_size] if args.test_size else test)


def train_model(name: str, x: torch.Tensor, args: argparse.Namespace, latent_dim: int | None = None,
                likelihood: str = "bernoulli", **options: Any) -> vaekit.LatentVariableModel:
    """``name`` with the benchmark's MLP and budget, trained on ``x`` (the first ``--train-size`` rows).

    The recipe is ``vaekit.bench.applications.train_model``'s, which ``vaekit bench --suite apps`` uses too.
    """
    x = x[: args.train_size] if args.train_size else x
    return bench_train_model(name, x, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                             latent_dim=latent_dim or args.latent_dim, hidden_dims=args.hidden_dims, likelihood=likelihood, **options)


def write(name: str, result: dict[str, Any], started: float) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    result["seconds"] = round(time.perf_counter() - started, 1)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path
