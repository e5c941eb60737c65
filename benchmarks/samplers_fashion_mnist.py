"""Sample quality on Fashion-MNIST from the prior, a GMM and a flow fitted to the codes: vae, beta_vae, ae.

Each model (same MLP and budget, Bernoulli decoder on grey levels) is trained on the
first ``--train-size`` training images; then, on the codes of those images, a
``GaussianMixtureSampler`` (``--components``, full covariance) and a ``FlowSampler``
(MAF, early stopping on 10 % of the codes) are fitted. Every sampler draws ``--num-samples``
images (decoder means), scored against as many test images by
``vaekit.eval.sample_quality`` in the feature space of vaekit's Fashion-MNIST classifier
(``--classifier``, a ``vaekit train-classifier`` run): Fréchet distance (FD, lower is
better), precision and recall (k-NN manifolds, higher is better). ``ae`` has no prior, so
it has no prior row. A reference row scores held-out *training* images against the same
test images (what a perfect sampler would get at this sample size). The average log q(z)
of the test images' codes under each density is reported too.

Full budget (60 000 images, 30 epochs, MLP 512-256, D = 16, 10 000 samples):

    python benchmarks/samplers_fashion_mnist.py

Reduced budget (2 shared CPU cores):

    nice -n 10 python benchmarks/samplers_fashion_mnist.py --train-size 10000 --epochs 10 --hidden-dims 256,128 --num-samples 5000

Writes ``benchmarks/results/samplers_fashion_mnist.{json,md}``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

from _issue3 import RESULTS, budget_arguments, fashion, names, setup, train_model, write
import vaekit
from vaekit.samplers import FlowSampler, GaussianMixtureSampler, PriorSampler

ROOT = Path(__file__).resolve().parent


def quality_functions() -> tuple[Any, Any]:
    """``vaekit.eval.sample_quality`` and ``vaekit.load_classifier``, with a clear message when they are missing."""
    import vaekit.eval

    quality = getattr(vaekit.eval, "sample_quality", None)
    load_classifier = getattr(vaekit, "load_classifier", None)
    if load_classifier is None:
        from vaekit.models.classifier import load_classifier
    if quality is None:
        raise SystemExit("this vaekit has no vaekit.eval.sample_quality: the benchmark needs it to score samples")
    return quality, load_classifier


def samplers_for(model: vaekit.LatentVariableModel, x: torch.Tensor, args: argparse.Namespace) -> dict[str, Any]:
    """The prior (when the model has one), a GMM and a flow fitted to the codes of ``x``; fitting seconds per sampler."""
    fitted: dict[str, Any] = {}
    if model.prior_module is not None:
        fitted["prior"] = (PriorSampler(model), 0.0)
    for kind, sampler in (("gmm", GaussianMixtureSampler(args.components, seed=args.seed)),
                          ("flow", FlowSampler(args.flow, epochs=args.flow_epochs, seed=args.seed))):
        t0 = time.perf_counter()
        fitted[kind] = (sampler.fit(model, x), time.perf_counter() - t0)
    return fitted


def markdown(rows: list[dict[str, Any]], reference: dict[str, Any], args: argparse.Namespace, n_train: int) -> str:
    lines = [
        f"Fashion-MNIST, MLP {'-'.join(map(str, args.hidden_dims))}, D = {args.latent_dim}, {n_train} training images, "
        f"{args.epochs} epochs; {args.num_samples} samples against {args.num_samples} test images "
        f"(classifier features: {args.classifier}).",
        "",
        "| model | sampler | FD ↓ | precision ↑ | recall ↑ | test codes' log q(z) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['sampler']} | {r['fd']:.2f} | {r['precision']:.3f} | {r['recall']:.3f} | "
                     f"{r['test_code_log_likelihood']:.2f} |")
    lines.append(f"| training images (reference) | — | {reference['fd']:.2f} | {reference['precision']:.3f} | "
                 f"{reference['recall']:.3f} | — |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    budget_arguments(parser)
    parser.add_argument("--models", type=names, default=["vae", "beta_vae", "ae"])
    parser.add_argument("--beta", type=float, default=4.0, help="β of beta_vae")
    parser.add_argument("--components", type=int, default=10, help="GMM components")
    parser.add_argument("--flow", choices=["maf", "nsf"], default="maf")
    parser.add_argument("--flow-epochs", type=int, default=100, help="flow epochs at most (early stopping)")
    parser.add_argument("--num-samples", type=int, default=10_000, help="samples per sampler, and test images they are scored against")
    parser.add_argument("--classifier", default=str(ROOT / "models" / "classifier_fmnist"),
                        help="feature classifier run folder (vaekit train-classifier)")
    parser.add_argument("--out", default="samplers_fashion_mnist", help="name of the result files in benchmarks/results/")
    args = setup(parser)
    quality, load_classifier = quality_functions()
    classifier = load_classifier(args.classifier)
    started = time.perf_counter()
    train, test = fashion(args)
    n_train = args.train_size or len(train)
    fit = train[:n_train]
    reference_images = test.x[: args.num_samples]
    rows: list[dict[str, Any]] = []
    for name in args.models:
        t0 = time.perf_counter()
        options = {"beta": args.beta} if name == "beta_vae" else {}
        model = train_model(name, fit.x, args, **options)
        for kind, (sampler, seconds) in samplers_for(model, fit.x, args).items():
            images = sampler.sample(args.num_samples, seed=args.seed)
            scores = quality(images, reference_images, classifier)
            row = {"model": name + (f" (β={args.beta:g})" if options else ""), "sampler": kind,
                   **{k: float(scores[k]) for k in ("fd", "precision", "recall")},
                   "test_code_log_likelihood": sampler.score(test.x), "fit_seconds": round(seconds, 1)}
            rows.append(row)
            print(f"{row['model']:<16} {kind:<6} FD {row['fd']:8.2f}  precision {row['precision']:.3f}  recall {row['recall']:.3f}  "
                  f"log q(z_test) {row['test_code_log_likelihood']:8.2f}", flush=True)
        print(f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
    held_out = train.x[n_train : n_train + args.num_samples] if n_train + args.num_samples <= len(train) else train.x[-args.num_samples :]
    reference = {k: float(v) for k, v in quality(held_out, reference_images, classifier).items() if k in ("fd", "precision", "recall")}
    table = markdown(rows, reference, args, n_train)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.md").write_text(table)
    path = write(args.out, {"budget": vars(args), "num_train": n_train, "rows": rows, "reference_training_images": reference}, started)
    print(f"results: {path} and {RESULTS / (args.out + '.md')}")


if __name__ == "__main__":
    main()
