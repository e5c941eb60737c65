"""A Gaussian mixture fitted to the codes of a trained model (ex-post density estimation)."""

from __future__ import annotations

from typing import Any

import torch
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from vaekit.errors import ConfigError, DataError
from vaekit.samplers.base import Sampler, _generator
from vaekit.samplers._checks import check_choice, check_int

__all__ = ["GaussianMixtureSampler", "mixture_scale_tril", "mixture_log_prob", "mixture_sample"]

COVARIANCES = ("full", "diag")
SEED_MAX = 2**32 - 1
"""The largest seed scikit-learn's ``GaussianMixture`` takes as ``random_state``."""


def mixture_scale_tril(covariances: torch.Tensor, covariance: str) -> torch.Tensor:
    """Lower Cholesky factors L_k (K, D, D) with L_k L_kᵀ = Σ_k, from scikit-learn's ``covariances_``.

    ``covariance="full"``: ``covariances`` is (K, D, D); ``"diag"``: (K, D) variances.
    """
    if covariance == "diag":
        return torch.diag_embed(covariances.sqrt())
    return torch.linalg.cholesky(covariances)


def mixture_log_prob(codes: torch.Tensor, weights: torch.Tensor, means: torch.Tensor, scale_tril: torch.Tensor) -> torch.Tensor:
    r"""log q(z) = log Σ_k π_k N(z; μ_k, L_k L_kᵀ) for codes (N, D); shape (N,).

    torch's ``MixtureSameFamily`` of ``MultivariateNormal``s, which takes the log-sum-exp
    over components (no underflow far from the means).
    """
    mixture = MixtureSameFamily(Categorical(probs=weights), MultivariateNormal(means, scale_tril=scale_tril))
    return mixture.log_prob(codes.to(means.dtype))


