"""Running a suite: one run folder per model and seed, resumed or skipped, with progress and one table at the end.

Every model trains in ``OUT/<entry>/seed<k>`` through ``vaekit.fit(..., out_dir=folder)``,
so a killed suite resumes each model from its last checkpoint. Beside the training files a
folder holds two JSON files, written atomically:

* ``bench_run.json``: what trained the folder (suite, entry, body, the training budget,
  seed), written before training; a later run with other training settings is refused
  instead of silently continuing someone else's model;
* ``bench_result.json``: the model's measurements and the measurement settings (test
  size, K, classifier digest, ...). A model whose results were measured with the current
  settings is skipped; one measured with other settings is measured again (its training is
  complete, so ``fit`` returns at once).

The suite's table goes to ``OUT/<suite>.md`` and everything to ``OUT/<suite>.json``; the
header names the exact command, the budget and the machine (CPUs, threads, load average).
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch

from vaekit._io import atomic_write_text
from vaekit.bench.spec import Budget, Context, Entry, Suite, json_values
from vaekit.errors import ConfigError, VaekitError

__all__ = ["Plan", "run_suite", "run_folder", "RUN_FILE", "RESULT_FILE", "machine", "check_run_folders"]

RUN_FILE = "bench_run.json"
RESULT_FILE = "bench_result.json"


@dataclass
class Plan:
    """A suite with its budget, the entries to run, the output folder and the suite's options (e.g. ``classifier``)."""

    suite: Suite
    budget: Budget
    entries: list[Entry]
    out: Path
    quick: bool = False
    options: dict[str, Any] = field(default_factory=dict)


def run_folder(out: Path, entry: Entry, seed: int) -> Path:
    """``OUT/<entry>/seed<k>``: where one model of a suite trains and keeps its results."""
    return Path(out) / entry.name / f"seed{seed}"


