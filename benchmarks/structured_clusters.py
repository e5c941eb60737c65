"""Clusters of the structured VAE (GMM-SVAE, K = 10) on the 8×8 digits and Fashion-MNIST, against k-means and a GMM on VAE codes.

For each data set every method is fitted on the same training images (no labels) and
assigns each test image to one of K = 10 clusters, scored against the test labels by
normalised mutual information (``sklearn.metrics.normalized_mutual_info_score``, arithmetic
normalisation) and purity (the share of test images whose cluster's majority label is
their own):

* ``structured_vae``: argmax_k q(k|x) (``model.cluster_probabilities``);
* ``k-means on pixels``: ``sklearn.cluster.KMeans`` (K = 10, 10 initialisations) on the raw pixels;
* ``GMM on VAE codes``: a plain ``vae`` with the same body, latent size and budget, then
  ``sklearn.mixture.GaussianMixture`` (K = 10, full covariances, 5 initialisations) on its
  posterior means.

Models are MLPs with a Bernoulli likelihood (grey levels in [0, 1]), Adam, batch 128.
Also written: the structured VAE's test bound and importance-sampled log p(x), the number of
clusters in use, and one row of decoded draws per component
(``benchmarks/results/structured_components_{digits,fmnist}.png``, rows ordered by π and
labelled with π_k and the majority test label of the cluster).

Recorded budget (one thread: 245 s of CPU in all, digits 18 s, Fashion-MNIST 227 s; 11 min of
wall clock on the shared 2-core machine):

    OMP_NUM_THREADS=1 python benchmarks/structured_clusters.py --train-size 10000 --epochs 30

Writes ``benchmarks/results/structured_clusters.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score
from sklearn.mixture import GaussianMixture

import vaekit
from vaekit.data import Dataset, load_digits, load_fashion_mnist
from vaekit.viz import save_image_rows

RESULTS = Path(__file__).resolve().parent / "results"
K = 10


def ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


def purity(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Σ_c max_y |{i : cluster_i = c, label_i = y}| / N."""
    total = 0
    for c in np.unique(clusters):
        total += np.bincount(labels[clusters == c]).max()
    return float(total / len(labels))


def scores(labels: np.ndarray, clusters: np.ndarray) -> dict[str, Any]:
    return {"nmi": float(normalized_mutual_info_score(labels, clusters)), "purity": purity(labels, clusters),
            "clusters_used": int(len(np.unique(clusters)))}


def timing(wall_start: float, cpu_start: float) -> dict[str, float]:
    """Wall-clock and process CPU seconds since the starts (the CPU time is what an idle machine's wall clock would show)."""
    return {"seconds": round(time.perf_counter() - wall_start, 1), "cpu_seconds": round(time.process_time() - cpu_start, 1)}


def train(name: str, x: torch.Tensor, args: argparse.Namespace, epochs: int, hidden_dims: tuple[int, ...], **options: Any) -> vaekit.LatentVariableModel:
    torch.manual_seed(args.seed)
    model = vaekit.create(name, input_shape=tuple(x.shape[1:]), latent_dim=args.latent_dim, arch="mlp", hidden_dims=hidden_dims,
                          likelihood="bernoulli", **options)
    vaekit.fit(model, x, epochs=epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, quiet=True)
    return model.eval()


def component_grid(model: vaekit.LatentVariableModel, test: Dataset, clusters: np.ndarray, path: Path, n: int = 12) -> Path:
    """One row per component (most probable π first): n decoded draws z ~ N(μ_k, σ_k²)."""
    torch.manual_seed(0)
    weights = model.prior().probs.detach()
    labels = test.y.numpy()
    rows, names = [], []
    for k in torch.argsort(weights, descending=True).tolist():
        members = labels[clusters == k]
        majority = f"y={np.bincount(members).argmax()}" if len(members) else "empty"
        rows.append(model.sample_component(k, n))
        names.append(f"k={k} pi={float(weights[k]):.2f} {majority}")
    return save_image_rows(rows, path, labels=names)


