"""Data-parallel training with torchrun (2 CPU processes, gloo): one model, rank 0 writes."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from safetensors.torch import load_file

import vaekit

ROOT = Path(__file__).resolve().parents[2]


def test_torchrun_two_processes_train_one_model(tmp_path):
    script = tmp_path / "train_ddp.py"
    script.write_text(textwrap.dedent(
        f"""
        import json, os, torch, vaekit
        from safetensors.torch import save_file
        torch.set_num_threads(1)
        torch.manual_seed(0)
        model = vaekit.create("vae", input_shape=(1, 8, 8), latent_dim=3, hidden_dims=(32,), arch="mlp")
        x = vaekit.data.load_digits("train").x[:512]
        result = vaekit.fit(model, x[:448], x[448:], epochs=2, batch_size=32, quiet=True, out_dir={str(tmp_path / "run")!r})
        rank = os.environ["RANK"]
        save_file({{k: v.contiguous() for k, v in model.state_dict().items()}}, {str(tmp_path)!r} + f"/weights{{rank}}.safetensors")
        with open({str(tmp_path)!r} + f"/history{{rank}}.json", "w") as f:
            f.write(json.dumps(result.history))
        """
    ))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    done = subprocess.run(torchrun, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-6000:]
    w0 = load_file(tmp_path / "weights0.safetensors")
    w1 = load_file(tmp_path / "weights1.safetensors")
    for k in w0:  # DDP keeps the replicas identical
        torch.testing.assert_close(w0[k], w1[k], msg=k)
    h0 = json.loads((tmp_path / "history0.json").read_text())
    h1 = json.loads((tmp_path / "history1.json").read_text())
    assert [r["val/loss"] for r in h0] == [r["val/loss"] for r in h1]  # every process takes the same decisions
    assert h0[-1]["step"] == 2 * 7  # 448 examples / 2 processes / 32 per batch = 7 steps per epoch
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]  # written once, by rank 0
    loaded = vaekit.load(tmp_path / "run")
    torch.testing.assert_close(loaded.state_dict()["decoder.net.0.weight"], w0["decoder.net.0.weight"])
