"""Speed of ``vaekit.log_likelihood`` against a bare forward pass of the same decoder, side by side.

The model is the reference MLP VAE (784-512-512-32 and back, Bernoulli likelihood; weights
as created, or a trained one with ``--model DIR``: the speed does not depend on them). In one
process, with the same torch threads, each round times in turn

* ``bare``  — ``model.decoder(z)`` over exactly the decoder calls that ``log_likelihood``
              makes (the same number of codes, in calls of the same sizes, recorded from a
              run of it), with nothing else: no encoder, sampling, densities or logsumexp.
              The strictest reference: it has log_likelihood's own cache-sized tiles;
* ``bare_batch`` — ``model.decoder(z)`` over the same number of codes in calls of one chunk
              each (``examples_per_chunk(K) · K`` codes, 16 000 at K = 1000): the decoder run
              as a user would run it on B·K codes in batches;
* ``vaekit``— ``vaekit.log_likelihood(model, x, K)`` on the same B images (fp32);
* ``bf16``  — with ``--bf16``: the same call with ``precision="bf16"``.

Reported: medians over the rounds of images/s and of the per-round ratios vaekit/bare and
vaekit/bare_batch (1 is the decoder's own speed), the minor page faults of each run per round
(glibc returns freed memory to the system and faults it back in, more for some allocation
patterns than others: a run that faults more is slower for it, which is most of the spread
between runs; ``MALLOC_TRIM_THRESHOLD_=268435456 MALLOC_MMAP_THRESHOLD_=67108864`` removes the
faults), the estimated time for 10 000 test images, the load average, and
with ``--bf16`` the mean |Δ log p(x)| per image of bf16 against fp32 on the same codes (same
seed; the recorded decoder inputs are checked to be identical) and its speed ratio bf16/fp32.
Wall-clock (``time.perf_counter``) ratios are the figure asked for; the ratio of the whole
process's CPU time (``time.process_time``) is printed beside it, since on a loaded machine
wall time also counts the time the scheduler gives to others. ``parallel_op_ms``, the median
time of one small parallel op, tells whether a run had OpenMP's spin-waiting stall every
parallel region on an oversubscribed machine (milliseconds instead of ~0.1 ms; then counts
of calls set the times, and ``OMP_WAIT_POLICY=PASSIVE`` removes the stalls).

    OMP_NUM_THREADS=2 python benchmarks/loglik_speed.py [--images 16] [--samples 1000] [--rounds 7]
    OMP_NUM_THREADS=2 python benchmarks/loglik_speed.py --bf16 --model runs/bench/fashion-mnist/vae/seed0 --data fashion-mnist
    OMP_NUM_THREADS=1 python benchmarks/loglik_speed.py --blocks 256 512 1024 2048   # the decoder call size
    OMP_NUM_THREADS=1 python benchmarks/loglik_speed.py --breakdown   # decoder, scoring and the rest, apart
    OMP_NUM_THREADS=2 python benchmarks/loglik_speed.py --data fashion-mnist --images 10000 --rounds 1   # the whole test set
    python benchmarks/loglik_speed.py --device cuda --images 512 --bf16   # on a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import time

import torch

import vaekit
from vaekit.eval.likelihood import examples_per_chunk
from vaekit.objectives import importance


def reference_model(directory: str | None) -> vaekit.LatentVariableModel:
    if directory:
        return vaekit.load(directory)
    torch.manual_seed(0)
    return vaekit.create("vae", input_shape=(1, 28, 28), latent_dim=32, arch="mlp", hidden_dims=(512, 512), likelihood="bernoulli")


def images(source: str, count: int) -> torch.Tensor:
    if source == "fashion-mnist":
        from vaekit.data import load_fashion_mnist, static_binarize

        return static_binarize(load_fashion_mnist("test").x[:count])
    return torch.rand(count, 1, 28, 28, generator=torch.Generator().manual_seed(0)).bernoulli()


def decoder_calls(model: vaekit.LatentVariableModel, run) -> list[torch.Tensor]:
    """The inputs of every decoder call that ``run()`` makes, in order."""
    seen: list[torch.Tensor] = []
    hook = model.decoder.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    try:
        run()
    finally:
        hook.remove()
    return seen


def cpu_bf16() -> dict[str, object]:
    """What this CPU offers for bf16: torch's dispatch level and the bf16 flags lscpu lists."""
    try:
        flags = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        flags = ""
    names = sorted({w for w in flags.split() if "bf16" in w or w.startswith("amx")})
    return {"torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "lscpu_bf16_flags": names,
            "avx512_bf16": "avx512_bf16" in names, "amx_bf16": "amx_bf16" in names}


