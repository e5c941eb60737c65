"""Compression against PCA on Fashion-MNIST (survey §1.5), and the linear AE ≡ PCA check.

Part 1 — the survey's claim. ``linear_ae`` (linear encoder and decoder, squared error) is
trained with ``vaekit.fit`` (Adam, learning rate divided by 10 twice) on the training images normalised as x̂_ij = (x_ij − mean_j)/√M;
for each code size D its test reconstruction error is compared with PCA's (D components,
fitted on the same images), and the largest principal angle between the decoder's column
space and PCA's subspace is reported.

Part 2 — what a nonlinear code buys. ``ae`` (MLP, Bernoulli decoder) on [0, 1] images:
test MSE per pixel against PCA at the same D, with float codes and with 8-bit codes
(``Compressor``, ``compare_with_pca``, through ``vaekit.bench.applications.compression_row``,
which ``vaekit bench --suite apps`` uses too). An error-vs-dimension plot holds both parts.

Full budget (60 000 images, 30 epochs):

    python benchmarks/compression_pca.py

Reduced budget used for the recorded numbers (2 shared CPU cores):

    nice -n 10 python benchmarks/compression_pca.py --train-size 10000 --epochs 20 --hidden-dims 256,128 --linear-epochs 150
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.linalg import subspace_angles
from sklearn.decomposition import PCA

from _issue3 import RESULTS, budget_arguments, setup, fashion, ints, train_model, write
import vaekit
from vaekit.apps import normalize_for_pca
from vaekit.bench.applications import compression_row
from vaekit.viz import plot_lines


def linear_ae_vs_pca(x_train: torch.Tensor, x_test: torch.Tensor, d: int, args: argparse.Namespace) -> dict:
    xn, mean, m = normalize_for_pca(x_train)
    xt, _, _ = normalize_for_pca(x_test, mean, m)
    torch.manual_seed(args.seed)
    model = vaekit.create("linear_ae", input_shape=(xn.shape[1],), latent_dim=d)
    with torch.no_grad():  # the data are centred: start the biases at 0
        model.posterior.net.bias.zero_()
        model.decoder.net[0].bias.zero_()
    x = torch.from_numpy(xn).float()
    for stage, factor in enumerate((1.0, 0.1, 0.01)):  # step decay: three calls to vaekit.fit, lr / 10 each time
        vaekit.fit(model, x, epochs=max(1, args.linear_epochs // 3), batch_size=args.batch_size,
                   lr=args.linear_lr * factor, seed=args.seed + stage, quiet=True)
    model.eval()
    pca = PCA(n_components=d + 1, svd_solver="full").fit(xn)
    components = pca.components_[:d]
    with torch.no_grad():
        ae_rec = model.reconstruct(torch.from_numpy(xt).float()).double().numpy()
    ae_err = float(((xt - ae_rec) ** 2).sum(1).mean())
    pca_rec = (xt - pca.mean_) @ components.T @ components + pca.mean_
    pca_err = float(((xt - pca_rec) ** 2).sum(1).mean())
    angle = float(np.degrees(subspace_angles(model.decoder.net[0].weight.detach().double().numpy(), components.T)).max())
    eigen_ratio = float(pca.explained_variance_[d - 1] / pca.explained_variance_[d])  # λ_D / λ_{D+1}: small gap, slow rotation
    return {"d": d, "linear_ae_error": ae_err, "pca_error": pca_err, "relative_gap": ae_err / pca_err - 1,
            "largest_angle_deg": angle, "eigenvalue_ratio": eigen_ratio}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    budget_arguments(parser)
    parser.add_argument("--dims", type=ints, default=[2, 4, 8, 16, 32], help="code sizes for the linear AE vs PCA")
    parser.add_argument("--ae-dims", type=ints, default=[4, 16, 32], help="code sizes for the nonlinear ae")
    parser.add_argument("--linear-epochs", type=int, default=150, help="split into three stages of decreasing lr")
    parser.add_argument("--linear-lr", type=float, default=3e-3)
    args = setup(parser)
    started = time.perf_counter()
    train, test = fashion(args)
    x_train = train.x[: args.train_size] if args.train_size else train.x
    linear = []
    for d in args.dims:
        row = linear_ae_vs_pca(x_train, test.x, d, args)
        linear.append(row)
        print(f"linear_ae D={d:<3} error {row['linear_ae_error']:.6f}  PCA {row['pca_error']:.6f}  gap {100 * row['relative_gap']:+.2f} %"
              f"  largest principal angle {row['largest_angle_deg']:.2f}°  (λ_D/λ_D+1 = {row['eigenvalue_ratio']:.3f})", flush=True)
    nonlinear = []
    for d in args.ae_dims:
        model = train_model("ae", x_train, args, latent_dim=d)
        row = compression_row(model, x_train, test.x, bits=8)
        nonlinear.append(row)
        print(f"ae        D={d:<3} MSE/pixel {row['model_mse']:.5f} (8-bit {row['model_mse_quantized']:.5f})  "
              f"PCA {row['pca_mse']:.5f} (8-bit {row['pca_mse_quantized']:.5f})", flush=True)
    dims = sorted(set(args.dims) | set(args.ae_dims))
    scale = float(np.prod(x_train.shape[1:]))  # linear errors are sums over pixels of normalised data: show per pixel·M
    m = x_train.shape[0]
    lin = {r["d"]: r for r in linear}
    nl = {r["d"]: r for r in nonlinear}
    pca_curve = {n: (lin[n]["pca_error"] * m / scale if n in lin else nl[n]["pca_mse"]) for n in dims}
    plot_lines(dims, {
        "PCA": [pca_curve[n] for n in dims],
        "linear_ae (survey §1.5)": [lin[n]["linear_ae_error"] * m / scale if n in lin else np.nan for n in dims],
        "ae (MLP)": [nl[n]["model_mse"] if n in nl else np.nan for n in dims],
    }, RESULTS / "compression_pca.png", xlabel="code dimension D", ylabel="test MSE per pixel", title="Fashion-MNIST: error vs code size", logy=True)
    path = write("compression_pca", {"budget": vars(args), "linear_ae_vs_pca": linear, "ae_vs_pca": nonlinear}, started)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
