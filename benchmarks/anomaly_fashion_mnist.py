"""Anomaly detection on Fashion-MNIST with one class held out as the anomaly, each class in turn.

For every model and class c: train on the training images of the nine other classes,
fit an ``AnomalyDetector`` threshold (95 % quantile of their scores), then score the
test set with class c as the anomalies. Reported: AUROC and average precision per held-out
class, and the mean AUROC per model and score. Scores: the reconstruction error for every
model; also −ELBO (10 samples) for models with a likelihood bound (``vae``). The protocol is
``vaekit.bench.applications.anomaly_holdout``, which ``vaekit bench --suite apps`` uses too.

Full budget (all 54 000 normal images, 30 epochs, MLP 512-256):

    python benchmarks/anomaly_fashion_mnist.py

Reduced budget used for the recorded numbers (2 shared CPU cores):

    nice -n 10 python benchmarks/anomaly_fashion_mnist.py --train-size 10000 --epochs 5 --hidden-dims 256,128
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _issue3 import RESULTS, budget_arguments, setup, fashion, names, train_model, write
from vaekit.bench.applications import CLASSES, anomaly_holdout, anomaly_score_kinds
from vaekit.viz import plot_lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    budget_arguments(parser)
    parser.add_argument("--models", type=names, default=["ae", "denoising_ae", "vae"])
    parser.add_argument("--classes", type=lambda t: [int(v) for v in t.split(",")], default=list(range(10)))
    args = setup(parser)
    started = time.perf_counter()
    train, test = fashion(args)
    runs: dict[str, dict[str, list[dict]]] = {}
    for name in args.models:
        for c in args.classes:
            normal = train.x[train.y != c]
            model = train_model(name, normal, args)
            fit_x = normal[: args.train_size] if args.train_size else normal
            for row in anomaly_holdout(model, fit_x, test, c, anomaly_score_kinds(model), seed=args.seed):
                score = row.pop("score")
                runs.setdefault(f"{name}/{score}", {}).setdefault("per_class", []).append(row)
                print(f"{name:<13} {score:<15} held out {c} ({CLASSES[c]:<11}) AUROC {row['auroc']:.4f}  AP {row['average_precision']:.4f}", flush=True)
    summary = {key: float(np.mean([r["auroc"] for r in v["per_class"]])) for key, v in runs.items()}
    plot_lines(args.classes, {k: [r["auroc"] for r in v["per_class"]] for k, v in runs.items()},
               RESULTS / "anomaly_fashion_mnist.png", xlabel="held-out (anomalous) class", ylabel="AUROC",
               title="Fashion-MNIST, one class held out")
    path = write("anomaly_fashion_mnist", {"budget": vars(args), "mean_auroc": summary, "runs": runs}, started)
    print("\nmean AUROC over held-out classes")
    for key, value in summary.items():
        print(f"  {key:<30} {value:.4f}")
    print(f"results: {path}")


if __name__ == "__main__":
    main()
