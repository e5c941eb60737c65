"""Test log-likelihood of VAE variants on dynamically binarised Fashion-MNIST (issue 4's table).

Every model has the foundation benchmark's MLP body (784-512-512-32 and back, Bernoulli
likelihood), Adam 1e-3, batch 128, the same epochs, the same 54k/6k train/validation split
(seed 0) with a fresh Bernoulli draw of the training set every epoch; log p(x) is estimated
with K importance samples on the statically binarised test set (seed 0).

    python benchmarks/fashion_mnist_loglik.py --epochs 60 --nll-samples 1000            # the full table
    python benchmarks/fashion_mnist_loglik.py --epochs 5 --test-limit 2000 --models vae iwae_k5

Writes ``benchmarks/results/loglik_<epochs>ep.json`` and prints a Markdown table. Runs are
resumable (``runs/bench/<model>``), so an interrupted table continues where it stopped.

The data protocol and the shared rows are ``vaekit.bench.fashion``'s: ``vaekit bench --suite
fashion-mnist`` runs the same protocol over every preset, with more columns.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import vaekit
from vaekit.bench.fashion import ENTRIES, binarized_fashion_mnist
from vaekit.distributions import FullCovarianceGaussianPosterior

_SUITE = {e.name: (e.preset, dict(e.options)) for e in ENTRIES}  # the rows `vaekit bench --suite fashion-mnist` shares
_ONLY_HERE = {"vae_full_covariance_full_gradient": ("vae", {"posterior": "full_covariance"}), "iwae_k50": ("iwae", {"num_samples": 50})}
MODELS: dict[str, tuple[str, dict]] = {
    name: _ONLY_HERE.get(name) or _SUITE[name]
    for name in ("vae", "vae_full_covariance", "vae_full_covariance_full_gradient", "iwae_k5", "iwae_k50", "miwae_m8_k8",
                 "vae_planar_k4", "vae_radial_k4", "vae_iaf_k2", "auxiliary_vae")
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--nll-samples", type=int, default=1000)
    parser.add_argument("--test-limit", type=int, default=10000)
    parser.add_argument("--runs", default="runs/bench")
    parser.add_argument("--output", help="results JSON (default benchmarks/results/loglik_<epochs>ep.json)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    train, val, _, x_test = binarized_fashion_mnist(test_size=args.test_limit)
    out_file = Path(args.output or f"benchmarks/results/loglik_{args.epochs}ep.json")
    results = json.loads(out_file.read_text()) if out_file.exists() else {}
    for name in args.models:
        preset, options = MODELS[name]
        torch.manual_seed(0)
        model = vaekit.create(preset, input_shape=(1, 28, 28), latent_dim=32, arch="mlp", hidden_dims=(512, 512), **options)
        if name.endswith("_full_gradient"):  # the plain AEVB gradient through L' into the encoder body
            head = FullCovarianceGaussianPosterior(512, 32, detach_correlations=False)
            head.load_state_dict(model.posterior.state_dict())
            model.posterior = head
        t0 = time.perf_counter()
        fit = vaekit.fit(model, train.x, val.x, epochs=args.epochs, batch_size=128, lr=1e-3, binarize_data="dynamic",
                         out_dir=f"{args.runs}/{name}_{args.epochs}ep", quiet=args.quiet, seed=0)
        seconds = time.perf_counter() - t0
        torch.manual_seed(0)
        ll = vaekit.log_likelihood(model, x_test, num_samples=args.nll_samples, progress=not args.quiet)
        metrics = vaekit.evaluate(model, x_test[:2000])
        results[name] = {
            "preset": preset, "options": options, "epochs": args.epochs, "best_epoch": fit.best_epoch,
            "test_log_likelihood": float(ll.mean()), "test_examples": int(x_test.shape[0]),
            "nll_samples": args.nll_samples, "test_elbo": metrics["elbo"], "active_units": metrics["active_units"],
            "train_seconds": seconds,
        }
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(json.dumps(results, indent=2) + "\n")
        print(f"{name}: log p(x) = {float(ll.mean()):.2f} nats", flush=True)

    print(f"\n| model | preset and options | test log p(x) (nats, K={args.nll_samples}) | test ELBO | active units |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        opts = ", ".join(f"{k}={v}" for k, v in r["options"].items())
        print(f"| {name} | `{r['preset']}` {opts} | {r['test_log_likelihood']:.2f} | {r['test_elbo']:.2f} | {r['active_units']} |")


if __name__ == "__main__":
    main()
