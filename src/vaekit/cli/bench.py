"""``vaekit bench``: one command for the README's tables (``vaekit.bench``).

``vaekit bench --suite fashion-mnist|sprites|apps [--quick] [--models a,b,...]`` trains every
model of the suite with the same body and budget, each in its own run folder
``OUT/<model>/seed<k>`` (a re-run resumes unfinished models and skips measured ones), and
writes ``OUT/<suite>.md`` (the table, under a header naming this command, the budget and the
machine) and ``OUT/<suite>.json``; the table is also printed on stdout. Progress: one line per
model start and finish on stderr, with the elapsed time, and training's progress bars unless
``--quiet``. ``--quick`` is the smoke-test budget (a few minutes on two CPU cores).
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
from typing import Any, Callable

from vaekit.cli._common import _int_at_least, _positive_int, check_out_dir

__all__ = ["add_commands", "cmd_bench"]

_FLAGS = ("models", "out", "epochs", "train_size", "test_size", "seeds", "nll_samples", "classifier", "data_dir", "threads")


def _names(text: str) -> list[str]:
    names = [v.strip() for v in str(text).split(",") if v.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"must be comma-separated model names like vae,ae, got {text!r}")
    return names


def command_line(args: argparse.Namespace) -> str:
    """The command as it was given (flags in a fixed order), for the table's header."""
    parts = ["vaekit", "bench", "--suite", args.suite] + (["--quick"] if args.quick else [])
    for key in _FLAGS:
        value = getattr(args, key)
        if value is not None:
            parts += [f"--{key.replace('_', '-')}", ",".join(value) if isinstance(value, list) else str(value)]
    return " ".join(shlex.quote(p) for p in parts)


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from vaekit.bench import make_plan, run_suite
    from vaekit.bench.suites import SUITES
    from vaekit.errors import ConfigError

    spec = SUITES.get(args.suite)  # an unknown suite is make_plan's to name
    if spec is not None and args.nll_samples is not None and args.suite != "fashion-mnist":
        raise ConfigError(f"--nll-samples sets K of log p(x) in the fashion-mnist suite; suite {args.suite} reports none, drop it")
    if spec is not None and args.data_dir is not None and not spec.needs_fashion_mnist:
        raise ConfigError(f"--data-dir is where Fashion-MNIST is, and suite {args.suite} does not read it; drop --data-dir")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.out is not None:
        check_out_dir(args.out)
    plan = make_plan(args.suite, quick=args.quick, models=args.models, out=args.out, epochs=args.epochs, train_size=args.train_size,
                     test_size=args.test_size, seeds=args.seeds, nll_samples=args.nll_samples, classifier=args.classifier,
                     data_dir=args.data_dir)
    check_out_dir(plan.out)

    def say(message: str) -> None:
        print(f"vaekit bench: {message}", file=sys.stderr, flush=True)

    with contextlib.redirect_stdout(sys.stderr):  # training's epoch lines: stdout holds the table alone
        summary = run_suite(plan, command=command_line(args), say=say, quiet=args.quiet)
    print(summary["table"], end="")
    for name, message in summary["failed"].items():
        print(f"vaekit bench: error: {name} failed ({message}); the other models' rows are in the table", file=sys.stderr)
    return 1 if summary["failed"] else 0


def add_commands(sub: Any) -> dict[str, Callable[..., int]]:
    p = sub.add_parser("bench", help="train and measure every model of a suite; write the Markdown table and JSON",
                       description="Train every model of a benchmark suite with one body and budget (resumable run folders), "
                                   "measure them, and write OUT/<suite>.md and OUT/<suite>.json.")
    p.add_argument("--suite", required=True, help="fashion-mnist, sprites or apps")
    p.add_argument("--quick", action="store_true", help="smoke-test budget and model subset: a few minutes on 2 CPU cores")
    p.add_argument("--models", type=_names, help="comma-separated entries of the suite (default: all; --quick: its subset)")
    p.add_argument("--out", help="output folder (default runs/bench/<suite>); run folders OUT/<model>/seed<k>")
    p.add_argument("--epochs", type=_positive_int, help="training epochs of every model (default: the suite's)")
    p.add_argument("--train-size", type=_int_at_least(2, "an integer ≥ 2"), help="training images (default: the suite's)")
    p.add_argument("--test-size", type=_int_at_least(2, "an integer ≥ 2"), help="test images measured on (default: the suite's)")
    p.add_argument("--seeds", type=_positive_int, help="models per entry, seeds 0..N-1 (default: 1; sprites 3)")
    p.add_argument("--nll-samples", type=_positive_int, help="importance samples K for log p(x) (fashion-mnist; default 1000, quick 20)")
    p.add_argument("--classifier", help="feature classifier run folder for sample quality (fashion-mnist; default "
                                        "benchmarks/models/classifier_fmnist, else one trained into OUT/classifier)")
    p.add_argument("--data-dir", help="folder with the Fashion-MNIST IDX files")
    p.add_argument("--threads", type=_positive_int, help="torch CPU threads (default: torch's)")
    p.add_argument("--quiet", action="store_true", help="no progress bars (the per-model lines stay)")
    return {"bench": cmd_bench}
