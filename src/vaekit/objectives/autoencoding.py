"""The deterministic autoencoder's objective: reconstruction plus optional regularisers (survey §1.2–1.4).

    L(x) = d(x, D_θ(E_φ(T(x)))) + λ_s Σ_k ω_k ‖h_k(T(x))‖ + λ_c ‖∂E_φ/∂x (T(x))‖_F²

with T the identity (plain, sparse, contractive AEs) or a random corruption drawn per
batch in training mode (denoising AE). The penalties live in
:mod:`vaekit.objectives.sparsity` and :mod:`vaekit.objectives.contractive`. Regularisers of
the code sample (MMD, sliced Wasserstein) make it the Wasserstein autoencoders' objective.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import TYPE_CHECKING, Mapping, Sequence

import torch
from torch.distributions import Distribution, Independent, Normal

from vaekit.data import corrupt, parse_noise
from vaekit.distributions import latent_code
from vaekit.errors import ConfigError, DataError
from vaekit.objectives.contractive import ContractivePenalty
from vaekit.objectives.posterior_sample import PosteriorSample, Reconstruction, Regulariser
from vaekit.objectives.sparsity import ActivityPenalty, record_activations

if TYPE_CHECKING:  # pragma: no cover
    from vaekit.models.model import LatentVariableModel

__all__ = ["Autoencoding", "reconstruction_error", "squared_error"]


def squared_error(px: Distribution, x: torch.Tensor) -> torch.Tensor:
    r"""‖x − x̂‖² per example with x̂ = E[x|z] the decoder's mean, summed over every pixel or feature, shape (B,).

    The cost c(x, y) = ‖x − y‖² of the Wasserstein autoencoders, whatever the likelihood head
    (which then only sets x̂: sigmoid of the logits for "bernoulli", the identity for "gaussian").

    Example:
        >>> squared_error(Independent(Normal(torch.zeros(2, 3), 1.0), 1), torch.ones(2, 3))
        tensor([3., 3.])
    """
    return (x - px.mean).pow(2).flatten(1).sum(1)


def reconstruction_error(px: Distribution, x: torch.Tensor) -> torch.Tensor:
    r"""d(x, x̂) per example, summed over every pixel or feature, shape (B,).

    * Gaussian decoder: the squared error ‖x − x̂‖² with x̂ = E[x|z] (least squares, survey
      §1.3). The decoder's σ plays no part: this is the plain sum of squared errors.
    * Any other decoder: −log p(x|z); for the Bernoulli decoder this is the binary
      cross-entropy Σ_j −[x_j log x̂_j + (1 − x_j) log(1 − x̂_j)] with x̂ = sigmoid(logits),
      the usual choice for data in [0, 1].

    Example:
        >>> px = Independent(Normal(torch.zeros(2, 3), 1.0), 1)
        >>> reconstruction_error(px, torch.ones(2, 3))
        tensor([3., 3.])
    """
    base = px.base_dist if isinstance(px, Independent) else px
    if isinstance(base, Normal):
        return squared_error(px, x)
    return -px.log_prob(x)


class Autoencoding:
    r"""Objective of the deterministic autoencoders: reconstruction error plus regularisers.

        loss = E_x[ d(x, D_θ(E_φ(T(x)))) ] + λ_s E_x Σ_k ω_k ‖h_k‖ + λ_c E_x ‖∂E_φ(T(x))/∂T(x)‖_F²

    * d is :func:`reconstruction_error` (squared error for Gaussian decoders, binary
      cross-entropy for Bernoulli decoders), summed over pixels like the VAE's −log p(x|z);
      the clean x is always the target.
    * T is the corruption of the denoising AE (survey §1.4.2): ``corrupt(x, noise,
      noise_level)`` drawn afresh for every batch in training mode; in evaluation mode
      T is the identity.
    * The sparsity term is an :class:`ActivityPenalty` over the encoder's activations and the
      code (survey §1.4.1(b)); k-sparsity (§1.4.1(a)) lives in the posterior head.
    * The contractive term is a :class:`ContractivePenalty`, with the exact Jacobian of the
      encoder E_φ (the posterior's code) at the encoder's input (survey §1.4.3).
    * ``regularisers`` read the code sample like the ELBO's do (``PosteriorSample`` with
      ``kl=None``): λ·MMD or λ·SW between the batch's codes and prior draws make the
      Wasserstein autoencoders (Tolstikhin et al. 2018; Kolouri et al. 2019), whose cost d
      is ``reconstruction`` = :func:`squared_error`.

    Works with any posterior: z is a reparameterised draw of q(z|x), i.e. the code itself
    for the point-mass posterior of deterministic autoencoders.

    Arguments:
        noise: "gaussian", "mask" or "salt_pepper" (None: no corruption).
        noise_level: σ for "gaussian", the corruption probability otherwise.
        sparsity: an activity penalty, or None.
        contractive: a contractive penalty, or None.
        regularisers: callables ``(model, PosteriorSample) -> (penalty, terms)`` (the model
            needs a prior); not with ``contractive``.
        reconstruction: ``cost(p(x|z), x) -> (B,)`` used instead of :func:`reconstruction_error`.

    Terms returned (batch means, before their weights): ``loss``, ``reconstruction``, and
    ``sparsity`` / ``contractive`` when those penalties are on, and each regulariser's own terms.

    References:
        Extracting and Composing Robust Features with Denoising Autoencoders (Vincent,
        Larochelle, Bengio & Manzagol, ICML 2008); Contractive Auto-Encoders (Rifai et al.,
        ICML 2011); k-Sparse Autoencoders (Makhzani & Frey, 2014), arXiv:1312.5663.

    Example:
        >>> objective = Autoencoding(noise="mask", noise_level=0.25)
        >>> model = vaekit.create("ae", input_shape=(8,), hidden_dims=(16,))  # doctest: +SKIP
        >>> sorted(objective(model, torch.rand(4, 8)))  # doctest: +SKIP
        ['loss', 'reconstruction']
    """

    def __init__(
        self,
        *,
        noise: str | None = None,
        noise_level: float = 0.0,
        sparsity: ActivityPenalty | None = None,
        contractive: ContractivePenalty | None = None,
        regularisers: Sequence[Regulariser] = (),
        reconstruction: Reconstruction | None = None,
    ):
        if contractive is not None and regularisers:
            raise ConfigError("regularisers of the code sample cannot be combined with the contractive penalty; use one or the other")
        if noise is not None:
            try:
                noise, noise_level = parse_noise(f"{noise}:{noise_level}")
            except DataError as e:
                raise ConfigError(str(e)) from None
        self.noise, self.noise_level = noise, noise_level
        self.sparsity, self.contractive = sparsity, contractive
        self.regularisers, self.reconstruction = tuple(regularisers), reconstruction

    def corrupt(self, x: torch.Tensor, data_range: tuple[float, float] | None = None) -> torch.Tensor:
        """T(x): a fresh corruption of the batch (x itself when ``noise`` is None).

        Salt-and-pepper sets entries to ``data_range`` (the training data's min and max, which
        ``vaekit.fit`` records on the model), or to the batch's min and max without one.
        """
        if self.noise is None:
            return x
        low, high = data_range if data_range is not None else (None, None)
        return corrupt(x, self.noise, self.noise_level, low=low, high=high)

    def __call__(self, model: "LatentVariableModel", x: torch.Tensor, y: torch.Tensor | None = None) -> Mapping[str, torch.Tensor]:
        x_in = self.corrupt(x, getattr(model, "data_range", None)) if model.training else x
        recording = record_activations(model.encoder) if self.sparsity is not None else nullcontext([])
        with recording as activations:
            if self.contractive is not None:
                z, jacobian_sq = self.contractive(lambda t: latent_code(model.encode(t, y)), x_in)
            else:
                q = model.encode(x_in, y)
                z = q.rsample()
        px = model.decode(z, y)
        reconstruction = reconstruction_error(px, x) if self.reconstruction is None else self.reconstruction(px, x)
        loss = reconstruction.mean()
        terms = {"reconstruction": reconstruction.mean()}
        if self.sparsity is not None:
            omega = self.sparsity([*activations, z]).mean()
            terms["sparsity"] = omega
            loss = loss + self.sparsity.weight * omega
        if self.contractive is not None:
            terms["contractive"] = jacobian_sq.mean()
            loss = loss + self.contractive.weight * terms["contractive"]
        if self.regularisers:
            sample = PosteriorSample(x=x, q=q, z=z, prior=model.prior(), kl=None)
            for regulariser in self.regularisers:
                penalty, named = regulariser(model, sample)
                loss = loss + penalty
                terms.update(named)
        return {"loss": loss, **terms}
