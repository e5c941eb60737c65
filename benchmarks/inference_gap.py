"""How much a better posterior could gain: the inference gap of a trained VAE, split in two.

Following Cremer, Li & Duvenaud (2018, "Inference Suboptimality in Variational
Autoencoders", arXiv:1801.03558), for each test image x

    log p(x) − ELBO(q_φ(z|x)) = [log p(x) − ELBO(q*)]  +  [ELBO(q*) − ELBO(q_φ)]
                                  approximation gap          amortisation gap

where q* is the best diagonal Gaussian for that x alone, found by optimising its (μ, log σ)
with Adam from the encoder's output. A richer posterior family (full covariance, flows) can
close at most the approximation gap of the decoder it is trained with; a better encoder or
more optimisation closes the amortisation gap. log p(x) is the importance-sampled estimate
(K samples). The approximation gap is measured with a q* that is only as good as the
optimiser found, so it is an upper bound and the amortisation gap a lower bound.

    python benchmarks/inference_gap.py runs/bench/vae_60ep --images 200
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch.distributions import Independent, Normal, kl_divergence

import vaekit
from vaekit.data import load_fashion_mnist, static_binarize


def gaussian_elbo(model, x: torch.Tensor, loc: torch.Tensor, log_scale: torch.Tensor, samples: int) -> torch.Tensor:
    """Per-example ELBO of N(loc, diag exp(log_scale)²): S-sample reconstruction term, analytic KL."""
    q = Independent(Normal(loc, log_scale.exp()), 1)
    z = q.rsample((samples,))  # (S, B, D)
    log_px = model.decode(z.flatten(0, 1)).log_prob(x.repeat(samples, *([1] * (x.dim() - 1)))).view(samples, -1)
    return log_px.mean(0) - kl_divergence(q, model.prior())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a trained run directory with a diagonal Gaussian posterior")
    parser.add_argument("--images", type=int, default=200, help="test images (the first N, statically binarised)")
    parser.add_argument("--steps", type=int, default=300, help="Adam steps per image batch for q*")
    parser.add_argument("--train-samples", type=int, default=8, help="samples per step while optimising q*")
    parser.add_argument("--eval-samples", type=int, default=200, help="samples for each reported ELBO")
    parser.add_argument("--nll-samples", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--output", default="benchmarks/results/inference_gap.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model = vaekit.load(args.run).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = static_binarize(load_fashion_mnist("test").x[: args.images], seed=0)
    torch.manual_seed(0)
    q = model.encode(x)
    if not (isinstance(q, Independent) and isinstance(q.base_dist, Normal)):
        raise SystemExit(f"{args.run}: the gap split needs a diagonal Gaussian posterior, got {type(q).__name__}")
    loc0, log_scale0 = q.base_dist.loc.detach(), q.base_dist.scale.log().detach()
    with torch.no_grad():
        amortised = gaussian_elbo(model, x, loc0, log_scale0, args.eval_samples)

    loc, log_scale = loc0.clone().requires_grad_(), log_scale0.clone().requires_grad_()
    optimiser = torch.optim.Adam([loc, log_scale], lr=1e-2)
    for _ in range(args.steps):
        optimiser.zero_grad()
        (-gaussian_elbo(model, x, loc, log_scale, args.train_samples).sum()).backward()
        optimiser.step()
    with torch.no_grad():
        optimal = gaussian_elbo(model, x, loc, log_scale, args.eval_samples)
    log_px = vaekit.log_likelihood(model, x, num_samples=args.nll_samples)

    result = {
        "run": args.run, "images": args.images, "nll_samples": args.nll_samples,
        "log_likelihood": float(log_px.mean()), "elbo_amortised": float(amortised.mean()),
        "elbo_optimal_diagonal": float(optimal.mean()),
        "approximation_gap": float((log_px - optimal).mean()), "amortisation_gap": float((optimal - amortised).mean()),
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
