"""Data-parallel training with torchrun (2 CPU processes, gloo), checked against one process.

What ``vaekit.fit`` promises under torchrun (see ``fit``'s docstring): the model is wrapped in
DistributedDataParallel, every process draws the same permutation of the training set each
epoch and takes its shard ``order[rank·S : (rank+1)·S]`` (S = n // world size), and walks it in
batches of ``batch_size`` (per process). Step i of a 2-process run therefore averages the
gradients of the per-process mean losses on rank 0's i-th batch and rank 1's i-th batch; when
the two batches have the same size (they do: both shards have S examples) that is the
gradient of the mean loss over their union. One process that takes exactly those unions as
its batches (batch size 2 × ``batch_size``) must reach the same weights, to float tolerance.

The model is the deterministic autoencoder ``ae`` on purpose: a VAE draws its
reparameterisation noise from a per-process seed (``seed + rank``), which one process cannot
reproduce for a union of two batches, and resuming re-seeds that noise. With ``ae`` the only
randomness is the shared permutation, so the comparison is exact up to the summation order
of the gradient all-reduce.

Each torchrun launch starts three Python processes and takes 5–30 s on two shared cores:
the module is marked slow (it stays in the default run).
"""

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import vaekit
from vaekit.train.checkpoint import CHECKPOINT_FILE, read_trainer_state

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
N, PER_RANK_BATCH, EPOCHS, SEED, LR = 400, 25, 2, 0, 1e-3
SHAPE = dict(input_shape=(1, 8, 8), latent_dim=3, hidden_dims=(32,), arch="mlp")
"""The model of every run: `vaekit train ae --latent-dim 3 --hidden-dims 32 --arch mlp` on the 8×8 digits."""
CLI_ARGS = ["train", "ae", "--epochs", str(EPOCHS), "--batch-size", str(PER_RANK_BATCH), "--latent-dim", "3", "--hidden-dims", "32",
            "--arch", "mlp", "--val-fraction", "0", "--nll-samples", "0", "--device", "cpu", "--seed", str(SEED)]
WHOLE_BATCH_MODELS = ("info_vae", "swae", "beta_tc_vae", "dip_vae")
"""Objectives whose penalty needs the whole batch: MMD, sliced Wasserstein, total correlation, DIP covariance."""
GRAD_BATCH = 32
EMA = 0.8


def _digits() -> torch.Tensor:
    return vaekit.data.load_digits("train").x[:N]