def run(dataset: str, train_set: Dataset, test: Dataset, args: argparse.Namespace, epochs: int, hidden_dims: tuple[int, ...]) -> dict[str, Any]:
    labels = test.y.numpy()
    result: dict[str, Any] = {"num_train": len(train_set), "num_test": len(test), "epochs": epochs, "hidden_dims": list(hidden_dims)}

    t0, c0 = time.perf_counter(), time.process_time()
    model = train("structured_vae", train_set.x, args, epochs, hidden_dims, components=K, learn_weights=not args.uniform_weights)
    with torch.no_grad():
        probs = torch.cat([model.cluster_probabilities(test.x[i : i + 500]) for i in range(0, len(test), 500)])
        torch.manual_seed(0)
        elbo = float(model.loss(test.x)["elbo"])
    clusters = probs.argmax(1).numpy()
    torch.manual_seed(0)
    log_px = float(vaekit.log_likelihood(model, test.x[: args.nll_examples], num_samples=args.nll_samples).mean())
    result["structured_vae"] = {**scores(labels, clusters), **timing(t0, c0), "test_elbo": elbo,
                                "test_log_likelihood": log_px, "nll_examples": min(args.nll_examples, len(test)),
                                "nll_samples": args.nll_samples, "mixture_weights": model.prior().probs.detach().tolist()}
    grid = component_grid(model, test, clusters, RESULTS / f"structured_components_{dataset}.png")
    print(f"[{dataset}] structured_vae  NMI {result['structured_vae']['nmi']:.3f}  purity {result['structured_vae']['purity']:.3f}  "
          f"bound {elbo:.2f}  log p(x) {log_px:.2f}  ({result['structured_vae']['seconds']} s)  {grid}", flush=True)

    t0, c0 = time.perf_counter(), time.process_time()
    pixels_train, pixels_test = train_set.x.flatten(1).numpy(), test.x.flatten(1).numpy()
    kmeans = KMeans(n_clusters=K, n_init=10, random_state=args.seed).fit(pixels_train)
    result["kmeans_pixels"] = {**scores(labels, kmeans.predict(pixels_test)), **timing(t0, c0)}
    print(f"[{dataset}] k-means pixels  NMI {result['kmeans_pixels']['nmi']:.3f}  purity {result['kmeans_pixels']['purity']:.3f}", flush=True)

    t0, c0 = time.perf_counter(), time.process_time()
    vae = train("vae", train_set.x, args, epochs, hidden_dims)
    codes_train, codes_test = vae.transform(train_set.x).numpy(), vae.transform(test.x).numpy()
    gmm = GaussianMixture(n_components=K, covariance_type="full", n_init=5, random_state=args.seed).fit(codes_train)
    result["gmm_vae_codes"] = {**scores(labels, gmm.predict(codes_test)), **timing(t0, c0)}
    print(f"[{dataset}] GMM on VAE codes NMI {result['gmm_vae_codes']['nmi']:.3f}  purity {result['gmm_vae_codes']['purity']:.3f}", flush=True)
    return result


def markdown(results: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        f"Clusters (K = {K}) of the test images against their labels; every method fitted on the same training images "
        f"(MLP bodies, D = {args.latent_dim}, Adam {args.lr:g}, batch {args.batch_size}, seed {args.seed}).",
        "",
        "| data | train / test | epochs | method | NMI | purity | clusters used |",
        "|---|---|---|---|---|---|---|",
    ]
    names = {"structured_vae": "structured_vae (argmax q(k|x))", "kmeans_pixels": "k-means on pixels", "gmm_vae_codes": "GMM on `vae` codes"}
    for dataset, r in results.items():
        for key, label in names.items():
            s = r[key]
            lines.append(f"| {dataset} | {r['num_train']} / {r['num_test']} | {r['epochs']} | {label} | {s['nmi']:.3f} | {s['purity']:.3f} | {s['clusters_used']} |")
    lines.append("")
    for dataset, r in results.items():
        s = r["structured_vae"]
        lines.append(f"* {dataset}: structured_vae test bound {s['test_elbo']:.2f} nats, log p(x) {s['test_log_likelihood']:.2f} nats "
                     f"(K = {s['nll_samples']} importance samples, {s['nll_examples']} test images); body {r['hidden_dims']}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="digits,fmnist", help="comma-separated: digits, fmnist")
    parser.add_argument("--train-size", type=int, default=None, help="Fashion-MNIST training images (default: all 60 000)")
    parser.add_argument("--test-size", type=int, default=None, help="Fashion-MNIST test images (default: all 10 000)")
    parser.add_argument("--epochs", type=int, default=30, help="Fashion-MNIST epochs")
    parser.add_argument("--digits-epochs", type=int, default=150, help="epochs on the 1 437 training digits")
    parser.add_argument("--hidden-dims", type=ints, default=(512, 256), help="Fashion-MNIST MLP body")
    parser.add_argument("--digits-hidden-dims", type=ints, default=(128,), help="digits MLP body")
    parser.add_argument("--latent-dim", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--uniform-weights", action="store_true", help="structured_vae with learn_weights=False")
    parser.add_argument("--nll-samples", type=int, default=200)
    parser.add_argument("--nll-examples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None, help="folder of the Fashion-MNIST IDX files")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default="structured_clusters", help="result file stem under benchmarks/results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = set(datasets) - {"digits", "fmnist"}
    if unknown:
        parser.error(f"unknown dataset {sorted(unknown)[0]!r}; choose digits and/or fmnist")
    started, cpu_started = time.perf_counter(), time.process_time()
    RESULTS.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    for dataset in datasets:
        if dataset == "digits":
            results["digits"] = run("digits", load_digits("train"), load_digits("test"), args, args.digits_epochs, args.digits_hidden_dims)
        else:
            fit, test = load_fashion_mnist("train", args.data_dir), load_fashion_mnist("test", args.data_dir)
            fit = fit[: args.train_size] if args.train_size else fit
            test = test[: args.test_size] if args.test_size else test
            results["fmnist"] = run("fmnist", fit, test, args, args.epochs, args.hidden_dims)
    payload = {"budget": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(args).items()}, "components": K,
               "results": results, **timing(started, cpu_started)}
    (RESULTS / f"{args.output}.json").write_text(json.dumps(payload, indent=2) + "\n")
    (RESULTS / f"{args.output}.md").write_text(markdown(results, args))
    print(markdown(results, args))
    print(f"results: {RESULTS / args.output}.{{md,json}}  ({payload['seconds']} s, {payload['cpu_seconds']} s of CPU)")


if __name__ == "__main__":
    main()
