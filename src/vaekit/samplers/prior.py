"""The model's own prior p(z) as a sampler: what ``model.sample`` draws, behind the sampler interface."""

from __future__ import annotations

from typing import Any

import torch

from vaekit.errors import ConfigError
from vaekit.models.model import LatentVariableModel
from vaekit.samplers.base import Sampler, _model_name, check_model

__all__ = ["PriorSampler"]


class PriorSampler(Sampler):
    r"""Codes from the model's prior, z ~ p(z), decoded: the sampler every variational preset has built in.

    Nothing is fitted after training (the prior is part of the model and trained with it),
    so ``PriorSampler(model)`` is ready to use and there is nothing to save.
    ``log_prob(z)`` is log p(z). Deterministic autoencoders (``ae``, ``sparse_ae``,
    ``denoising_ae``, ``contractive_ae``, …) have no prior: they are refused with a
    pointer to the ex-post samplers (:class:`~vaekit.samplers.GaussianMixtureSampler`,
    :class:`~vaekit.samplers.FlowSampler`).

    Arguments:
        model: a trained, unconditional vaekit model with a prior (or None, and
            ``fit(model)`` later).

    Example:
        >>> import vaekit
        >>> model = vaekit.create("vae", input_shape=(4,), latent_dim=2, hidden_dims=(8,))
        >>> PriorSampler(model).sample(3, seed=0).shape
        torch.Size([3, 4])
    """

    kind = "prior"
    saved = False

    def __init__(self, model: LatentVariableModel | None = None):
        self.model = model
        if model is not None:
            self.fit(model)

    def fit(self, model: LatentVariableModel | None = None, x: Any = None, y: Any = None) -> "PriorSampler":
        """Bind to ``model`` (its prior needs no fitting; ``x`` and ``y`` are ignored)."""
        model = self.model if model is None else model
        check_model(model, "PriorSampler")
        own_prior = type(model).prior is not LatentVariableModel.prior  # a model with its own prior(), e.g. a VQ-VAE's fitted code prior
        if model.prior_module is None and not own_prior:
            raise ConfigError(f"{_model_name(model)} has no prior (it is a deterministic autoencoder): fit an ex-post sampler "
                              "with `vaekit fit-sampler RUN --sampler gmm` (or flow) and sample with `--sampler gmm`, "
                              "or from Python vaekit.samplers.GaussianMixtureSampler().fit(model, x)")
        self._bind(model)
        return self

    def _sample_codes(self, n: int, seed: int | None) -> torch.Tensor:
        model = self.model_
        with torch.no_grad():
            if seed is None:
                return model.prior().sample((n,))
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise ConfigError(f"seed must be an integer or None, got {seed!r}")
            devices = [model.device] if model.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed)
                return model.prior().sample((n,))

    def _log_prob(self, codes: torch.Tensor) -> torch.Tensor:
        model = self.model_
        return model.prior().log_prob(codes.to(device=model.device, dtype=torch.float32)).cpu()
