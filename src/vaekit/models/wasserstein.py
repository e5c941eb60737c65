"""Wasserstein autoencoders (survey §2.12): WAE-MMD and the sliced-Wasserstein autoencoder.

Both are the deterministic autoencoder's composition given the prior p(z) = N(0, I):

    spec.build(Autoencoding(regularisers=[penalty], reconstruction=squared_error), posterior=...)

the shared :class:`~vaekit.objectives.Autoencoding` objective with the squared-error cost
:func:`~vaekit.objectives.squared_error` and one regulariser of the batch's codes against
prior draws (:class:`~vaekit.objectives.MMDPenalty`, the one ``info_vae`` uses, or
:class:`~vaekit.objectives.SlicedWassersteinPenalty`). Their loss is

    loss = (1/B) Σ_b ‖x_b − G(z_b)‖² + λ · D(q(z), p(z)),   z_b ~ q(z|x_b)

the penalised form of the optimal-transport cost inf_{Q(Z|X): Q_Z = P_Z} E c(X, G(Z)) with
c(x, y) = ‖x − y‖² (Tolstikhin et al. 2018, eq. 4). The encoder option is ``posterior``, the
option vocabulary's name for the family of q(z|x): ``"point"`` (the deterministic encoder,
q(z|x) = δ(z − E(x)), the name the deterministic autoencoders' head already has; the default)
or a Gaussian ``"diagonal"`` / ``"full_covariance"`` (stochastic encoders; only samples of
q(z) enter the loss, no density and no KL). ``encoder=`` is not used for it: that name is
the option vocabulary's custom encoder body. A Gaussian encoder can also match the prior with its
own noise (σ → 1) instead of spreading its means, at the cost of reconstruction; λ decides:
on the 8×8 digits (D = 8, 30 epochs) ``swae`` with ``posterior="diagonal"`` ends with σ ≈ 0.87
and 3.9 squared error per image at λ = 10, σ ≈ 0.09 and 1.27 at λ = 1.

There is no bound on log p(x): the decoder's noise model is never fitted (the cost is the
squared error of its mean G(z) = E[x|z]) and a point-mass q(z|x) has no density to importance-
sample with. ``vaekit.evaluate`` reports the reconstruction error as for ``ae`` (no ELBO, no
log p(x)) and ``vaekit.log_likelihood`` refuses; ``model.sample(n)`` decodes z ~ N(0, I).
"""

from __future__ import annotations

import math

from vaekit.errors import ConfigError
from vaekit.models.model import LatentVariableModel
from vaekit.models.registry import register
from vaekit.models.spec import ModelSpec
from vaekit.objectives import Autoencoding, MMDPenalty, SlicedWassersteinPenalty, squared_error
from vaekit.objectives.posterior_sample import Regulariser

__all__ = ["wae_mmd", "swae", "WAE_POSTERIORS"]

FAMILY = "wasserstein"
WAE_POSTERIORS = ("point", "diagonal", "full_covariance")
"""Encoders of the Wasserstein autoencoders: deterministic (a point mass) or Gaussian."""


def _wasserstein_autoencoder(spec: ModelSpec, posterior: str, penalty: Regulariser) -> LatentVariableModel:
    """The shared composition: the chosen encoder, the N(0, I) prior, squared error + the penalty."""
    if posterior not in WAE_POSTERIORS:
        raise ConfigError(f'posterior must be "point" (deterministic encoder), "diagonal" or "full_covariance" '
                          f"(Gaussian encoders), got {posterior!r}")
    return spec.build(Autoencoding(regularisers=[penalty], reconstruction=squared_error), posterior=posterior)


def _check_weight(weight: float) -> float:
    if not (weight >= 0 and math.isfinite(weight)):
        raise ConfigError(f"weight (λ, the weight of the penalty on q(z)) must be a finite number ≥ 0, got {weight}")
    return float(weight)