def machine() -> dict[str, Any]:
    """The conditions a number was measured under: CPUs, threads, load average, torch, platform."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1_5_15": [round(v, 2) for v in load],
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "torch": torch.__version__,
        "platform": platform.platform(terse=True),
        "python": platform.python_version(),
    }


def _training_record(plan: Plan, entry: Entry, seed: int) -> dict[str, Any]:
    budget = plan.budget.record()
    training = {k: budget[k] for k in plan.suite.training_keys if k in budget}
    training.update({k: v for k, v in budget["extra"].items() if k in plan.suite.training_keys})
    return {"suite": plan.suite.name, "entry": entry.record(), "body": json_values(dict(plan.suite.body)), "budget": training, "seed": seed}


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def check_run_folders(plan: Plan) -> None:
    """Refuse, before anything is written, a run folder that holds a model trained with other settings."""
    for entry in plan.entries:
        for seed in range(plan.budget.seeds):
            folder = run_folder(plan.out, entry, seed)
            if folder.exists() and not folder.is_dir():
                raise ConfigError(f"{folder} is a file, but the suite needs a run folder there; move it or choose another --out")
            saved_path = folder / RUN_FILE
            if not saved_path.exists():
                if (folder / "checkpoint.safetensors").exists():
                    raise ConfigError(f"{folder} holds a training run not started by `vaekit bench` ({RUN_FILE} is missing); "
                                      "choose another --out or remove that folder")
                continue
            saved = _read_json(saved_path)
            if saved is None:
                raise ConfigError(f"{saved_path} is damaged (not JSON); remove the folder {folder} to train that model again")
            wanted = json.loads(json.dumps(_training_record(plan, entry, seed)))
            if saved != wanted:
                raise ConfigError(f"{folder} was trained with other settings ({_difference(saved, wanted) or f'see {saved_path}'}); "
                                  "use another --out, the same flags as before, or remove that folder to train it again")


def _difference(saved: dict[str, Any], wanted: dict[str, Any]) -> str:
    """``part key: old then, new now`` for the first differing budget, body or entry value."""
    for part in ("budget", "body", "entry"):
        a, b = saved.get(part) or {}, wanted.get(part) or {}
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return f"{part} {key}: {a.get(key)!r} then, {b.get(key)!r} now"
    return ""


def _clock(seconds: float) -> str:
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}:{m:02d}:{s:02d}" if hours else f"{m}:{s:02d}"


def run_suite(plan: Plan, *, command: str, say: Callable[[str], None], quiet: bool = False) -> dict[str, Any]:
    """Train and measure every entry × seed of ``plan`` (resuming or skipping finished ones); write the table.

    Arguments:
        plan: the suite, budget, entries, output folder (see :func:`vaekit.bench.make_plan`).
        command: the command line that produced the table (its header names it).
        say: where the progress lines go (one per model start and finish, with elapsed time).
        quiet: no progress bars from training (the lines still come).

    Returns the suite's JSON record (also written to ``OUT/<suite>.json``), with ``failed``
    naming the models whose training or measurement raised a vaekit error (their rows say so).
    """
    check_run_folders(plan)
    started = time.perf_counter()
    conditions = machine()
    context = Context(plan.budget, plan.suite.body, plan.out, quiet, say, items=dict(plan.options))
    plan.out.mkdir(parents=True, exist_ok=True)
    say(f"{plan.suite.name}: {len(plan.entries)} models × {plan.budget.seeds} seed(s) -> {plan.out} "
        f"(load average {conditions['load_average_1_5_15'][0]:.2f} on {conditions['cpus']} CPUs, {conditions['torch_threads']} threads)")
    plan.suite.prepare(context)
    # what decides a model's measurements (the number of seeds does not: seed 0's results stay valid when seeds are added)
    measure_record = {"budget": {k: v for k, v in plan.budget.record().items() if k != "seeds"},
                      "provenance": json.loads(json.dumps(context.provenance, default=str))}
    jobs = [(entry, seed) for entry in plan.entries for seed in range(plan.budget.seeds)]
    results: dict[str, list[dict[str, Any]]] = {entry.name: [] for entry in plan.entries}
    failed: dict[str, str] = {}
    skipped = 0
    for i, (entry, seed) in enumerate(jobs, 1):
        folder = run_folder(plan.out, entry, seed)
        tag = f"[{i}/{len(jobs)}] {entry.name} seed {seed}"
        saved = _read_json(folder / RESULT_FILE)
        if saved is not None and saved.get("measure") == measure_record and "results" in saved:
            results[entry.name].append(saved["results"])
            skipped += 1
            say(f"{_clock(time.perf_counter() - started)} {tag}: skipped (done: {folder / RESULT_FILE})")
            continue
        if saved is not None:
            state = "measuring again (other measurement settings than last time; training resumes from its checkpoint)"
        elif (folder / "checkpoint.safetensors").exists():
            state = "resuming"
        else:
            state = "started"
        say(f"{_clock(time.perf_counter() - started)} {tag}: {state} in {folder}")
        atomic_write_text(folder / RUN_FILE, json.dumps(_training_record(plan, entry, seed), indent=2) + "\n")
        t0 = time.perf_counter()
        try:
            measured = plan.suite.run(entry, seed, context, folder)
        except VaekitError as e:
            failed.setdefault(entry.name, f"seed {seed}: {e}")
            say(f"{_clock(time.perf_counter() - started)} {tag}: FAILED after {time.perf_counter() - t0:.1f} s: {e}")
            continue
        measured = {"seed": seed, **measured, "seconds": round(time.perf_counter() - t0, 1)}
        record = {"suite": plan.suite.name, "entry": entry.record(), "seed": seed, "measure": measure_record,
                  "results": json.loads(json.dumps(measured)), "machine": machine(),
                  "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        atomic_write_text(folder / RESULT_FILE, json.dumps(record, indent=2) + "\n")
        results[entry.name].append(record["results"])
        say(f"{_clock(time.perf_counter() - started)} {tag}: done in {time.perf_counter() - t0:.1f} s")
    context.items["failed"] = failed
    rows = [(entry, results[entry.name]) for entry in plan.entries]
    table = plan.suite.table(rows, context)
    seconds = round(time.perf_counter() - started, 1)
    header = _header(plan, command, conditions, context, seconds, skipped, len(jobs))
    markdown = header + "\n\n" + table.rstrip() + "\n"
    summary = {
        "suite": plan.suite.name, "title": plan.suite.title, "command": command, "quick": plan.quick,
        "budget": plan.budget.record(), "body": json.loads(json.dumps(dict(plan.suite.body))),
        "entries": [e.record() for e in plan.entries], "results": results, "failed": failed,
        "provenance": measure_record["provenance"], "machine": conditions, "seconds": seconds,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), "table": markdown,
    }
    atomic_write_text(plan.out / f"{plan.suite.name}.md", markdown)
    atomic_write_text(plan.out / f"{plan.suite.name}.json", json.dumps(summary, indent=2) + "\n")
    say(f"{plan.suite.name}: {len(jobs)} models in {_clock(seconds)}; table: {plan.out / (plan.suite.name + '.md')}")
    return summary


def _header(plan: Plan, command: str, conditions: dict[str, Any], context: Context, seconds: float, skipped: int, total: int) -> str:
    b = plan.budget
    budget = (f"epochs {b.epochs}, batch {b.batch_size}, Adam {b.lr:g}, "
              f"{'all' if b.train_size is None else b.train_size} training images, "
              f"{'all' if b.test_size is None else b.test_size} test images, {b.seeds} seed(s)"
              + (f", K = {b.nll_samples}" if b.nll_samples else ""))
    body = ", ".join(f"{k}={list(v) if isinstance(v, tuple) else v}" for k, v in plan.suite.body.items())
    load = conditions["load_average_1_5_15"]
    lines = [
        f"**{plan.suite.title}**",
        "",
        f"Command: `{command}`",
        "",
        f"Budget: {budget}. Body: {body}.",
        "",
        f"Machine: {conditions['cpus']} CPUs ({conditions['device']}), {conditions['torch_threads']} torch threads, "
        f"load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} at the start, torch {conditions['torch']}, "
        f"{conditions['platform']}; this invocation took {_clock(seconds)}"
        + (f" ({skipped} of {total} models were measured by an earlier invocation and skipped)." if skipped else "."),
    ]
    for key, value in context.provenance.items():
        lines += ["", f"{key}: {value}"]
    return "\n".join(lines)
