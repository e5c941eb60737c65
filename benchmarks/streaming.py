"""Training from a memory-mapped file (``--stream``) against training from memory: speed and peak RSS.

Writes a ``uint8`` ``.npy`` of Fashion-MNIST-like rows (the 60 000 real training images,
repeated with random horizontal flips and shifts of up to 2 pixels) of ``--gigabytes`` GB
(default 2: 2.55 M rows of 28x28) under ``--out-dir``, and the first 200 000 of those rows
as a file of their own. Then, each in a separate process so that peak memory is per path,
it trains the reference MLP VAE (784-512-512-32, Bernoulli, dynamic binarisation, batch
128, Adam 1e-3, one epoch):

* ``in memory`` — ``vaekit.fit(model, load_dataset(small).x)`` on the 200 000 rows;
* ``streamed``  — ``vaekit.fit(model, open_file_dataset(big))`` over the whole big file.

Each child reports samples/s (the epoch's ``samples_per_s``) and its peak resident memory
(``VmHWM`` of ``/proc/self/status``, and ``ru_maxrss``). Before training, the batch reader
alone is timed with 0, 1 and 2 DataLoader workers (random batches of 128 rows of the big
file), which is what decided ``batch_loader``'s default of no workers for arrays.

    OMP_NUM_THREADS=1 python benchmarks/streaming.py [--gigabytes 2] [--out-dir /tmp/vaekit-streaming]

Results: a Markdown table on stdout and ``benchmarks/results/streaming.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"
ROW = 28 * 28
SMALL_ROWS = 200_000


def fashion_like(path: Path, rows: int, seed: int = 0) -> None:
    """Write ``rows`` Fashion-MNIST-like uint8 images to ``path`` (a memory-mapped .npy), 60 000 at a time."""
    from vaekit.data import load_fashion_mnist

    images = np.rint(load_fashion_mnist("train").x.numpy()[:, 0] * 255).astype(np.uint8)
    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(rows, 28, 28))
    for start in range(0, rows, len(images)):
        block = images[rng.permutation(len(images))][: rows - start]
        flip = rng.random(len(block)) < 0.5
        block[flip] = block[flip, :, ::-1]
        for part in np.array_split(np.arange(len(block)), 16):  # one shift per sixteenth of the block
            dy, dx = rng.integers(-2, 3, size=2)
            block[part] = np.roll(block[part], (int(dy), int(dx)), axis=(1, 2))
        out[start : start + len(block)] = block
    out.flush()
    del out


def prepare(out_dir: Path, gigabytes: float) -> tuple[Path, Path]:
    """The big file and the small one (its first 200 000 rows), written unless already there."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = int(gigabytes * 1e9) // ROW
    big, small = out_dir / f"fashion_like_{rows}.npy", out_dir / f"fashion_like_{min(rows, SMALL_ROWS)}.npy"
    if not big.exists():
        t0 = time.perf_counter()
        fashion_like(big.with_suffix(".tmp.npy"), rows)
        big.with_suffix(".tmp.npy").rename(big)
        print(f"wrote {big} ({big.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - t0:.0f} s", flush=True)
    if not small.exists():
        np.save(small, np.load(big, mmap_mode="r")[:SMALL_ROWS])
    return big, small


def peak_memory() -> dict[str, float]:
    status = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssFile", "RssAnon"):
                status[key] = int(value.split()[0]) * 1024 / 2**20
    return {
        "vmhwm_mb": status["VmHWM"],
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_at_end_mb": status["VmRSS"],
        "rss_file_at_end_mb": status["RssFile"],
        "rss_anon_at_end_mb": status["RssAnon"],
    }


def child(path: str, mode: str, threads: int) -> None:
    """Train one epoch from ``path`` in memory or streamed; print one JSON line."""
    torch.set_num_threads(threads)
    import vaekit
    from vaekit.data import load_dataset, open_file_dataset

    t0 = time.perf_counter()
    data = load_dataset(path).x if mode == "memory" else open_file_dataset(path)
    opened = time.perf_counter() - t0
    model = vaekit.create("vae", input_shape=(1, 28, 28), latent_dim=32, arch="mlp", hidden_dims=(512, 512))
    t0 = time.perf_counter()
    result = vaekit.fit(model, data, epochs=1, batch_size=128, binarize_data="dynamic", quiet=True, device="cpu")
    wall = time.perf_counter() - t0
    record = result.history[-1]
    print(json.dumps({
        "mode": mode, "rows": len(data), "samples_per_s": record["samples_per_s"], "fit_wall_s": wall,
        "open_s": opened, "train_loss": record.get("train/loss"), "threads": torch.get_num_threads(), **peak_memory(),
    }), flush=True)


