"""Training from a memory-mapped file (``--stream``) against training from memory: speed and peak RSS.

Writes a ``uint8`` ``.npy`` of Fashion-MNIST-like rows (the 60 000 real training images,
repeated with random horizontal flips and shifts of up to 2 pixels) of ``--gigabytes`` GB
(default 2: 2.55 M rows of 28x28) under ``--out-dir``, and the first 200 000 of those rows
as a file of their own. The model is always the reference MLP VAE (784-512-512-32,
Bernoulli, dynamic binarisation, batch 128, Adam 1e-3, one epoch per ``fit``).

1. **Speed, side by side** (one process). ``--rows`` rows (default 40 000) are drawn at random
   from the whole big file (sorted positions: a view whose rows are scattered over all of
   it, so every batch really reads the mapping) and also read into memory. Then ``--rounds``
   rounds (default 5) each run ``vaekit.fit`` for one epoch on a fresh model from memory and
   from the file view, in alternating order (memory first in even rounds, file first in odd
   ones). The medians of the epochs' ``samples_per_s`` give the ratio streamed / in memory.
   Both paths see the same machine load, so the ratio is the cost of streaming.
2. **Peak memory, whole epochs** (one process per path, so that peak memory is per path):

   * ``in memory`` — ``vaekit.fit(model, load_dataset(small).x)`` on the 200 000 rows;
   * ``streamed``  — ``vaekit.fit(model, open_file_dataset(big))`` over the whole big file.

   Each reports its peak resident memory (``VmHWM`` of ``/proc/self/status``, and
   ``ru_maxrss``) and samples/s. These two runs are minutes apart, so their samples/s ratio
   is reported as "not side by side": machine load can change between them.

Before training, the batch reader alone is timed with 0, 1 and 2 DataLoader workers (random
batches of 128 rows of the big file), which is what decided ``batch_loader``'s default of no
workers for arrays. The load average is recorded before and after each part.

    OMP_NUM_THREADS=1 python benchmarks/streaming.py [--gigabytes 2] [--out-dir /tmp/vaekit-streaming] [--rows 40000] [--rounds 5]

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
BATCH = 128
WARMUP_ROWS = 10 * BATCH


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


def reference_vae():
    import vaekit

    return vaekit.create("vae", input_shape=(1, 28, 28), latent_dim=32, arch="mlp", hidden_dims=(512, 512))


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def child(path: str, mode: str, threads: int) -> None:
    """Train one epoch from ``path`` in memory or streamed; print one JSON line."""
    torch.set_num_threads(threads)
    import vaekit
    from vaekit.data import load_dataset, open_file_dataset

    t0 = time.perf_counter()
    data = load_dataset(path).x if mode == "memory" else open_file_dataset(path)
    opened = time.perf_counter() - t0
    model = reference_vae()
    t0 = time.perf_counter()
    result = vaekit.fit(model, data, epochs=1, batch_size=BATCH, binarize_data="dynamic", quiet=True, device="cpu")
    wall = time.perf_counter() - t0
    record = result.history[-1]
    print(json.dumps({
        "mode": mode, "rows": len(data), "samples_per_s": record["samples_per_s"], "fit_wall_s": wall,
        "open_s": opened, "train_loss": record.get("train/loss"), "threads": torch.get_num_threads(), **peak_memory(),
    }), flush=True)


def side_by_side(path: str, rows: int, rounds: int, threads: int) -> None:
    """Alternate one-epoch fits from memory and from a scattered file view of the same ``rows`` rows
    in this one process; print one JSON line with every round and the medians."""
    torch.set_num_threads(threads)
    import vaekit
    from vaekit.data import open_file_dataset

    big = open_file_dataset(path)
    positions = torch.randperm(len(big), generator=torch.Generator().manual_seed(0))[: min(rows, len(big))].sort().values
    view = big[positions]  # rows scattered over the whole file
    x = view.load().x  # the same rows, in memory (float32)
    sources = {"memory": x, "stream": view}

    def fit(mode: str, data) -> dict:
        torch.manual_seed(0)
        t0 = time.perf_counter()
        result = vaekit.fit(reference_vae(), data, epochs=1, batch_size=BATCH, binarize_data="dynamic", quiet=True,
                            device="cpu", seed=0)
        return {"samples_per_s": result.history[-1]["samples_per_s"], "fit_wall_s": time.perf_counter() - t0,
                "train_loss": result.history[-1]["train/loss"]}

    for mode in sources:  # untimed warm-up of both paths (allocator, first faults)
        fit(mode, sources[mode][:WARMUP_ROWS])
    runs: dict[str, list[dict]] = {"memory": [], "stream": []}
    for r in range(rounds):
        for mode in ("memory", "stream") if r % 2 == 0 else ("stream", "memory"):
            runs[mode].append(fit(mode, sources[mode]))
            print(f"  round {r + 1}/{rounds}, {mode}: {runs[mode][-1]['samples_per_s']:,.0f} samples/s", flush=True)
    median = {mode: float(np.median([run["samples_per_s"] for run in runs[mode]])) for mode in runs}
    median_wall = {mode: float(np.median([run["fit_wall_s"] for run in runs[mode]])) for mode in runs}
    print(json.dumps({
        "rows": len(view), "rounds": rounds, "first_row": int(positions[0]), "last_row": int(positions[-1]),
        "memory": runs["memory"], "stream": runs["stream"],
        "median_samples_per_s": median, "median_fit_wall_s": median_wall,
        "ratio_samples_per_s": median["stream"] / median["memory"],
        "ratio_fit_wall_s": median_wall["memory"] / median_wall["stream"],
        "threads": torch.get_num_threads(), **peak_memory(),
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
    *progress, last = out.stdout.rstrip().splitlines()
    for line in progress:
        print(line, flush=True)
    return json.loads(last)


def train_child(path: Path, mode: str, threads: int) -> dict:
    print(f"training {mode}: {path.name} ...", flush=True)
    result = run_child("--child", mode, "--path", str(path), "--threads", str(threads))
    print(f"  {result['samples_per_s']:,.0f} samples/s, peak RSS {result['vmhwm_mb']:,.0f} MB", flush=True)
    return result


def table(result: dict) -> str:
    memory, streamed, side = result["in_memory"], result["streamed"], result["side_by_side"]
    load = result["load_average"]
    lines = [
        f"Side by side (one process, {side['rows']:,} rows scattered over the {result['big_file_gb']:.2f} GB file, "
        f"{side['rounds']} alternating rounds, medians):",
        "",
        "| path | samples/s (median) | each round |",
        "|---|---:|---|",
        f"| in memory (tensor) | {side['median_samples_per_s']['memory']:,.0f} | "
        + ", ".join(f"{run['samples_per_s']:,.0f}" for run in side["memory"]) + " |",
        f"| streamed (`FileDataset` view) | {side['median_samples_per_s']['stream']:,.0f} | "
        + ", ".join(f"{run['samples_per_s']:,.0f}" for run in side["stream"]) + " |",
        "",
        f"Streamed / in memory, side by side: {side['ratio_samples_per_s']:.2f}x the samples/s.",
        "",
        "Whole epochs, one process per path (peak memory; samples/s not side by side):",
        "",
        "| path | file | rows | peak RSS (VmHWM) | samples/s |",
        "|---|---|---:|---:|---:|",
        f"| in memory (`load_dataset(...).x`) | {result['small_file_gb']:.2f} GB | {memory['rows']:,} | "
        f"{memory['vmhwm_mb']:,.0f} MB | {memory['samples_per_s']:,.0f} |",
        f"| streamed (`open_file_dataset(...)`) | {result['big_file_gb']:.2f} GB | {streamed['rows']:,} | "
        f"{streamed['vmhwm_mb']:,.0f} MB | {streamed['samples_per_s']:,.0f} |",
        "",
        f"Their samples/s ratio, not side by side: {result['ratio_samples_per_s_not_side_by_side']:.2f}x. "
        "Reader alone (random batches of 128, rows/s): "
        + ", ".join(f"{k} workers {v:,.0f}" for k, v in result["loader_rows_per_s"].items()) + ". "
        "Load average (1/5/15 min): " + "; ".join(f"{k} {'/'.join(f'{v:.2f}' for v in vals)}" for k, vals in load.items()) + ".",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=2.0, help="size of the streamed file (default 2)")
    parser.add_argument("--out-dir", type=Path, default=Path("/tmp/vaekit-streaming"))
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads of each training process")
    parser.add_argument("--rows", type=int, default=40_000, help="rows of the side-by-side speed comparison (default 40 000)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of the side-by-side comparison (default 5)")
    parser.add_argument("--json", type=Path, default=RESULTS / "streaming.json")
    parser.add_argument("--child", choices=["setup", "memory", "stream", "side"], help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "setup":
        setup(args.out_dir, args.gigabytes)
        return
    if args.child == "side":
        side_by_side(args.path, args.rows, args.rounds, args.threads)
        return
    if args.child:
        child(args.path, args.child, args.threads)
        return
    if args.rows < WARMUP_ROWS or args.rounds < 1:
        parser.error(f"--rows must be at least {WARMUP_ROWS} and --rounds at least 1")
    load = {"start": load_average()}
    files = run_child("--child", "setup", "--out-dir", str(args.out_dir), "--gigabytes", str(args.gigabytes))
    big, small, loader = Path(files["big"]), Path(files["small"]), files["loader"]
    print(f"side by side: {args.rounds} rounds of {args.rows:,} rows, in memory and streamed ...", flush=True)
    load["side_by_side_start"] = load_average()
    side = run_child("--child", "side", "--path", str(big), "--rows", str(args.rows), "--rounds", str(args.rounds),
                     "--threads", str(args.threads))
    load["side_by_side_end"] = load_average()
    print(f"  medians: {side['median_samples_per_s']['memory']:,.0f} in memory, {side['median_samples_per_s']['stream']:,.0f} "
          f"streamed: {side['ratio_samples_per_s']:.2f}x", flush=True)
    memory = train_child(small, "memory", args.threads)
    streamed = train_child(big, "stream", args.threads)
    load["end"] = load_average()
    result = {
        "big_file_gb": big.stat().st_size / 1e9,
        "small_file_gb": small.stat().st_size / 1e9,
        "side_by_side": side,
        "in_memory": memory,
        "streamed": streamed,
        "ratio_samples_per_s_not_side_by_side": streamed["samples_per_s"] / memory["samples_per_s"],
        "loader_rows_per_s": loader,
        "load_average": load,
        "batch_size": BATCH,
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
