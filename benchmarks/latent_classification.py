"""k-NN classification of Fashion-MNIST from latent codes, against raw pixels and PCA codes.

Each model is trained (unsupervised) on the training images; a ``LatentClassifier``
(k-NN, k = 5) is fitted on the codes of the same images with their labels and scored on
the test set. Baselines: k-NN on the raw 784 pixels, and on PCA codes with as many
components as the latent size (PCA fitted on the same training images).

Full budget (60 000 images, 30 epochs, MLP 512-256, D = 16):

    python benchmarks/latent_classification.py

Reduced budget used for the recorded numbers (2 shared CPU cores):

    nice -n 10 python benchmarks/latent_classification.py --train-size 10000 --epochs 20 --hidden-dims 256,128
"""

from __future__ import annotations

import argparse
import time


from _issue3 import RESULTS, budget_arguments, setup, fashion, names, train_model, write
from vaekit.apps import compare_latent_classification
from vaekit.viz import plot_bars


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    budget_arguments(parser)
    parser.add_argument("--models", type=names, default=["ae", "sparse_ae", "denoising_ae", "contractive_ae", "vae"])
    parser.add_argument("-k", type=int, default=5)
    args = setup(parser)
    started = time.perf_counter()
    train, test = fashion(args)
    fit = train[: args.train_size] if args.train_size else train
    accuracy: dict[str, float] = {}
    baselines = None
    for name in args.models:
        t0 = time.perf_counter()
        model = train_model(name, fit.x, args)
        report = compare_latent_classification(model, fit.x, fit.y, test.x, test.y, k=args.k)
        accuracy[name] = report["accuracy"]["latent"]
        baselines = report["accuracy"]
        print(f"{name:<15} codes ({args.latent_dim}) accuracy {accuracy[name]:.4f}   ({time.perf_counter() - t0:.0f} s)", flush=True)
    accuracy[f"pca ({args.latent_dim})"] = baselines["pca"]
    accuracy["raw pixels"] = baselines["raw"]
    print(f"{'PCA codes':<15} ({args.latent_dim}) accuracy {baselines['pca']:.4f}\n{'raw pixels':<15} (784) accuracy {baselines['raw']:.4f}")
    plot_bars(accuracy, RESULTS / "latent_classification.png", ylabel="test accuracy",
              title=f"Fashion-MNIST, {args.k}-NN on {len(fit)} training images")
    path = write("latent_classification", {"budget": vars(args), "num_train": len(fit), "num_test": len(test),
                                           "accuracy": accuracy}, started)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
