"""Score a converged Fashion-MNIST run for the best-likelihood table and ship it under ``benchmarks/models/NAME``.

    python benchmarks/best_likelihoods.py RUN NAME [--nll-samples 5000]

Copies ``RUN/config.json``, ``RUN/model.safetensors`` (the best validation epoch) and
``RUN/train.yaml`` (the data set and its binarisation, which ``vaekit eval`` follows) to
``benchmarks/models/NAME/``, then measures, as ``vaekit eval benchmarks/models/NAME
--nll-samples 5000`` does: test log p(x) with K importance samples on all 10 000 statically
binarised test images (seed 0), with its standard error; and the check the test suite
repeats (``tests/test_shipped_likelihood_models.py``): the mean on the first 200 test images
at K = 500. Writes ``benchmarks/models/NAME/likelihood.json`` (with the run's epochs, best
epoch, wall time and validation curve) and rewrites ``benchmarks/results/best_likelihoods.md``
from every shipped model's JSON. NAME is one of the table's rows: vae_gated, vamp_vae,
hvae_vamp, best.

    python benchmarks/best_likelihoods.py --progress vamp_vae=runs/vamp_vae --progress hvae_vamp=runs/hvae_vamp

records runs still training (epochs so far, best validation ELBO, wall time, validation curve) in
``benchmarks/results/best_likelihoods_progress.json`` and redraws the table and curves with them
(dashed), until they are shipped.

    python benchmarks/best_likelihoods.py --select hvae_vamp=runs/a,runs/b,benchmarks/models/hvae_vamp

chooses among candidate models of one row (run folders, or a shipped model) by their validation log p(x)
(K = ``--select-samples`` importance samples on the 6 000 validation images of the training runs' split,
binarised as ``fit`` binarises them, the same random numbers for every candidate), not by the one-sample
validation ELBO each run selected its epoch on, whose noise (±0.05 nats) is as large as the differences
between models on a plateau. It writes ``benchmarks/results/best_likelihoods_selection.json``; the test set
is scored only for the model shipped.

    python benchmarks/best_likelihoods.py --soup hvae_vamp=runs/a,runs/b,runs/c

scores uniform weight averages ("model soups") of the first 2, 3, ... candidates against the first, the
same way, and records them beside the ranking.

A run that continues another from one of its models (``vaekit train ... --init-from SOURCE``, e.g. at a
lower learning rate) is summarised with ``--continues NAME=SOURCE@EPOCH`` (a chain of phases:
``NAME=FIRST@EPOCH,SECOND@EPOCH``): its epochs, wall time and curve then include SOURCE's up to EPOCH.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch
import yaml

import vaekit
from vaekit.data import load_fashion_mnist, static_binarize

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "benchmarks" / "models"
PUBLISHED = {  # Norouzi et al. 2020 (Exemplar VAE), dynamically binarised Fashion-MNIST, K = 5000
    "vae_gated": ("VAE, Gaussian prior, gated MLP, z = 40", -228.70),
    "vamp_vae": ("VampPrior", -227.35),
    "hvae_vamp": ("HVAE (two stochastic layers) + VampPrior", -226.72),
    "best": ("ConvHVAE + VampPrior", -224.67),
}
TARGETS = {"vae_gated": -228.70, "vamp_vae": -227.35, "hvae_vamp": -226.72, "best": -225.0}
PROGRESS = ROOT / "benchmarks" / "results" / "best_likelihoods_progress.json"
SELECTION = ROOT / "benchmarks" / "results" / "best_likelihoods_selection.json"
CHECK_IMAGES, CHECK_SAMPLES = 200, 500


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", help="the run folder to ship (leave out, with --table, to redraw the table only)")
    parser.add_argument("name", nargs="?", choices=sorted(PUBLISHED))
    parser.add_argument("--table", action="store_true", help="only rewrite the table and curves from the shipped models")
    parser.add_argument("--nll-samples", type=int, default=5000)
    parser.add_argument("--progress", action="append", default=[], metavar="NAME=RUN",
                        help="record a run still training for row NAME (repeatable), then redraw the table")
    parser.add_argument("--continues", action="append", default=[], metavar="NAME=SOURCE@EPOCH[,SOURCE@EPOCH...]",
                        help="row NAME's run started (--init-from) from the model run SOURCE kept at EPOCH (a chain: each "
                             "phase from the one before): its epochs, wall time and curve include SOURCE's up to EPOCH (repeatable)")
    parser.add_argument("--select", metavar="NAME=RUN,RUN...", help="rank candidate models of row NAME by validation log p(x)")
    parser.add_argument("--select-samples", type=int, default=1000, help="K of the validation log p(x) of --select and --soup")
    parser.add_argument("--soup", metavar="NAME=RUN,RUN...", help="score uniform weight averages of the first 2, 3, ... candidates "
                        "(best first) against the first, on validation log p(x)")
    args = parser.parse_args()
    if args.select:
        select(args.select, args.select_samples)
        return
    if args.soup:
        soups(args.soup, args.select_samples)
        return
    continues = parse_continues(args.continues)
    if args.progress:
        record_progress(args.progress, continues)
    if args.table or args.run is None:
        write_table()
        return
    run, out = Path(args.run), MODELS / args.name
    out.mkdir(parents=True, exist_ok=True)
    for f in ("config.json", "model.safetensors"):
        shutil.copyfile(run / f, out / f)
    settings = ship_settings(run, out)
    model = vaekit.load(out)
    x = static_binarize(load_fashion_mnist("test").x, seed=0)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    ll = vaekit.log_likelihood(model, x, num_samples=args.nll_samples)
    seconds = time.perf_counter() - t0
    torch.manual_seed(0)
    check = float(vaekit.log_likelihood(model, x[:CHECK_IMAGES], num_samples=CHECK_SAMPLES).mean())
    row = {
        "name": args.name, "model": model.config["model"], "published": PUBLISHED[args.name][1], "target": TARGETS[args.name],
        "test_log_likelihood": float(ll.mean()), "standard_error": float(ll.std() / len(ll) ** 0.5), "nll_samples": args.nll_samples,
        "num_examples": len(ll), "eval_seconds": seconds,
        "first_200_k500": check,
        **run_summary(run, continues.get(args.name)),
        "train_yaml": settings,
        **_selection(args.name, args.run),
    }
    (out / "likelihood.json").write_text(json.dumps(row, indent=2))
    print(f"{args.name}: test log p(x) {row['test_log_likelihood']:.2f} ± {row['standard_error']:.2f} (K={args.nll_samples}); "
          f"first 200 at K=500: {check:.2f}; best epoch {row['best_epoch']} of {row['epochs']}")
    write_table()


def validation_images(seed: int = 0, val_fraction: float = 0.1) -> torch.Tensor:
    """The validation images of the table's runs: ``vaekit train``'s split of the Fashion-MNIST training set
    (``--val-fraction 0.1``, ``--seed 0``), binarised once as ``fit`` binarises a validation set."""
    from vaekit.data import train_val_split

    _, val = train_val_split(load_fashion_mnist("train"), val_fraction, seed=seed)
    return static_binarize(val.x, seed=seed)


def select(spec: str, samples: int) -> None:
    """Rank the candidates of ``NAME=RUN,RUN...`` by mean validation log p(x), K = ``samples``, seed 0 for each."""
    name, _, runs = spec.partition("=")
    if name not in PUBLISHED or not runs:
        raise SystemExit(f"--select takes NAME=RUN,RUN... with NAME one of {', '.join(PUBLISHED)}, got {spec!r}")
    x = validation_images()
    rows = []
    for run in runs.split(","):
        t0 = time.perf_counter()
        ll = validation_log_likelihood(vaekit.load(run), x, samples)
        rows.append({"run": run, "val_log_likelihood": float(ll.mean()), "standard_error": float(ll.std() / len(ll) ** 0.5),
                     "seconds": time.perf_counter() - t0, "values": ll})
        print(f"{run}: validation log p(x) {rows[-1]['val_log_likelihood']:.3f} (K={samples}, {len(ll)} images)", flush=True)
    best = max(rows, key=lambda r: r["val_log_likelihood"])
    for r in rows:  # paired over the same images: the difference from the best, and its standard error
        d = r.pop("values") - best["values"] if r is not best else None
        r["minus_best"], r["minus_best_se"] = (0.0, 0.0) if d is None else (float(d.mean()), float(d.std() / len(d) ** 0.5))
    best.pop("values", None)
    selections = json.loads(SELECTION.read_text()) if SELECTION.exists() else {}
    selections[name] = {**selections.get(name, {}), "samples": samples, "images": len(x), "chosen": best["run"],
                        "recorded": time.strftime("%Y-%m-%d %H:%M"), "candidates": rows}  # a --soup record stays
    SELECTION.write_text(json.dumps(selections, indent=2))
    print(f"{name}: {best['run']} has the highest validation log p(x) ({best['val_log_likelihood']:.3f})")


def validation_log_likelihood(model: vaekit.LatentVariableModel, x: torch.Tensor, samples: int) -> torch.Tensor:
    """log p(x) of each validation image, K = ``samples``, seed 0: every candidate sees the same random numbers."""
    torch.manual_seed(0)
    return vaekit.log_likelihood(model, x, num_samples=samples)


def uniform_soup(runs: list[str]) -> vaekit.LatentVariableModel:
    """The first run's model with every floating-point tensor replaced by its mean over the runs' models
    (a uniform "model soup", Wortsman et al. 2022; the runs must share one configuration)."""
    model = vaekit.load(runs[0])
    states = [model.state_dict(), *(vaekit.load(run).state_dict() for run in runs[1:])]
    model.load_state_dict({key: torch.stack([state[key].double() for state in states]).mean(0).to(value.dtype)
                           if value.is_floating_point() else value for key, value in states[0].items()})
    return model


def soups(spec: str, samples: int) -> None:
    """For ``NAME=RUN,RUN...`` (best first): validation log p(x) of the uniform soups of the first 2, 3, ...
    runs, each paired against the first run on the same images and random numbers; recorded beside the row's
    ``--select`` ranking in ``benchmarks/results/best_likelihoods_selection.json``."""
    name, _, runs = spec.partition("=")
    runs = runs.split(",")
    if name not in PUBLISHED or len(runs) < 2:
        raise SystemExit(f"--soup takes NAME=RUN,RUN... (two runs or more) with NAME one of {', '.join(PUBLISHED)}, got {spec!r}")
    x = validation_images()
    first = validation_log_likelihood(vaekit.load(runs[0]), x, samples)
    rows = []
    for n in range(2, len(runs) + 1):
        d = validation_log_likelihood(uniform_soup(runs[:n]), x, samples) - first
        rows.append({"runs": runs[:n], "val_log_likelihood": float((first + d).mean()), "minus_first": float(d.mean()),
                     "minus_first_se": float(d.std() / len(d) ** 0.5)})
        print(f"soup of {n}: validation log p(x) {rows[-1]['val_log_likelihood']:.3f}, {rows[-1]['minus_first']:+.4f} "
              f"± {rows[-1]['minus_first_se']:.4f} against {runs[0]}", flush=True)
    selections = json.loads(SELECTION.read_text()) if SELECTION.exists() else {}
    selections.setdefault(name, {})["soups"] = {"samples": samples, "images": len(x), "first": runs[0],
                                                "first_val_log_likelihood": float(first.mean()), "recorded": time.strftime("%Y-%m-%d %H:%M"),
                                                "soups": rows}
    SELECTION.write_text(json.dumps(selections, indent=2))


def _selection(name: str, run: str) -> dict:
    """The ``--select`` ranking that chose ``run`` for row ``name``, when one did."""
    chosen = json.loads(SELECTION.read_text()).get(name) if SELECTION.exists() else None
    return {"selection": chosen} if chosen and "chosen" in chosen and Path(chosen["chosen"]).resolve() == Path(run).resolve() else {}


def ship_settings(run: Path, out: Path) -> str:
    """Copy the run's training settings (``train.yaml``, less its output folder) beside the shipped model:
    ``vaekit eval`` reads from them the data set and that it was binarised (the test set is then
    binarised once, seed 0, as in the table), so ``vaekit eval benchmarks/models/NAME`` scores the row."""
    settings = yaml.safe_load((run / "train.yaml").read_text())
    settings.pop("out", None)
    text = yaml.safe_dump(settings, sort_keys=False)
    (out / "train.yaml").write_text(text)
    return text


def training_summary(history: list[dict]) -> dict:
    """Epochs, best validation epoch and bound, wall time and validation curve of a run's records (as
    :func:`run_summary` merges them: each with its cumulative ``elapsed_s``).

    The bound is the one the run trains on: the IWAE bound (``val/iwae``) for a run on it (``num_samples`` > 1,
    the ``best`` row), the ELBO otherwise; its best epoch is the one early stopping keeps."""
    key = "val/iwae" if "val/iwae" in history[-1] else "val/elbo"
    best = max((r for r in history if key in r), key=lambda r: r[key])
    return {"epochs": history[-1]["epoch"], "best_epoch": best["epoch"], "bound": key.removeprefix("val/"), "best_val_elbo": best[key],
            "train_seconds": history[-1]["elapsed_s"],
            "still_improving": best["epoch"] > history[-1]["epoch"] - 50,
            "val_elbo_curve": [(r["epoch"], r.get(key, r["val/elbo"])) for r in history]}


def parse_continues(pairs: list[str]) -> dict[str, list[tuple[Path, int]]]:
    """``--continues NAME=SOURCE@EPOCH[,SOURCE@EPOCH...]`` as {NAME: [(SOURCE, EPOCH), ...]}, earliest run first."""
    out = {}
    for pair in pairs:
        name, _, rest = pair.partition("=")
        chain = []
        for link in rest.split(","):
            source, _, epoch = link.rpartition("@")
            if name not in PUBLISHED or not source or not epoch.isdigit():
                raise SystemExit(f"--continues takes NAME=SOURCE@EPOCH[,SOURCE@EPOCH...] with NAME one of {', '.join(PUBLISHED)}, "
                                 f"got {pair!r}")
            chain.append((Path(source), int(epoch)))
        out[name] = chain
    return out


def _history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _phase_settings(run: Path) -> dict:
    """The learning rate of a run, and its weight-averaging decay when it had one (``--ema``)."""
    settings = yaml.safe_load((run / "train.yaml").read_text())
    return {"lr": float(settings["lr"]), **({"ema": settings["ema"]} if settings.get("ema") else {})}


def _epoch_seconds(records: list[dict]) -> list[float]:
    """Wall seconds of each epoch of one run: the step of its cumulative ``elapsed_s`` from the epoch before
    (the training speed, 54 000 images at ``samples_per_s``, where either record has none). A step over 3× the
    run's median (the run was paused, e.g. while other rows were scored) counts as the median."""
    steps, before = [], None
    for r in records:
        now = r.get("elapsed_s")
        steps.append(now - before if now and before else 54000 / r["samples_per_s"])
        before = now
    typical = sorted(steps)[len(steps) // 2]
    return [step if step <= 3 * typical else typical for step in steps]


def run_summary(run: Path, sources: list[tuple[Path, int]] | None = None) -> dict:
    """:func:`training_summary` of ``run``, preceded, for a run that continues others (``--init-from``, in
    phases), by each source run's epochs up to the one whose model the next phase started from; with each
    phase's run, epochs, learning rate and weight-averaging decay (``phases``)."""
    history: list[dict] = []
    phases = []
    for folder, epoch in [*(sources or []), (run, None)]:
        own = _history(folder)
        if epoch is not None:
            own = [r for r in own if r["epoch"] <= epoch]
            if len(own) != epoch:
                raise SystemExit(f"{folder} has no epoch {epoch} to continue from")
        offset_epoch = history[-1]["epoch"] if history else 0
        offset_time = history[-1]["elapsed_s"] if history else 0.0  # every merged record has its time
        for r, seconds in zip(own, _epoch_seconds(own)):
            offset_time += seconds
            history.append({**r, "epoch": offset_epoch + r["epoch"], "elapsed_s": offset_time})
        phases.append({"run": str(folder), "epochs": len(own), **_phase_settings(folder)})
    return {**training_summary(history), "phases": phases}


def record_progress(pairs: list[str], continues: dict[str, list[tuple[Path, int]]]) -> None:
    progress = json.loads(PROGRESS.read_text()) if PROGRESS.exists() else {}
    for pair in pairs:
        name, _, run = pair.partition("=")
        if name not in PUBLISHED or not run:
            raise SystemExit(f"--progress takes NAME=RUN with NAME one of {', '.join(PUBLISHED)}, got {pair!r}")
        progress[name] = {"run": run, "recorded": time.strftime("%Y-%m-%d %H:%M"), **run_summary(Path(run), continues.get(name))}
    PROGRESS.write_text(json.dumps(progress, indent=2))


def _in_progress() -> dict:
    """Rows still training (recorded with --progress) that have no shipped model yet."""
    progress = json.loads(PROGRESS.read_text()) if PROGRESS.exists() else {}
    return {name: r for name, r in progress.items() if not (MODELS / name / "likelihood.json").exists()}


def _bound_name(row: dict) -> str:
    return "IWAE bound" if row.get("bound") == "iwae" else "ELBO"


def write_table() -> None:
    lines = ["| model | published | target | vaekit, K = 5000 | epochs (best) | train time | status |", "|---|---|---|---|---|---|---|"]
    training = _in_progress()
    for name in PUBLISHED:
        path = MODELS / name / "likelihood.json"
        if name in training:
            r = training[name]
            trend = "still improving" if r["still_improving"] else "flat for 50 epochs"
            lines.append(f"| `{name}` | {PUBLISHED[name][1]:.2f} | ≥ {TARGETS[name]:.2f} | training | {r['epochs']} so far "
                         f"({r['best_epoch']}) | {r['train_seconds'] / 3600:.1f} h so far | best validation {_bound_name(r)} "
                         f"{r['best_val_elbo']:.2f}, {trend} ({r['recorded']}) |")
            continue
        if not path.exists():
            lines.append(f"| `{name}` | {PUBLISHED[name][1]:.2f} | ≥ {TARGETS[name]:.2f} | not trained yet | | | |")
            continue
        r = json.loads(path.read_text())
        met = r["test_log_likelihood"] >= r["target"]
        status = "reached" if met else f"missed by {r['target'] - r['test_log_likelihood']:.2f}"
        status += f"; {curve_trend(r)}"
        lines.append(f"| `{name}` ({r['model']}) | {r['published']:.2f} | ≥ {r['target']:.2f} | **{r['test_log_likelihood']:.2f} ± "
                     f"{r['standard_error']:.2f}** | {r['epochs']} ({r['best_epoch']}) | {r['train_seconds'] / 3600:.1f} h | {status} |")
    (ROOT / "benchmarks" / "results" / "best_likelihoods.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot_curves()


TREND_EPOCHS = 20


def curve_trend(row: dict) -> str:
    """What the validation curve says at the shipped model: the slope of the bound over the last
    :data:`TREND_EPOCHS` epochs of the final phase (least squares, ± its standard error, per 10 epochs),
    "rising" when it exceeds twice its standard error and "flat" otherwise; and, when ``--select`` chose the
    model, how close its candidates came on validation log p(x) (several within a few hundredths: a plateau)."""
    from scipy.stats import linregress

    final = (row.get("phases") or [{"epochs": row["epochs"]}])[-1]["epochs"]
    epochs, bound = zip(*row["val_elbo_curve"][-min(final, TREND_EPOCHS):])
    parts = []
    if len(epochs) >= 3:
        fit = linregress(epochs, bound)
        word = "rising" if fit.slope > 2 * fit.stderr else "flat"
        parts.append(f"{word}: {10 * fit.slope:+.2f} ± {10 * fit.stderr:.2f} nats per 10 epochs over the last {len(epochs)}")
    chosen = row.get("selection")
    if chosen and len(chosen["candidates"]) > 1:
        spread = -min(c["minus_best"] for c in chosen["candidates"])
        parts.append(f"{len(chosen['candidates'])} candidates within {spread:.2f} nats on validation log p(x)")
    return "; ".join(parts) if parts else "too few epochs to say"


def _curve_note(row: dict) -> str:
    phases = row.get("phases") or []
    if len(phases) < 2:
        return "; IWAE bound" if row.get("bound") == "iwae" else ""
    starts, epoch = [], 0
    for before, after in zip(phases, phases[1:]):
        epoch += before["epochs"]
        starts.append(f"{after['lr']:g}{'+EMA' if after.get('ema') else ''} from {epoch}")
    return "; lr " + ", ".join(starts) + (", IWAE bound" if row.get("bound") == "iwae" else "")


def plot_curves() -> None:
    """Validation bound per epoch of every shipped or training row, in one PNG (``benchmarks/results/best_likelihoods_curves.png``)."""
    from vaekit.viz._figure import new_figure, save_figure

    fig, axes = new_figure(1, 1, figsize=(7.2, 5.4))
    ax = axes.ravel()[0]
    training = _in_progress()
    for colour, name in zip(("C0", "C1", "C2", "C3"), PUBLISHED):
        path = MODELS / name / "likelihood.json"
        if path.exists():
            r = json.loads(path.read_text())
            epochs, elbo = zip(*r["val_elbo_curve"])
            ax.plot(epochs, elbo, color=colour, label=f"{name}: test log p(x) {r['test_log_likelihood']:.2f} (K = 5000){_curve_note(r)}")
            ax.axvline(r["best_epoch"], color=colour, linestyle=":", linewidth=1)
        elif name in training:
            r = training[name]
            epochs, elbo = zip(*r["val_elbo_curve"])
            ax.plot(epochs, elbo, color=colour, linestyle="--", label=f"{name}: training, epoch {r['epochs']}{_curve_note(r)}")
    ax.set_ylim(-240, -224)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation bound (nats)")
    ax.set_title("Fashion-MNIST best-likelihood runs\n(dotted: best epoch; dashed: still training)", fontsize=10)
    ax.legend(fontsize=6.5, loc="lower right")
    save_figure(fig, ROOT / "benchmarks" / "results" / "best_likelihoods_curves.png")


if __name__ == "__main__":
    main()
