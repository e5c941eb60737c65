"""Your own networks in a vaekit model: a small convolutional VAE on Fashion-MNIST.

vaekit keeps the heads (the posterior q(z|x) and the Bernoulli likelihood p(x|z)) and takes
any ``nn.Module`` for the bodies:

* the encoder maps x (B, 1, 28, 28) to features (B, F) (F is found by running it once);
* the decoder maps z (B, D) to what the likelihood reads: for ``likelihood="bernoulli"`` the
  logits, (B, 1, 28, 28), no final sigmoid.

The model is trained with ``vaekit.fit``, saved (weights in safetensors, config in JSON, the
modules never pickled) and loaded back with modules built again from :class:`ConvEncoder` /
:class:`ConvDecoder`, as a later script would; the two models must agree exactly.

    python examples/custom_conv_fashion_mnist.py                     # 1 epoch on the 60 000 images
    python examples/custom_conv_fashion_mnist.py --epochs 10 --out runs/conv_vae
    python examples/custom_conv_fashion_mnist.py --train-size 2000   # a quick check

Needs Fashion-MNIST (Debian: ``apt install dataset-fashion-mnist``; or ``--data-dir``).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from torch import nn

import vaekit
from vaekit.data import load_fashion_mnist


class ConvEncoder(nn.Module):
    """x (B, 1, 28, 28) → two stride-2 convolutions (28 → 14 → 7) → a linear layer → features (B, ``features``)."""

    def __init__(self, channels: tuple[int, int] = (32, 64), features: int = 256):
        super().__init__()
        c1, c2 = channels
        self.net = nn.Sequential(
            nn.Conv2d(1, c1, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c1, c2, 4, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(c2 * 7 * 7, features), nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvDecoder(nn.Module):
    """z (B, D) → linear layers to a 7×7 map → two stride-2 transposed convolutions → Bernoulli logits (B, 1, 28, 28)."""

    def __init__(self, latent_dim: int, channels: tuple[int, int] = (32, 64), features: int = 256):
        super().__init__()
        c1, c2 = channels
        self.net = nn.Sequential(
            nn.Linear(latent_dim, features), nn.ReLU(),
            nn.Linear(features, c2 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (c2, 7, 7)),
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(c1, 1, 4, stride=2, padding=1),  # logits: the Bernoulli head applies the sigmoid
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train-size", type=int, default=None, help="train on the first N images (default: all 60 000)")
    parser.add_argument("--test-size", type=int, default=1000, help="test images for the ELBO and log p(x) (default 1000)")
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--nll-samples", type=int, default=100, help="importance samples K for log p(x)")
    parser.add_argument("--data-dir", default=None, help="folder with the Fashion-MNIST IDX files")
    parser.add_argument("--out", default=None, help="run folder to keep (default: a temporary folder, removed at the end)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    train = load_fashion_mnist("train", args.data_dir)
    test = load_fashion_mnist("test", args.data_dir)
    x_train = train.x[: args.train_size] if args.train_size else train.x
    x_test = test.x[: args.test_size]

    torch.manual_seed(args.seed)
    model = vaekit.create("vae", input_shape=(1, 28, 28), latent_dim=args.latent_dim, likelihood="bernoulli",
                          encoder=ConvEncoder(), decoder=ConvDecoder(args.latent_dim))
    print(f"model: {sum(p.numel() for p in model.parameters()):,} parameters; config.json will record "
          f"custom_bodies = {model.config['custom_bodies']}")

    with tempfile.TemporaryDirectory(prefix="vaekit_custom_conv_") as scratch:
        run(model, x_train, x_test, args, out=args.out or scratch)


def run(model: vaekit.LatentVariableModel, x_train: torch.Tensor, x_test: torch.Tensor, args: argparse.Namespace, out: str) -> None:
    """Train, save, load back with fresh modules, evaluate."""
    start = time.perf_counter()
    result = vaekit.fit(model, x_train, x_test, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                        out_dir=out, seed=args.seed, quiet=True)
    model = result.model.eval()
    print(f"trained {args.epochs} epoch(s) on {len(x_train):,} images in {time.perf_counter() - start:.1f} s; "
          f"validation loss (−ELBO per image) {result.best_val_loss:.2f} nats at epoch {result.best_epoch}")

    # Load it back: the config says the bodies are custom, so they are built again and passed in.
    loaded = vaekit.load(out, encoder=ConvEncoder(), decoder=ConvDecoder(args.latent_dim))
    with torch.no_grad():
        same = torch.equal(loaded.reconstruct(x_test[:64]), model.reconstruct(x_test[:64]))
    print(f"saved to {out} and loaded with fresh modules: reconstructions identical = {same}")
    try:
        vaekit.load(out)
    except vaekit.CheckpointError as e:
        print(f"without the modules vaekit.load refuses: {e}")

    torch.manual_seed(args.seed)
    metrics = vaekit.evaluate(loaded, x_test, nll_samples=args.nll_samples)
    print(f"test ({len(x_test):,} images): ELBO {metrics['elbo']:.2f} nats, log p(x) {metrics['log_likelihood']:.2f} nats "
          f"(K = {args.nll_samples}), {metrics['active_units']} of {args.latent_dim} latent dimensions active")


if __name__ == "__main__":
    main()