def _torchrun(args: list[str], cwd: Path, *launcher: str) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node 2 [launcher flags] args`` (torchrun is ``python -m torch.distributed.run``)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *launcher, *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _single_process_reference(x: torch.Tensor, binarize: bool = False, ema: float | None = None) -> dict[str, torch.Tensor]:
    """The 2-process run done by one process with plain Adam: each step's batch is the union of
    the two ranks' i-th batches (rank 0's first), each epoch's permutation the one ``fit`` draws.
    With ``binarize``: the file-backed path's dynamic binarisation, uniforms for the whole global
    batch drawn from the shared generator after the epoch's permutation. With ``ema``: the
    moving average θ̄ ← β θ̄ + (1 − β) θ of the weights after each step, from the initial ones."""
    torch.manual_seed(SEED)
    model = vaekit.create("ae", **SHAPE).train()
    average = {k: v.detach().clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    generator = torch.Generator().manual_seed(SEED)
    shard = N // 2
    for _ in range(EPOCHS):
        order = torch.randperm(N, generator=generator)
        shards = [order[r * shard : (r + 1) * shard] for r in range(2)]
        for i in range(math.ceil(shard / PER_RANK_BATCH)):
            index = torch.cat([s[i * PER_RANK_BATCH : (i + 1) * PER_RANK_BATCH] for s in shards])
            xb = x[index]
            if binarize:
                xb = (torch.rand(xb.shape, generator=generator) < xb).float()
            loss = model.loss(xb)["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            average = {k: (ema or 0) * average[k] + (1 - (ema or 0)) * v.detach() for k, v in model.state_dict().items()}
    return average


TRAIN_SCRIPT = """
import json, os, sys, torch, vaekit
from safetensors.torch import save_file
torch.set_num_threads(1)
shape, out, rank = {shape!r}, {out!r}, int(os.environ["RANK"])
x = vaekit.data.load_digits("train").x[:{n}]
torch.manual_seed({seed})
model = vaekit.create("ae", **shape)
result = vaekit.fit(model, x, epochs={epochs}, batch_size={batch}, lr={lr}, seed={seed}, quiet=True, out_dir=out + "/run")
save_file({{k: v.contiguous() for k, v in model.state_dict().items()}}, f"{{out}}/weights{{rank}}.safetensors")
torch.manual_seed({seed})  # the same run, validated and handed back as the moving average of its weights
averaged = vaekit.fit(vaekit.create("ae", **shape), x, epochs={epochs}, batch_size={batch}, lr={lr}, seed={seed}, quiet=True,
                      ema={ema}).model
save_file({{k: v.contiguous() for k, v in averaged.state_dict().items()}}, f"{{out}}/averaged{{rank}}.safetensors")
with open(f"{{out}}/history{{rank}}.json", "w") as f:
    json.dump(result.history, f)

# one DDP step of each whole-batch objective, each rank on its own batch with its own noise
group_batch = {grad_batch}
xb = x[rank * group_batch : (rank + 1) * group_batch]
saved = {{}}
for name in {whole_batch!r}:
    torch.manual_seed(0)
    m = vaekit.create(name, **shape)
    m.dataset_size = {n}
    ddp = torch.nn.parallel.DistributedDataParallel(m)
    torch.manual_seed(100 + rank)
    loss = ddp(xb)["loss"]
    loss.backward()
    saved[f"{{name}}/loss"] = loss.detach().reshape(1)
    saved.update({{f"{{name}}/grad/{{k}}": p.grad.contiguous() for k, p in m.named_parameters() if p.grad is not None}})
save_file(saved, f"{{out}}/grads{{rank}}.safetensors")

# a folder that is not shared (here: one per rank, as on two machines without a shared filesystem)
try:
    vaekit.fit(vaekit.create("ae", **shape), x, epochs=1, quiet=True, out_dir=f"{{out}}/own{{rank}}")
    message = "trained"
except vaekit.errors.ConfigError as e:
    message = str(e)
with open(f"{{out}}/own{{rank}}.txt", "w") as f:
    f.write(message)
"""


def test_two_processes_equal_one_process_over_the_same_global_batches(tmp_path):
    script = tmp_path / "train_ddp.py"
    script.write_text(textwrap.dedent(TRAIN_SCRIPT.format(
        shape=SHAPE, out=str(tmp_path), n=N, seed=SEED, epochs=EPOCHS, batch=PER_RANK_BATCH, lr=LR,
        grad_batch=GRAD_BATCH, whole_batch=WHOLE_BATCH_MODELS, ema=EMA)))
    done = _torchrun([str(script)], tmp_path)
    assert done.returncode == 0, done.stderr[-6000:]

    w0, w1 = load_file(tmp_path / "weights0.safetensors"), load_file(tmp_path / "weights1.safetensors")
    for k in w0:  # DDP keeps the replicas identical
        torch.testing.assert_close(w0[k], w1[k], rtol=0, atol=0, msg=k)
    reference = _single_process_reference(_digits())
    assert set(reference) == set(w0)
    for k in reference:
        torch.testing.assert_close(w0[k], reference[k], rtol=1e-4, atol=1e-5, msg=k)
    moved = max(float((w0[k] - v).abs().max()) for k, v in _initial_ae().items())
    assert moved > 1e-3  # the run trained: equality is not that of two untouched models
    a0, a1 = load_file(tmp_path / "averaged0.safetensors"), load_file(tmp_path / "averaged1.safetensors")
    averaged = _single_process_reference(_digits(), ema=EMA)
    for k in reference:  # the average is kept alike in every process, and is that of one process over the same batches
        torch.testing.assert_close(a0[k], a1[k], rtol=0, atol=0, msg=k)
        torch.testing.assert_close(a0[k], averaged[k], rtol=1e-4, atol=1e-5, msg=k)
    assert max(float((a0[k] - w0[k]).abs().max()) for k in w0) > 1e-4  # an average, not the last weights

    h0, h1 = (json.loads((tmp_path / f"history{r}.json").read_text()) for r in (0, 1))
    assert [r["train/loss"] for r in h0] == [r["train/loss"] for r in h1]  # one history, summed over ranks
    assert h0[-1]["step"] == EPOCHS * (N // 2 // PER_RANK_BATCH)  # 400 / 2 ranks / 25 = 8 steps per epoch
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]  # written once, by rank 0
    saved = vaekit.load(tmp_path / "run").state_dict()  # without validation the last epoch is the model
    for k in w0:
        torch.testing.assert_close(saved[k], w0[k], rtol=0, atol=0, msg=k)

    # whole-batch penalties are per rank: each rank's loss is the single-process loss of its own
    # batch (same per-rank batch, same noise), and the DDP gradient is the mean of the two
    g0, g1 = load_file(tmp_path / "grads0.safetensors"), load_file(tmp_path / "grads1.safetensors")
    x = _digits()
    for name in WHOLE_BATCH_MODELS:
        single = []
        for rank in (0, 1):
            torch.manual_seed(0)
            model = vaekit.create(name, **SHAPE)
            model.dataset_size = N
            torch.manual_seed(100 + rank)
            loss = model.loss(x[rank * GRAD_BATCH : (rank + 1) * GRAD_BATCH])["loss"]
            loss.backward()
            torch.testing.assert_close((g0, g1)[rank][f"{name}/loss"], loss.detach().reshape(1), msg=f"{name} loss of rank {rank}")
            single.append({k: p.grad for k, p in model.named_parameters() if p.grad is not None})
        keys = [k.split("/grad/")[1] for k in g0 if k.startswith(f"{name}/grad/")]
        assert keys and sorted(keys) == sorted(single[0]), name
        for k in keys:
            mean = (single[0][k] + single[1][k]) / 2
            for g in (g0, g1):
                torch.testing.assert_close(g[f"{name}/grad/{k}"], mean, rtol=1e-4, atol=1e-6, msg=f"{name} {k}")
        assert any(float((single[0][k] - single[1][k]).abs().max()) > 1e-4 for k in keys)  # the shards differ: a mean to take

    for rank in (0, 1):  # every process refuses a run folder the others do not see, before training
        assert "training processes see different contents there" in (tmp_path / f"own{rank}.txt").read_text()
        assert not (tmp_path / f"own{rank}" / CHECKPOINT_FILE).exists()


FILE_SCRIPT = """
import os, torch, vaekit
from safetensors.torch import save_file
torch.set_num_threads(1)
rank = int(os.environ["RANK"])
torch.manual_seed({seed})
model = vaekit.create("ae", **{shape!r})
data = vaekit.data.open_file_dataset({path!r})
vaekit.fit(model, data, epochs={epochs}, batch_size={batch}, lr={lr}, seed={seed}, quiet=True, binarize_data="dynamic")
save_file({{k: v.contiguous() for k, v in model.state_dict().items()}}, f"weights{{rank}}.safetensors")
"""


def test_two_processes_on_a_file_equal_one_process_with_dynamic_binarisation(tmp_path):
    """The file-backed path under torchrun: batches read through a DataLoader, binarised afresh at every
    step from the shared generator, reach the single-process weights over the same global batches."""
    np.save(tmp_path / "digits.npy", _digits().numpy())
    script = tmp_path / "train_file.py"
    script.write_text(textwrap.dedent(FILE_SCRIPT.format(seed=SEED, shape=SHAPE, path=str(tmp_path / "digits.npy"), epochs=EPOCHS,
                                                         batch=PER_RANK_BATCH, lr=LR)))
    done = _torchrun([str(script)], tmp_path)
    assert done.returncode == 0, done.stderr[-6000:]
    w0, w1 = load_file(tmp_path / "weights0.safetensors"), load_file(tmp_path / "weights1.safetensors")
    reference = _single_process_reference(_digits(), binarize=True)
    without_binarising = _single_process_reference(_digits())
    for k in reference:
        torch.testing.assert_close(w0[k], w1[k], rtol=0, atol=0, msg=k)
        torch.testing.assert_close(w0[k], reference[k], rtol=1e-4, atol=1e-5, msg=k)
    assert any(float((reference[k] - without_binarising[k]).abs().max()) > 1e-3 for k in reference)  # binarising mattered


def _initial_ae() -> dict[str, torch.Tensor]:
    torch.manual_seed(SEED)
    return vaekit.create("ae", **SHAPE).state_dict()


KILL_SCRIPT = """
import os, signal, sys, torch
from vaekit.cli.main import main
if os.environ["RANK"] == "1":  # rank 1 dies (SIGKILL) in the optimiser step {kill_at}
    steps, adam_step = [0], torch.optim.Adam.step
    def step_or_die(self, *args, **kwargs):
        steps[0] += 1
        if steps[0] == {kill_at}:
            os.kill(os.getpid(), signal.SIGKILL)
        return adam_step(self, *args, **kwargs)
    torch.optim.Adam.step = step_or_die
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("stream", [False, True], ids=["in-memory", "file-backed"])
def test_cli_under_torchrun_survives_a_lost_rank_and_resumes_to_the_same_weights(tmp_path, stream):
    """`torchrun ... -m vaekit train`: a rank killed in epoch 2 ends the run non-zero with one line
    from rank 0, the epoch-1 checkpoint intact; the same command then resumes and finishes, rank 0
    alone reporting, at the weights of the uninterrupted single-process reference."""
    np.save(tmp_path / "tiny.npy", _digits().numpy())
    args = [*CLI_ARGS, "--data", "tiny.npy", "--out", "run", *(["--stream"] if stream else [])]
    steps_per_epoch = N // 2 // PER_RANK_BATCH
    script = tmp_path / "train_or_die.py"
    script.write_text(textwrap.dedent(KILL_SCRIPT.format(kill_at=steps_per_epoch + 4)))
    # torchrun polls its workers every 0.1 s and then stops the survivors with SIGTERM; rank 0
    # reports the lost peer within milliseconds, but on a loaded test machine a longer poll
    # keeps that race out of the test (the default was checked by hand: the line comes first)
    killed = _torchrun([str(script), *args], tmp_path, "--monitor-interval", "2")
    assert killed.returncode != 0
    lost = [line for line in killed.stderr.splitlines() if "vaekit train: error:" in line]
    assert len(lost) == 1, killed.stderr[-6000:]
    assert "lost contact with another training process during epoch 2 (this is rank 0 of 2" in lost[0]
    assert "holds epoch 1, intact: re-run the same torchrun command to resume" in lost[0]
    assert "Traceback" not in lost[0]
    checkpoint = tmp_path / "run" / CHECKPOINT_FILE
    assert read_trainer_state(checkpoint)["epoch"] == 1

    resumed = _torchrun(["-m", "vaekit", *args], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-6000:]
    assert resumed.stdout.count("done: run") == 1, resumed.stdout  # rank 0 alone evaluates and reports
    assert resumed.stdout.count("resuming run from epoch 1") == 1
    assert resumed.stderr.count("training ae on tiny.npy") == 1  # ... and speaks
    assert (tmp_path / "run" / "metrics.json").is_file() and (tmp_path / "run" / "reconstructions.png").is_file()
    assert [json.loads(line)["epoch"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()] == [1, 2]

    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["model"], config["latent_dim"], config["hidden_dims"], config["arch"]) == ("ae", 3, [32], "mlp")
    final = vaekit.load(tmp_path / "run").state_dict()
    reference = _single_process_reference(_digits())
    for k in reference:  # interrupted + resumed == uninterrupted == one process over the same batches
        torch.testing.assert_close(final[k], reference[k], rtol=1e-4, atol=1e-5, msg=k)
