"""Training throughput of ``--precision`` and ``--compile`` at several batch sizes, against a plain fp32 loop at batch 128.

The model is the foundation reference MLP VAE (784-512-512-32 and back, Bernoulli
likelihood, Adam) on statically binarised Fashion-MNIST images. Each configuration is a
``vaekit.fit`` of 2 epochs over ``--limit`` images; its speed is the samples/s of its
second epoch (the first pays for compilation), read from ``fit``'s history. The baseline is
a hand-written fp32 loop at batch 128 over the same model, timed on its second epoch too.
Configurations run interleaved over ``--rounds`` rounds, so drift in machine speed hits all
alike; reported are medians and the ratio to the baseline.

bf16 is measured even where ``vaekit.fit`` would refuse it as slow (the benchmark lowers
``vaekit.train.precision.MIN_SPEEDUP`` to 0 and reports the CPU's bf16 capability next to
the numbers), so the table shows what the check protects users from.

    python benchmarks/precision_speed.py [--rounds 3] [--limit 20000] [--batch-sizes 128,256,512] [--json FILE]
        [--data fashion-mnist|random] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import vaekit
from vaekit.train import precision as precision_module


def new_model() -> vaekit.LatentVariableModel:
    torch.manual_seed(0)
    return vaekit.create("vae", input_shape=(1, 28, 28), latent_dim=32, arch="mlp", hidden_dims=(512, 512))


def plain_fp32(x: torch.Tensor, batch_size: int = 128) -> float:
    """samples/s of the second epoch of a hand-written fp32 loop (randperm, slice, zero_grad, backward, Adam)."""
    model = new_model().to(x.device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    n, speed = x.shape[0], 0.0
    for _ in range(2):
        t0 = time.perf_counter()
        perm = torch.randperm(n, device=x.device)
        for i in range(0, n, batch_size):
            loss = model.loss(x[perm[i : i + batch_size]])["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if x.is_cuda:
            torch.cuda.synchronize()
        speed = n / (time.perf_counter() - t0)
    return speed


def fit_speed(x: torch.Tensor, batch_size: int, precision: str, compile: bool) -> float:
    result = vaekit.fit(new_model(), x, epochs=2, batch_size=batch_size, lr=1e-3, quiet=True, device=x.device,
                        precision=precision, compile=compile)
    return result.history[-1]["samples_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limit", type=int, default=20000, help="training images per epoch")
    parser.add_argument("--batch-sizes", default="128,256,512")
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled configurations")
    parser.add_argument("--data", default="fashion-mnist", choices=["fashion-mnist", "random"], help="random: binary noise images")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.data == "fashion-mnist":
        from vaekit.data import load_fashion_mnist, static_binarize

        x = static_binarize(load_fashion_mnist("train").x[: args.limit])
    else:
        x = torch.rand(args.limit, 1, 28, 28, generator=torch.Generator().manual_seed(0)).bernoulli()
    x = x.to(args.device)
    precision_module.MIN_SPEEDUP = 0.0  # measure bf16 even where fit would keep fp32
    native = precision_module.cpu_has_native_bf16()
    precision_module.cpu_has_native_bf16 = lambda cpuinfo=None: True
    configs = [(b, p, c) for b in map(int, args.batch_sizes.split(",")) for p in ("fp32", "bf16")
               for c in ((False,) if args.no_compile else (False, True))]
    speeds: dict[str, list[float]] = {"plain fp32 b128": []}
    for b, p, c in configs:
        speeds[f"vaekit {p} b{b}" + (" compile" if c else "")] = []
    for r in range(args.rounds):
        speeds["plain fp32 b128"].append(plain_fp32(x))
        for b, p, c in configs:
            speeds[f"vaekit {p} b{b}" + (" compile" if c else "")].append(fit_speed(x, b, p, c))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.0f}/s" for k, v in speeds.items()), flush=True)
    med = {k: statistics.median(v) for k, v in speeds.items()}
    base = med["plain fp32 b128"]
    rows = [{"configuration": k, "samples_per_s": v, "ratio_to_plain_fp32_b128": v / base} for k, v in med.items()]
    result = {"rows": rows, "threads": torch.get_num_threads(), "examples": x.shape[0], "rounds": args.rounds,
              "cpu_native_bf16": native, "bf16_matmul_speedup": precision_module.bf16_speedup(x.device.type), "torch": torch.__version__,
              "device": torch.cuda.get_device_name() if x.is_cuda else "cpu"}
    print("| configuration | samples/s | × plain fp32 b128 |\n|---|---|---|")
    for row in rows:
        print(f"| {row['configuration']} | {row['samples_per_s']:.0f} | {row['ratio_to_plain_fp32_b128']:.2f} |")
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
