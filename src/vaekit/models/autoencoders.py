"""Deterministic autoencoders (survey §1.2–1.5): a point-mass posterior, no prior.

Every preset here is ``spec.build(Autoencoding(...), posterior="point", prior=None)``:
the encoder body and a linear head give the code z = E_φ(x) (``PointMassPosterior``),
the decoder body and the likelihood head give x̂ = D_θ(z), and the objective
(:class:`~vaekit.objectives.Autoencoding`) adds the family's regulariser. The
reconstruction d(x, x̂) is the sum of squared errors for ``likelihood="gaussian"`` and the
binary cross-entropy for ``likelihood="bernoulli"`` (data in [0, 1]); see
:func:`~vaekit.objectives.reconstruction_error`.
"""

from __future__ import annotations

from typing import Any

from vaekit.errors import ConfigError
from vaekit.models.model import LatentVariableModel
from vaekit.models.registry import register
from vaekit.models.spec import ModelSpec
from vaekit.objectives import ActivityPenalty, Autoencoding, ContractivePenalty
from vaekit.objectives.sparsity import activation_layers

__all__ = ["ae", "linear_ae", "sparse_ae", "denoising_ae", "contractive_ae"]

FAMILY = "autoencoder"


def _deterministic(spec: ModelSpec, objective: Autoencoding, **head_options: Any) -> LatentVariableModel:
    """The shared composition: point-mass posterior (with ``head_options``), no prior."""
    try:
        return spec.build(objective, posterior="point", prior=None, posterior_options=head_options)
    except ValueError as e:  # the head's own checks (k out of range)
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(str(e)) from None


@register("ae", family=FAMILY)
def ae(spec: ModelSpec) -> LatentVariableModel:
    """Autoencoder: x̂ = D(E(x)) trained on the reconstruction error (survey §1.2–1.3).

    The error is the sum of squared errors with ``likelihood="gaussian"`` and the binary
    cross-entropy with ``likelihood="bernoulli"`` (the default; data in [0, 1]).
    """
    return _deterministic(spec, Autoencoding())


@register("linear_ae", family=FAMILY)
def linear_ae(spec: ModelSpec) -> LatentVariableModel:
    """Linear autoencoder: linear encoder and decoder, squared error; spans PCA's subspace (survey §1.5).

    E(x) = W_e x + b_e and D(z) = W_d z + b_d, trained on Σ_j (x_j − x̂_j)². On data
    normalised as x̂_ij = (x_ij − mean_j)/√M its optimum spans the subspace of the top
    principal components (Baldi & Hornik, "Neural networks and principal component
    analysis", Neural Networks 2(1), 1989). This preset therefore fixes three shared
    options, whatever was passed: ``arch="mlp"`` with ``hidden_dims=()`` (single linear
    maps) and ``likelihood="gaussian"`` (identity mean, squared error).
    """
    # In place, so the recorded config (and vaekit.load) sees what was built.
    spec.arch, spec.hidden_dims, spec.likelihood = "mlp", (), "gaussian"
    return _deterministic(spec, Autoencoding())


@register("sparse_ae", family=FAMILY)
def sparse_ae(
    spec: ModelSpec, *, k: int = 0, penalty: str = "l1", weight: float | None = None, layer_weights: tuple = (1.0,)
) -> LatentVariableModel:
    """Sparse autoencoder: k-sparse code and/or an L1/L2 activity penalty (survey §1.4.1).

    Loss: reconstruction + weight · Σ_k ω_k ‖h_k‖, where h_k runs over the encoder's hidden
    activations and the code (see ActivityPenalty). Σ_k ω_k ‖h_k‖ is reported as "sparsity"
    whatever the weight, so a k-sparse model shows its activity too.

    Options:
        k: keep only the k largest code entries per example, zeroing the rest (k-sparse
            AE, Makhzani & Frey 2014; gradients flow only through the kept ones); 0: off.
        penalty: "l1" (Σ|h|) or "l2" (Euclidean norm) activity penalty.
        weight: λ ≥ 0, the weight of the activity penalty; None (default): 0.1 for the
            penalty alone, 0 (the pure k-sparse AE) when k > 0.
        layer_weights: ω_k, one per penalised layer, matched to the last layers of
            (hidden activations..., code): (1.0,) penalises the code only.
    """
    if int(k) != k or k < 0:
        raise ConfigError(f"k must be a non-negative integer, got {k}")
    if k > spec.latent_dim:
        raise ConfigError(f"k={k} exceeds latent_dim={spec.latent_dim}; a k-sparse code keeps k of latent_dim entries")
    if weight is None:
        weight = 0.0 if k > 0 else 0.1
    sparsity = ActivityPenalty(weight, penalty, layer_weights)  # refuses λ < 0
    if k == 0 and weight == 0:
        raise ConfigError("sparse_ae needs k > 0 (k-sparse code) or weight > 0 (activity penalty); with neither it is the plain ae")
    model = _deterministic(spec, Autoencoding(sparsity=sparsity), k=int(k))
    sparsity.check_layers(len(activation_layers(model.encoder)) + 1)
    return model


@register("denoising_ae", family=FAMILY)
def denoising_ae(spec: ModelSpec, *, noise: str = "gaussian", noise_level: float = 0.3) -> LatentVariableModel:
    """Denoising autoencoder: reconstruct x from a corrupted T(x) drawn per batch (survey §1.4.2).

    Loss: d(x, D(E(T(x)))); the corruption is applied in training mode only.

    Options:
        noise: "gaussian" (add N(0, σ²)), "mask" (set entries to 0 with probability p) or
            "salt_pepper" (set entries to the training data's min or max with probability p;
            the batch's before any vaekit.fit).
        noise_level: σ for "gaussian", the probability p for "mask" and "salt_pepper".
    """
    return _deterministic(spec, Autoencoding(noise=noise, noise_level=noise_level))


@register("contractive_ae", family=FAMILY)
def contractive_ae(spec: ModelSpec, *, weight: float = 0.1) -> LatentVariableModel:
    """Contractive autoencoder: penalty weight · ‖∂E(x)/∂x‖_F², the exact Jacobian (survey §1.4.3).

    The penalty is reported as "contractive". It costs one extra backward pass per latent
    dimension (see jacobian_frobenius_sq).

    Options:
        weight: λ, the weight of the squared Frobenius norm of the encoder's Jacobian.
    """
    return _deterministic(spec, Autoencoding(contractive=ContractivePenalty(weight)))