def parallel_op_ms() -> float:
    """Median wall time of one small parallel op (|v| for 400k values, ~0.1 ms on an idle core):
    on an oversubscribed machine with OpenMP's default spin-waiting, every parallel region can
    wait several milliseconds for a descheduled thread, and then counts of calls, not FLOPs, set the times."""
    v = torch.randn(400_000)
    times = []
    for _ in range(21):
        start = time.perf_counter()
        v.abs()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def timed(run) -> tuple[float, float, int]:
    """Wall and process CPU seconds of ``run()``, and the minor page faults it took."""
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return time.perf_counter() - wall, time.process_time() - cpu, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults


def measure(model, x: torch.Tensor, k: int, rounds: int, bf16: bool) -> dict[str, object]:
    """Interleaved rounds of the bare decoder, log_likelihood in fp32 and (optionally) in bf16.

    The bare decoder replays the decoder calls recorded from ``log_likelihood``: on all of x,
    or for a large x (a whole test set) on its first chunk of examples, repeated once per chunk.
    """
    chunk = examples_per_chunk(k)
    probe = x if x.shape[0] <= 4 * chunk else x[:chunk]
    if probe is not x and x.shape[0] % chunk:
        raise SystemExit(f"--images must be a multiple of {chunk} (the examples per chunk at K={k}) beyond {4 * chunk}")
    sizes = [z.shape[0] for z in decoder_calls(model, lambda: vaekit.log_likelihood(model, probe, k))] * (x.shape[0] // probe.shape[0])
    total = x.shape[0] * k
    batches = [min(chunk * k, total - start) for start in range(0, total, chunk * k)]
    assert sum(sizes) == total, "log_likelihood decodes each of its B·K codes once"
    codes = torch.randn(max(max(sizes), max(batches)), model.latent_dim, device=model.device)

    @torch.no_grad()
    def bare() -> None:
        for n in sizes:
            model.decoder(codes[:n])

    @torch.no_grad()
    def bare_batch() -> None:
        for n in batches:
            model.decoder(codes[:n])

    runs = {"bare": bare, "bare_batch": bare_batch, "vaekit": lambda: vaekit.log_likelihood(model, x, k)}
    if bf16:
        runs["bf16"] = lambda: vaekit.log_likelihood(model, x, k, precision="bf16")
    if probe is x:
        for run in runs.values():  # warm-up
            run()
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    faults: dict[str, list[int]] = {name: [] for name in runs}
    for r in range(rounds):
        for name, run in runs.items():
            w, c, f = timed(run)
            wall[name].append(w)
            cpu[name].append(c)
            faults[name].append(f)
        print(f"round {r + 1}: " + ", ".join(f"{n} {x.shape[0] / v[-1]:.1f} img/s" for n, v in wall.items()), flush=True)
    med = {name: statistics.median(v) for name, v in wall.items()}
    ratios = [b / v for b, v in zip(wall["bare"], wall["vaekit"])]
    batch_ratios = [b / v for b, v in zip(wall["bare_batch"], wall["vaekit"])]
    result = {
        "images_per_s": {name: x.shape[0] / t for name, t in med.items()},
        "ratio_vaekit_over_bare": statistics.median(ratios),
        "ratio_vaekit_over_bare_quartiles": statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios,
        "ratio_vaekit_over_bare_cpu_time": statistics.median(b / v for b, v in zip(cpu["bare"], cpu["vaekit"])),
        "ratio_vaekit_over_bare_batch": statistics.median(batch_ratios),
        "ratio_vaekit_over_bare_batch_quartiles": statistics.quantiles(batch_ratios, n=4) if len(batch_ratios) > 1 else batch_ratios,
        "page_faults_per_round": {name: statistics.median(v) for name, v in faults.items()},
        "seconds_for_10000_images": 10_000 * med["vaekit"] / x.shape[0],
        "decoder_calls": len(sizes),
        "codes_per_decoder_call": max(sizes),
        "codes_per_batch_call": max(batches),
    }
    if bf16:
        result["ratio_bf16_over_fp32"] = statistics.median(f / b for f, b in zip(wall["vaekit"], wall["bf16"]))
        result["ratio_bf16_over_bare"] = statistics.median(b / f for b, f in zip(wall["bare"], wall["bf16"]))
        result["seconds_for_10000_images_bf16"] = 10_000 * med["bf16"] / x.shape[0]
    return result


def breakdown(model, x: torch.Tensor, k: int, rounds: int) -> dict[str, float]:
    """Where the time of ``log_likelihood`` goes: the decoder's forward passes (timed by forward hooks), the
    scoring of x under each decoded tile (``log_prob_repeated``, timed by a wrapper), and everything else
    (encoding, drawing ε, log q, log p(z), the logsumexp, the tile bookkeeping), each as a fraction of the
    decoder's time; medians over ``rounds`` calls. The hooks and the wrapper cost a few microseconds a tile."""
    from vaekit.distributions import likelihoods
    from vaekit.objectives import importance as imp

    spent = {"decoder": 0.0, "score": 0.0}
    started: list[float] = []
    pre = model.decoder.register_forward_pre_hook(lambda *_: started.append(time.perf_counter()))
    post = model.decoder.register_forward_hook(lambda *_: spent.__setitem__("decoder", spent["decoder"] + time.perf_counter() - started.pop()))
    score = likelihoods.log_prob_repeated

    def timed_score(*args, **kwargs):
        begin = time.perf_counter()
        out = score(*args, **kwargs)
        spent["score"] += time.perf_counter() - begin
        return out

    imp.log_prob_repeated = timed_score
    rows = []
    try:
        vaekit.log_likelihood(model, x, k)  # warm-up
        for _ in range(rounds):
            spent.update(decoder=0.0, score=0.0)
            total, _, _ = timed(lambda: vaekit.log_likelihood(model, x, k))
            rows.append((total, spent["decoder"], spent["score"]))
    finally:
        imp.log_prob_repeated = score
        pre.remove()
        post.remove()
    total, decoder, scoring = (statistics.median(r[i] for r in rows) for i in range(3))
    return {"total_ms": 1e3 * total, "decoder_ms": 1e3 * decoder, "score_ms": 1e3 * scoring, "other_ms": 1e3 * (total - decoder - scoring),
            "score_over_decoder": scoring / decoder, "other_over_decoder": (total - decoder - scoring) / decoder,
            "decoder_over_total": decoder / total}


def bf16_error(model, x: torch.Tensor, k: int, seed: int = 0) -> dict[str, float | bool]:
    """mean |Δ log p(x)| per image, bf16 against fp32, on the same codes (same seed, checked)."""
    values, codes = {}, {}
    for precision in ("fp32", "bf16"):
        def run(precision: str = precision) -> None:
            torch.manual_seed(seed)
            values[precision] = vaekit.log_likelihood(model, x, k, precision=precision)

        codes[precision] = decoder_calls(model, run)
    same = len(codes["fp32"]) == len(codes["bf16"]) and all(torch.equal(a, b) for a, b in zip(codes["fp32"], codes["bf16"]))
    delta = (values["bf16"] - values["fp32"]).abs()
    return {"same_codes": same, "mean_abs_delta_nats": float(delta.mean()), "max_abs_delta_nats": float(delta.max()),
            "mean_log_px_fp32": float(values["fp32"].mean()), "images": x.shape[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16, help="B, images per timed call (10000 with --data fashion-mnist: the whole test set)")
    parser.add_argument("--samples", type=int, default=1000, help="K, importance samples")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--model", help="a saved model directory (default: the reference VAE as created, seed 0)")
    parser.add_argument("--data", default="random", choices=["random", "fashion-mnist"], help="binary images to score")
    parser.add_argument("--bf16", action="store_true", help="also time precision='bf16' and measure its error against fp32")
    parser.add_argument("--error-images", type=int, default=200, help="images for the bf16 error")
    parser.add_argument("--blocks", type=int, nargs="+", help="sweep the codes per decoder call and thread (importance.DECODE_BLOCK)")
    parser.add_argument("--breakdown", action="store_true", help="also split log_likelihood's time into decoder, scoring and the rest")
    parser.add_argument("--device", default="cpu", help="cpu or cuda: the model and the images sit there")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    model = reference_model(args.model).eval().to(args.device)
    x = images(args.data, args.images).to(args.device)
    load_before = os.getloadavg()
    result: dict[str, object] = {"threads": torch.get_num_threads(), "images": args.images, "samples": args.samples,
                                 "rounds": args.rounds, "torch": torch.__version__, "model": args.model or "reference VAE, untrained (seed 0)",
                                 "data": args.data, "cpu": cpu_bf16(), "decode_block": importance.decode_block(model.device),
                                 "device": torch.cuda.get_device_name() if x.is_cuda else "cpu",
                                 "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"), "parallel_op_ms": parallel_op_ms()}
    if args.blocks:
        sweep = {}
        for block in args.blocks:
            importance.DECODE_BLOCK = block
            print(f"-- {importance.decode_block(model.device)} codes per decoder call")
            sweep[block] = measure(model, x, args.samples, args.rounds, bf16=False)
        result["blocks"] = sweep
    else:
        result.update(measure(model, x, args.samples, args.rounds, args.bf16))
        if args.bf16:
            result["bf16_error"] = bf16_error(model, images(args.data, args.error_images), args.samples)
        if args.breakdown:
            result["breakdown"] = breakdown(model, x, args.samples, args.rounds)
    result["load_average"] = {"before": load_before, "after": os.getloadavg()}
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
