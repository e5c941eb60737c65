"""Training throughput: ``vaekit.fit`` against plain hand-written PyTorch loops, side by side.

The model is the foundation benchmark's MLP VAE: 784-512-512-32 and back, Bernoulli
likelihood, batch 128, Adam 1e-3, on the CPU threads torch uses by default. Three
trainers run in turn, interleaved over several rounds so drift in machine speed hits all
of them alike:

* ``vaekit``      — ``vaekit.fit(model, x, epochs=E, quiet=True)`` (whole call, set-up included);
* ``vaekit+folder``— the same with ``out_dir`` (checkpoint, best model and metrics written every epoch);
* ``plain``       — a hand-written loop (randperm, slicing, zero_grad, backward, Adam step)
                    over the same vaekit model and ``model.loss``, with torch's default Adam;
* ``plain+fused`` — that loop with ``Adam(fused=True)``, the kernel ``vaekit.fit`` picks: vaekit
                    against it is the cost of the trainer's own bookkeeping alone;
* ``hand-written``— the same loop over a VAE written by hand in ~15 lines of torch
                    (``nn.Linear`` stacks, closed-form KL, BCE): the cost of the composition;
* ``vaekit+ema``  — with ``--ema β`` only: ``vaekit.fit(..., ema=β)``, the moving average of the
                    weights updated after every step (its cost against ``vaekit``).

Reported: median samples/s of each and the ratios of vaekit (with and without a run folder) to
the plain loops and to the hand-written model.

    python benchmarks/trainer_speed.py [--data fashion-mnist|random] [--rounds 3] [--epochs 1] [--ema 0.999] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn

import vaekit


class HandWrittenVAE(nn.Module):
    def __init__(self, d: int = 784, h: int = 512, z: int = 32):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 2 * z))
        self.dec = nn.Sequential(nn.Linear(z, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, d))

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        mu, log_sigma = self.enc(x).chunk(2, -1)
        z = mu + log_sigma.exp() * torch.randn_like(mu)
        rec = F.binary_cross_entropy_with_logits(self.dec(z), x, reduction="none").sum(1)
        kl = 0.5 * (mu.pow(2) + (2 * log_sigma).exp() - 1 - 2 * log_sigma).sum(1)
        return (rec + kl).mean()


def plain_loop(model: nn.Module, loss_fn, x: torch.Tensor, epochs: int, batch_size: int, fused: bool = False) -> None:
    model.to(x.device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused or None)
    n = x.shape[0]
    for _ in range(epochs):
        perm = torch.randperm(n, device=x.device)
        for i in range(0, n, batch_size):
            loss = loss_fn(x[perm[i : i + batch_size]])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def new_model() -> vaekit.LatentVariableModel:
    return vaekit.create("vae", input_shape=(1, 28, 28), latent_dim=32, arch="mlp", hidden_dims=(512, 512))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="fashion-mnist", choices=["fashion-mnist", "random"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--limit", type=int, default=60000, help="training examples used")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="cpu", help="cpu or cuda: the data sit there, every trainer runs there")
    parser.add_argument("--ema", type=float, help="also time fit(ema=EMA): the cost of averaging the weights")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.data == "fashion-mnist":
        from vaekit.data import load_fashion_mnist, static_binarize

        x = static_binarize(load_fashion_mnist("train").x[: args.limit])
    else:
        x = torch.rand(args.limit, 1, 28, 28).bernoulli()
    x, device = x.to(args.device), args.device
    n = x.shape[0] * args.epochs
    runners = {
        "vaekit": lambda: vaekit.fit(new_model(), x, epochs=args.epochs, batch_size=args.batch_size, quiet=True, device=device),
        "vaekit+folder": lambda: vaekit.fit(new_model(), x, epochs=args.epochs, batch_size=args.batch_size, quiet=True, device=device,
                                            out_dir=tempfile.mkdtemp(prefix="vaekit-speed-")),
        "plain": lambda: (lambda m: plain_loop(m, lambda b: m.loss(b)["loss"], x, args.epochs, args.batch_size))(new_model()),
        "plain+fused": lambda: (lambda m: plain_loop(m, lambda b: m.loss(b)["loss"], x, args.epochs, args.batch_size, True))(new_model()),
        "hand-written": lambda: (lambda m: plain_loop(m, m.loss, x, args.epochs, args.batch_size))(HandWrittenVAE()),
    }
    if args.ema is not None:
        runners["vaekit+ema"] = lambda: vaekit.fit(new_model(), x, epochs=args.epochs, batch_size=args.batch_size, quiet=True,
                                                   device=device, ema=args.ema)
    speeds: dict[str, list[float]] = {k: [] for k in runners}
    for r in range(args.rounds):
        for name, run in runners.items():
            t0 = time.perf_counter()
            run()
            if x.is_cuda:
                torch.cuda.synchronize()
            speeds[name].append(n / (time.perf_counter() - t0))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.0f}/s" for k, v in speeds.items()), flush=True)
    med = {k: statistics.median(v) for k, v in speeds.items()}
    result = {
        "samples_per_s": med,
        "ratio_vaekit_over_plain": med["vaekit"] / med["plain"],
        "ratio_vaekit_folder_over_plain": med["vaekit+folder"] / med["plain"],
        "ratio_vaekit_over_plain_fused": med["vaekit"] / med["plain+fused"],
        "ratio_vaekit_folder_over_plain_fused": med["vaekit+folder"] / med["plain+fused"],
        "ratio_vaekit_over_hand_written": med["vaekit"] / med["hand-written"],
        **({"ema": args.ema, "ratio_vaekit_ema_over_vaekit": med["vaekit+ema"] / med["vaekit"]} if args.ema is not None else {}),
        "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name() if x.is_cuda else "cpu",
        "examples": x.shape[0],
        "epochs_per_run": args.epochs,
        "rounds": args.rounds,
        "torch": torch.__version__,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