@register("wae_mmd", family=FAMILY)
def wae_mmd(
    spec: ModelSpec, *, posterior: str = "point", weight: float = 10.0, kernel: str = "imq", kernel_scale: float | None = None
) -> LatentVariableModel:
    r"""Wasserstein autoencoder, MMD penalty: squared error + λ · MMD²(q(z), p(z)) (Tolstikhin et al.).

        loss = (1/B) Σ_b ‖x_b − G(z_b)‖² + λ · MMD²_u({z_b}, {z̃_b}),   z_b ~ q(z|x_b), z̃_b ~ N(0, I)

    MMD²_u is the unbiased estimate (Gretton et al. 2012) between the batch's B codes and B
    prior draws (:func:`~vaekit.objectives.mmd_unbiased`, shared with ``info_vae``), with
    k(a, b) = C / (C + ‖a − b‖²) ("imq", the paper's choice: its heavy tails keep gradients for
    codes far from the prior) or exp(−‖a − b‖²/C) ("rbf"), C = 2·D·σ² = 2D for N(0, I) (the
    base scale of the paper's code, which also sums the IMQ kernel over C·{0.1, …, 10}; here
    one scale). G(z) = E[x|z] is the decoder's mean (sigmoid of the logits with
    likelihood="bernoulli", the identity with "gaussian") and ‖x − G(z)‖² is summed over
    pixels, unscaled: the authors' code multiplies it by 0.05, so their λ = 10 (MNIST) is
    λ = 200 against this cost. Under DDP "batch" is each rank's own: every rank computes the
    MMD of its B codes against B prior draws of its own, and the averaged gradients are those
    of the mean of the per-rank penalties. Terms: ``loss``, ``reconstruction``, ``mmd``.

    References:
        Wasserstein Auto-Encoders (Tolstikhin, Bousquet, Gelly & Schölkopf, ICLR 2018),
        arXiv:1711.01558. A Kernel Two-Sample Test (Gretton et al., JMLR 2012).

    Options:
        posterior: the encoder: "point" (deterministic, the paper's), "diagonal" or "full_covariance" (Gaussian).
        weight: λ ≥ 0, the weight of MMD² (the paper's 10 for MNIST with the IMQ kernel).
        kernel: "imq" (inverse multiquadratic) or "rbf" (Gaussian).
        kernel_scale: C > 0 of the kernel; None for 2·D·σ² (2 × latent_dim for the N(0, I) prior).
    """
    kernel_scale = None if kernel_scale is None else _number("kernel_scale", kernel_scale)
    penalty = MMDPenalty(weight=_check_weight(weight), kernel=kernel, scale=kernel_scale)
    return _wasserstein_autoencoder(spec, posterior, penalty)


@register("swae", family=FAMILY)
def swae(spec: ModelSpec, *, posterior: str = "point", weight: float = 10.0, num_projections: int = 50, p: int = 2) -> LatentVariableModel:
    r"""Sliced-Wasserstein autoencoder: squared error + λ · SW_p^p(q(z), p(z)) over L random directions (Kolouri et al.).

        loss = (1/B) Σ_b ‖x_b − G(z_b)‖² + λ · (1/L) Σ_l (1/B) Σ_i |⟨θ_l, z⟩_(i) − ⟨θ_l, z̃⟩_(i)|^p

    with z̃_b ~ N(0, I), θ_l ~ Uniform(S^{D−1}) drawn afresh each batch, and (i) the i-th
    smallest projection: each one-dimensional Wasserstein distance is exact by sorting and
    matching (:func:`~vaekit.objectives.sliced_wasserstein`). p = 2 (SW_2², the paper's) or 1.
    G(z) = E[x|z] is the decoder's mean and ‖x − G(z)‖² is summed over pixels (the paper adds
    an L1 term and uses binary cross-entropy for MNIST; the cost here is the WAE's ‖x − y‖²).
    Under DDP "batch" is each rank's own: every rank computes the penalty on its B codes
    against B prior draws and L directions of its own. Terms: ``loss``, ``reconstruction``,
    ``sliced_wasserstein``.

    References:
        Sliced-Wasserstein Autoencoder: An Embarrassingly Simple Generative Model (Kolouri,
        Pope, Martin & Rohde, ICLR 2019), arXiv:1804.01947.

    Options:
        posterior: the encoder: "point" (deterministic, the paper's), "diagonal" or "full_covariance" (Gaussian).
        weight: λ ≥ 0, the weight of the sliced Wasserstein term (10, as in the authors' code).
        num_projections: L ≥ 1, random directions per batch.
        p: 2 (SW_2², the paper's) or 1 (SW_1).
    """
    return _wasserstein_autoencoder(spec, posterior, SlicedWassersteinPenalty(_check_weight(weight), num_projections, p))


def _number(name: str, value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{name} takes a number > 0 or None, got {value!r}") from None
