"""The VQ-VAE objective: reconstruction, codebook and commitment losses (van den Oord et al. 2017, eq. 3).

    L = d(x, D(z_q(x))) + ‖sg[z_e(x)] − e‖² + β ‖z_e(x) − sg[e]‖²

with z_e(x) the encoder's (B, D, h, w) map, e = z_q(x) its nearest codebook vectors, sg the
stop-gradient and the gradient of the first term copied from z_q onto z_e (straight-through;
see :mod:`vaekit.distributions.vector_quantized`). With EMA codebook updates the codebook
loss has no parameter to train and is left out of L (it is still reported). Codebook health
is reported per batch: the perplexity of the code histogram and the fraction of codes used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

import torch

from vaekit.errors import ConfigError
from vaekit.objectives.autoencoding import reconstruction_error

if TYPE_CHECKING:  # pragma: no cover
    from vaekit.models.model import LatentVariableModel

__all__ = ["VectorQuantization", "codebook_loss", "commitment_loss", "code_counts", "code_perplexity", "codebook_usage"]


def codebook_loss(z_e: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    r"""‖sg[z_e(x)] − e‖² per example, summed over the grid and D, shape (B,).

    Moves the codebook vectors e toward the encoder outputs assigned to them (the gradient
    reaches only e). van den Oord et al. 2017, eq. 3, second term.
    """
    return (z_e.detach() - codes).pow(2).flatten(1).sum(1)


def commitment_loss(z_e: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    r"""‖z_e(x) − sg[e]‖² per example, summed over the grid and D, shape (B,).

    Keeps the encoder committed to its codes (the gradient reaches only z_e); weighted by β
    in the loss. van den Oord et al. 2017, eq. 3, third term.
    """
    return (z_e - codes.detach()).pow(2).flatten(1).sum(1)


def code_counts(indices: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """How often each of the K codes occurs in ``indices`` (any shape), as a float (K,) histogram."""
    return torch.bincount(indices.reshape(-1), minlength=codebook_size).float()


def code_perplexity(counts: torch.Tensor) -> torch.Tensor:
    r"""exp(H(p)) with p = counts / Σ counts and H(p) = −Σ_k p_k log p_k (0 log 0 = 0).

    The effective number of codes in use: K for a uniform histogram, 1 when one code takes
    everything.

    Example:
        >>> code_perplexity(torch.tensor([2.0, 2.0, 0.0, 0.0]))
        tensor(2.)
    """
    p = counts / counts.sum()
    return torch.exp(-torch.special.xlogy(p, p).sum())


def codebook_usage(counts: torch.Tensor) -> torch.Tensor:
    """The fraction of the K codes that occur at least once in the histogram."""
    return (counts > 0).float().mean()


class VectorQuantization:
    r"""Objective of the VQ-VAE (van den Oord et al. 2017, eq. 3).

        loss = E_x[ d(x, D(z_q(x))) + [learned codebook] ‖sg[z_e] − e‖² + β ‖z_e − sg[e]‖² ]

    * d is :func:`~vaekit.objectives.reconstruction_error` (squared error for Gaussian
      decoders, −log p(x|z_q) otherwise), the decoder reading the straight-through z_q.
    * The codebook term (:func:`codebook_loss`) is part of the loss only when the quantiser
      learns its codebook by gradient (``ema=False``); with EMA updates the quantiser's
      :meth:`~vaekit.distributions.VectorQuantizer.update` moves the codebook instead.
    * In training mode the quantiser is seeded from the first batch
      (:meth:`~vaekit.distributions.VectorQuantizer.initialize`) and updated after every batch
      (EMA step, dead-code restarts); evaluation mode changes nothing.

    Terms (batch means, before weights): ``loss``, ``reconstruction``, ``codebook``,
    ``commitment``; and for the batch's B·h·w codes ``perplexity`` (:func:`code_perplexity`)
    and ``codebook_usage`` (:func:`codebook_usage`). The trainer averages the latter two over
    an epoch's batches: the mean per-batch value, a slight underestimate of the epoch's own
    (a batch of 128 Fashion-MNIST images holds 6 272 codes).

    Arguments:
        commitment: β ≥ 0, the weight of the commitment loss (0.25 in the paper).

    References:
        Neural Discrete Representation Learning (van den Oord, Vinyals & Kavukcuoglu, NeurIPS
        2017), arXiv:1711.00937.
    """

    def __init__(self, commitment: float = 0.25):
        if not commitment >= 0:
            raise ConfigError(f"commitment (β, the weight of the commitment loss) must be ≥ 0, got {commitment}")
        self.commitment = float(commitment)

    def __call__(self, model: "LatentVariableModel", x: torch.Tensor, y: torch.Tensor | None = None) -> Mapping[str, torch.Tensor]:
        z_e = model.features(x, y)  # (B, D, h, w)
        quantizer = model.posterior
        if model.training:
            quantizer.initialize(z_e)
        q = quantizer(z_e)
        reconstruction = reconstruction_error(model.decode(q.rsample(), y), x)
        codebook, commitment = codebook_loss(z_e, q.codes), commitment_loss(z_e, q.codes)
        loss = reconstruction.mean() + self.commitment * commitment.mean()
        if not quantizer.ema:
            loss = loss + codebook.mean()
        counts = code_counts(q.indices, quantizer.codebook_size)
        if model.training:
            quantizer.update(z_e, q.indices)
        return {"loss": loss, "reconstruction": reconstruction.mean(), "codebook": codebook.mean(), "commitment": commitment.mean(),
                "perplexity": code_perplexity(counts), "codebook_usage": codebook_usage(counts)}
