"""Time to quality: the reference run against ``vaekit train ... --fast``, side by side.

Both runs are the same command, ``vaekit train --config configs/fashion_mnist_vae.yaml``
(MLP VAE 784-512-512-32, dynamically binarised Fashion-MNIST, 60 epochs at batch 128, Adam
1e-3), the second with ``--fast``. They run one after the other in this process's
conditions (same threads); each is then scored like the README's reference row: log p(x)
with K = 1000 importance samples on the 10 000 statically binarised test images (seed 0),
as ``vaekit eval RUN --nll-samples 1000`` does. Reported: each run's wall time (the
training command, and fit's own training + validation time), its test log p(x), and the
ratio of wall times; the validation bound of both runs against wall-clock time is drawn in
one PNG.

    python benchmarks/fast_recipe.py [--out-dir runs/fast-recipe] [--png benchmarks/results/fast_recipe.png]

A run folder that already holds a finished run is scored again without retraining (its
times are read from its ``metrics.jsonl``): delete it to measure again.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "fashion_mnist_vae.yaml"
RUNS = {"reference": [], "fast": ["--fast"]}


def train(out: Path, flags: list[str]) -> float | None:
    """Run the training command into ``out``; its wall time in seconds (None when ``out`` was already finished)."""
    if (out / "metrics.json").exists():
        return None
    command = [sys.executable, "-m", "vaekit", "train", "--config", str(CONFIG), "--out", str(out), "--quiet", *flags]
    t0 = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - t0


def test_log_likelihood(run: Path, num_samples: int) -> tuple[float, float]:
    """Mean test log p(x) (K = num_samples) over the statically binarised test set, and its standard error."""
    import vaekit
    from vaekit.data import load_fashion_mnist, static_binarize

    model = vaekit.load(run)
    x = static_binarize(load_fashion_mnist("test").x, seed=0)
    ll = vaekit.log_likelihood(model, x, num_samples=num_samples)
    return float(ll.mean()), float(ll.std() / len(ll) ** 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", default="runs/fast-recipe")
    parser.add_argument("--nll-samples", type=int, default=1000)
    parser.add_argument("--png", default=str(ROOT / "benchmarks" / "results" / "fast_recipe.png"))
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "fast_recipe.json"))
    args = parser.parse_args()
    out_dir = Path(args.out_dir)
    rows = {}
    for name, flags in RUNS.items():
        run = out_dir / name
        command_seconds = train(run, flags)
        history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        ll, se = test_log_likelihood(run, args.nll_samples)
        settings = __import__("yaml").safe_load((run / "train.yaml").read_text())
        rows[name] = {
            "command": " ".join(["vaekit train --config configs/fashion_mnist_vae.yaml", *flags]),
            "command_seconds": command_seconds,
            "fit_seconds": history[-1]["elapsed_s"],
            "epochs": len(history),
            "best_epoch": max(range(len(history)), key=lambda i: history[i]["val/elbo"]) + 1,
            "test_log_likelihood": ll,
            "standard_error": se,
            "nll_samples": args.nll_samples,
            "curve": [(r["elapsed_s"], r["val/elbo"]) for r in history],
            "fast": bool(settings.get("fast")),
        }
        print(f"{name}: {rows[name]['fit_seconds']:.0f} s, test log p(x) {ll:.2f} ± {se:.2f} nats", flush=True)
    ratio = rows["fast"]["fit_seconds"] / rows["reference"]["fit_seconds"]
    result = {"rows": rows, "time_ratio_fast_over_reference": ratio, "threads": torch.get_num_threads(),
              "fast_reaches_reference": rows["fast"]["test_log_likelihood"] >= rows["reference"]["test_log_likelihood"],
              "torch": torch.__version__}
    print(f"| run | wall time (fit) | epochs | test log p(x), K={args.nll_samples} |\n|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['fit_seconds'] / 60:.1f} min | {row['epochs']} | {row['test_log_likelihood']:.2f} ± "
              f"{row['standard_error']:.2f} |")
    print(f"fast / reference wall time: {ratio:.2f}")
    Path(args.json).write_text(json.dumps(result, indent=2))
    plot(rows, Path(args.png))


def plot(rows: dict, path: Path) -> None:
    from vaekit.viz._figure import new_figure, save_figure

    fig, axes = new_figure(1, 1, figsize=(6.4, 4.2))
    ax = axes.ravel()[0]
    for colour, (name, row) in zip(("C0", "C1"), rows.items()):
        t, elbo = zip(*row["curve"])
        ax.plot([s / 60 for s in t], elbo, color=colour, marker="o", markersize=2.5,
                label=f"{name} ({row['epochs']} epochs): test log p(x) {row['test_log_likelihood']:.2f}")
    ax.set_xlabel("wall-clock time (min)")
    ax.set_ylabel("validation ELBO (nats)")
    low = min(min(e for _, e in row["curve"][2:]) for row in rows.values())
    high = max(max(e for _, e in row["curve"]) for row in rows.values())
    ax.set_ylim(low - 1, high + 1)
    ax.set_title("Fashion-MNIST reference VAE: --fast against the 60-epoch run")
    ax.legend(fontsize=8)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
