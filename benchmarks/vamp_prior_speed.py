"""Speed of a VampPrior training step: log p(z) by matrix products against torch's MixtureSameFamily.

The model is the best-likelihood recipe's ``vamp_vae``: gated MLP 784-300-300, z = 40, K = 500
pseudo-inputs, Bernoulli likelihood, Adam. Each training step encodes the batch *and* the K
pseudo-inputs, and scores every code under all K components. Two versions of log p(z) run in
turn over several rounds, on the same weights and batches:

* ``matmul`` — what ``VampPrior`` returns for a diagonal posterior, a
  :class:`vaekit.distributions.GaussianMixture` whose ``log_prob`` expands each component's
  quadratic form into two (N, D) × (D, K) products (:func:`~vaekit.distributions.diagonal_mixture_log_prob`);
* ``torch``  — the same prior as torch's ``MixtureSameFamily`` of ``Independent(Normal)``, which
  builds and differentiates an (N, K, D) array of per-coordinate log-densities.

Reported: median milliseconds per step and the speed-up, per batch size.

    OMP_NUM_THREADS=1 python benchmarks/vamp_prior_speed.py [--batches 100 500] [--rounds 5] [--steps 10]   # writes benchmarks/results/vamp_prior_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
from torch.distributions import Categorical, MixtureSameFamily

import vaekit
from vaekit.distributions import VampPrior


def torch_mixture(self: VampPrior) -> MixtureSameFamily:
    """The VampPrior as torch's own mixture: the reference the matrix-product version replaces."""
    q = self.components()
    logits = torch.zeros(self.num_components, dtype=self.pseudo_inputs.dtype)
    return MixtureSameFamily(Categorical(logits=logits, validate_args=False), q, validate_args=False)


def step_ms(model: vaekit.LatentVariableModel, optimizer: torch.optim.Optimizer, x: torch.Tensor, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        model.loss(x)["loss"].backward()
        optimizer.step()
    return 1e3 * (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out", default="benchmarks/results/vamp_prior_speed.json")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = vaekit.create("vamp_vae", (1, 28, 28), arch="gated_mlp", hidden_dims=(300, 300), latent_dim=40, pseudo_inputs=500)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    fast_forward = VampPrior.forward
    result: dict[str, object] = {"threads": torch.get_num_threads(), "torch": torch.__version__, "batches": {}}
    for batch in args.batches:
        x = torch.rand(batch, 1, 28, 28, generator=torch.Generator().manual_seed(batch)).bernoulli()
        times: dict[str, list[float]] = {"matmul": [], "torch": []}
        for _ in range(args.rounds + 1):  # the first round warms up and is dropped
            for name, forward in (("matmul", fast_forward), ("torch", torch_mixture)):
                VampPrior.forward = forward
                try:
                    times[name].append(step_ms(model, optimizer, x, args.steps))
                finally:
                    VampPrior.forward = fast_forward
        med = {name: statistics.median(v[1:]) for name, v in times.items()}
        result["batches"][batch] = {"ms_per_step": med, "speedup": med["torch"] / med["matmul"]}
        print(f"batch {batch}: matmul {med['matmul']:.1f} ms, torch {med['torch']:.1f} ms per step: {med['torch'] / med['matmul']:.2f}x", flush=True)
    result["load_average"] = list(os.getloadavg())
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