def loader_speed(path: Path, rows: int, workers: tuple[int, ...]) -> dict[str, float]:
    """Rows/s of ``batch_loader`` alone (random batches of 128 among the first ``rows``), per worker count."""
    from vaekit.data import batch_loader, open_file_dataset

    data = open_file_dataset(path)[:rows]
    speeds = {}
    for n in workers:
        batches = torch.randperm(len(data), generator=torch.Generator().manual_seed(n)).split(128)
        t0 = time.perf_counter()
        seen = sum(len(b) for b in batch_loader(data, batches, num_workers=n))
        speeds[str(n)] = seen / (time.perf_counter() - t0)
        print(f"batch_loader, num_workers={n}: {speeds[str(n)]:,.0f} rows/s", flush=True)
    return speeds


def setup(out_dir: Path, gigabytes: float) -> None:
    """Write the files and time the reader; print one JSON line."""
    big, small = prepare(out_dir, gigabytes)
    loader = loader_speed(big, SMALL_ROWS, (0, 1, 2))
    print(json.dumps({"big": str(big), "small": str(small), "loader": loader}), flush=True)


def run_child(*arguments: str) -> dict:
    """Run this script with ``arguments`` in a fresh process (its own peak memory: a forked child would
    inherit this process's high-water mark in ``ru_maxrss``) and return its last output line as JSON."""
    out = subprocess.run([sys.executable, __file__, *arguments], check=True, capture_output=True, text=True)
    *progress, last = out.stdout.strip().splitlines()
    for line in progress:
        print(line, flush=True)
    return json.loads(last)


def train_child(path: Path, mode: str, threads: int) -> dict:
    print(f"training {mode}: {path.name} ...", flush=True)
    result = run_child("--child", mode, "--path", str(path), "--threads", str(threads))
    print(f"  {result['samples_per_s']:,.0f} samples/s, peak RSS {result['vmhwm_mb']:,.0f} MB", flush=True)
    return result


def table(result: dict) -> str:
    memory, streamed = result["in_memory"], result["streamed"]
    lines = [
        "| path | file | rows | peak RSS (VmHWM) | samples/s |",
        "|---|---|---:|---:|---:|",
        f"| in memory (`load_dataset(...).x`) | {result['small_file_gb']:.2f} GB | {memory['rows']:,} | "
        f"{memory['vmhwm_mb']:,.0f} MB | {memory['samples_per_s']:,.0f} |",
        f"| streamed (`open_file_dataset(...)`) | {result['big_file_gb']:.2f} GB | {streamed['rows']:,} | "
        f"{streamed['vmhwm_mb']:,.0f} MB | {streamed['samples_per_s']:,.0f} |",
        "",
        f"Streamed / in memory: {result['ratio_samples_per_s']:.2f}x the samples/s. "
        "Reader alone (random batches of 128, rows/s): "
        + ", ".join(f"{k} workers {v:,.0f}" for k, v in result["loader_rows_per_s"].items()) + ".",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=2.0, help="size of the streamed file (default 2)")
    parser.add_argument("--out-dir", type=Path, default=Path("/tmp/vaekit-streaming"))
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads of each training process")
    parser.add_argument("--json", type=Path, default=RESULTS / "streaming.json")
    parser.add_argument("--child", choices=["setup", "memory", "stream"], help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "setup":
        setup(args.out_dir, args.gigabytes)
        return
    if args.child:
        child(args.path, args.child, args.threads)
        return
    files = run_child("--child", "setup", "--out-dir", str(args.out_dir), "--gigabytes", str(args.gigabytes))
    big, small, loader = Path(files["big"]), Path(files["small"]), files["loader"]
    memory = train_child(small, "memory", args.threads)
    streamed = train_child(big, "stream", args.threads)
    result = {
        "big_file_gb": big.stat().st_size / 1e9,
        "small_file_gb": small.stat().st_size / 1e9,
        "in_memory": memory,
        "streamed": streamed,
        "ratio_samples_per_s": streamed["samples_per_s"] / memory["samples_per_s"],
        "loader_rows_per_s": loader,
        "batch_size": 128,
        "model": "vae mlp 784-512-512-32, bernoulli, binarize_data=dynamic, 1 epoch",
        "torch": torch.__version__,
        "cpus": len(os.sched_getaffinity(0)),
        "command": "OMP_NUM_THREADS=1 python benchmarks/streaming.py " + " ".join(sys.argv[1:]),
    }
    print("\n" + table(result))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