def mixture_sample(n: int, weights: torch.Tensor, means: torch.Tensor, scale_tril: torch.Tensor,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    r"""n draws of the mixture: k ~ Categorical(π), ε ~ N(0, I), z = μ_k + L_k ε; shape (n, D).

    Every random number comes from ``generator`` (torch's global one when None).
    """
    k = torch.multinomial(weights, n, replacement=True, generator=generator)
    eps = torch.randn(n, means.shape[-1], generator=generator, dtype=means.dtype)
    return means[k] + (scale_tril[k] @ eps.unsqueeze(-1)).squeeze(-1)


class GaussianMixtureSampler(Sampler):
    r"""A K-component Gaussian mixture fitted to the codes of the training data, decoded.

    q(z) = Σ_k π_k N(z; μ_k, Σ_k), fitted by expectation-maximisation (scikit-learn's
    ``GaussianMixture``, k-means initialisation, seeded) to z_i = E(x_i). Sampling draws a
    component k ~ Categorical(π) and z = μ_k + L_k ε with L_k L_kᵀ = Σ_k, in torch from the
    fitted arrays (so a loaded sampler needs no scikit-learn object); ``log_prob`` is the
    mixture's log-density (it equals ``GaussianMixture.score_samples``).

    References:
        From Variational to Deterministic Autoencoders (Ghosh, Sajjadi, Vergari, Black &
        Schölkopf, 2020), arXiv:1903.12436 — a 10-component GMM on the codes ("ex-post
        density estimation") makes regularised deterministic autoencoders generative.

    Arguments:
        components: K, the number of mixture components (K ≤ number of codes, and at least 2 codes).
        covariance: ``"full"`` (one D×D covariance per component) or ``"diag"``.
        max_iter: EM iterations at most.
        seed: seeds the k-means initialisation, in [0, 2³² − 1].

    Fitted attributes: ``weights_`` (K,), ``means_`` (K, D), ``covariances_`` ((K, D, D) or
    (K, D)), ``precisions_cholesky_`` (same shape), float64 as scikit-learn computes them;
    ``converged_``, ``n_iter_``, and those of :class:`~vaekit.samplers.base.Sampler`.

    Example:
        >>> sampler = GaussianMixtureSampler(components=10).fit(model, x_train)  # doctest: +SKIP
        >>> images = sampler.sample(64, seed=0)                                   # doctest: +SKIP
        >>> sampler.save("runs/ae")                                               # doctest: +SKIP
    """

    kind = "gmm"

    def __init__(self, components: int = 10, *, covariance: str = "full", max_iter: int = 100, seed: int = 0):
        self.components = components
        self.covariance = covariance
        self.max_iter = max_iter
        self.seed = seed

    def check_params(self) -> None:
        check_int(self.components, "components", low=1)
        check_choice(self.covariance, "covariance", COVARIANCES)
        check_int(self.max_iter, "max_iter", low=1)
        check_int(self.seed, "seed", low=0)
        if self.seed > SEED_MAX:
            raise ConfigError(f"seed must be an integer in [0, {SEED_MAX}] (scikit-learn's random_state), got {self.seed!r}")

    def _fit_codes(self, codes: torch.Tensor) -> None:
        from sklearn.mixture import GaussianMixture

        n, needed = codes.shape[0], max(2, self.components)  # scikit-learn fits no mixture to a single code
        if n < needed:
            raise DataError(f"a {self.components}-component mixture needs at least {needed} codes, got {n}: "
                            "give more examples" + (" or fewer components" if needed > 2 else ""))
        mixture = GaussianMixture(n_components=self.components, covariance_type=self.covariance,
                                  max_iter=self.max_iter, random_state=self.seed).fit(codes.double().numpy())
        self.weights_ = torch.from_numpy(mixture.weights_).to(torch.float64)
        self.means_ = torch.from_numpy(mixture.means_).to(torch.float64)
        self.covariances_ = torch.from_numpy(mixture.covariances_).to(torch.float64)
        self.precisions_cholesky_ = torch.from_numpy(mixture.precisions_cholesky_).to(torch.float64)
        self.converged_ = bool(mixture.converged_)
        self.n_iter_ = int(mixture.n_iter_)
        self._scale_tril = mixture_scale_tril(self.covariances_, self.covariance)

    def _sample_codes(self, n: int, seed: int | None) -> torch.Tensor:
        return mixture_sample(n, self.weights_, self.means_, self._scale_tril, _generator(seed))

    def _log_prob(self, codes: torch.Tensor) -> torch.Tensor:
        return mixture_log_prob(codes, self.weights_, self.means_, self._scale_tril)

    # -- persistence -------------------------------------------------------------------------
    def _tensors(self) -> dict[str, torch.Tensor]:
        return {"weights": self.weights_, "means": self.means_, "covariances": self.covariances_,
                "precisions_cholesky": self.precisions_cholesky_}

    def _fitted_info(self) -> dict[str, Any]:
        return {**super()._fitted_info(), "converged": self.converged_, "n_iter": self.n_iter_}

    def _restore(self, tensors: dict[str, torch.Tensor], fitted: dict[str, Any]) -> None:
        k, d = self.components, self.latent_dim_
        cov_shape = (k, d, d) if self.covariance == "full" else (k, d)
        expected = {"weights": (k,), "means": (k, d), "covariances": cov_shape, "precisions_cholesky": cov_shape}
        for name, shape in expected.items():
            if name not in tensors or tuple(tensors[name].shape) != shape:
                got = tuple(tensors[name].shape) if name in tensors else "nothing"
                raise ValueError(f"{name} should have shape {shape}, got {got}")
        self.weights_, self.means_ = tensors["weights"].double(), tensors["means"].double()
        self.covariances_, self.precisions_cholesky_ = tensors["covariances"].double(), tensors["precisions_cholesky"].double()
        self.converged_, self.n_iter_ = bool(fitted["converged"]), int(fitted["n_iter"])
        self._scale_tril = mixture_scale_tril(self.covariances_, self.covariance)
