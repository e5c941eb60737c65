"""Activity penalties of sparse autoencoders (survey §1.4.1(b)), and where their activations come from.

The penalised activations are collected in one place, :func:`record_activations`: forward
hooks on the activation modules (``nn.ReLU``, ``nn.Sigmoid``, …) of the encoder body,
registered for the duration of one objective call. For the MLP body these are the hidden
layers h_1, …, h_L; for the convolutional body, the feature maps after each convolution.
The code z (the posterior head's output) is appended as the last activation.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
from torch import nn

from vaekit.errors import ConfigError

__all__ = ["ActivityPenalty", "record_activations", "activation_layers", "ACTIVATION_MODULES", "PENALTIES"]

ACTIVATION_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Softplus,
)
"""Module types whose outputs count as a layer's activations h_k."""

PENALTIES = ("l1", "l2")


def activation_layers(module: nn.Module) -> list[nn.Module]:
    """The activation modules of ``module``, in registration (= forward, for our bodies) order."""
    return [m for m in module.modules() if isinstance(m, ACTIVATION_MODULES)]


@contextmanager
def record_activations(module: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Within the block, the outputs of ``module``'s activation layers, in call order.

    Example:
        >>> body = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2), nn.ReLU())
        >>> with record_activations(body) as hs:
        ...     _ = body(torch.randn(5, 4))
        >>> [tuple(h.shape) for h in hs]
        [(5, 3), (5, 2)]
    """
    recorded: list[torch.Tensor] = []
    handles = [m.register_forward_hook(lambda _m, _i, out: recorded.append(out)) for m in activation_layers(module)]
    try:
        yield recorded
    finally:
        for handle in handles:
            handle.remove()


class ActivityPenalty:
    r"""Activity penalty Ω(x) = Σ_k ω_k ‖h_k(x)‖ over chosen layers (survey §1.4.1(b)).

    ‖·‖ is the L1 norm Σ_j |h_kj| (``penalty="l1"``) or the Euclidean norm (Σ_j h_kj²)^½
    (``penalty="l2"``, not squared, as the survey writes it), taken over all of a layer's
    units (channels and positions for feature maps). The objective adds λ·E_x Ω(x),
    λ = ``weight``, and reports E_x Ω(x) as ``"sparsity"``.

    Layers are counted over the encoder's activations followed by the code,
    (h_1, …, h_L, z), and ``layer_weights`` = (ω_1, …, ω_m) applies to the *last* m of them:
    ``(1.0,)`` penalises the code only, ``(0.1, 1.0)`` the last hidden layer and the code.
    A weight of 0 leaves that layer out.

    Arguments:
        weight: λ ≥ 0.
        penalty: "l1" or "l2".
        layer_weights: ω_k ≥ 0, one per penalised layer, ending with the code.

    References:
        Sparse Autoencoder (A. Ng, CS294A lecture notes, 2011);
        Deep Sparse Rectifier Neural Networks (Glorot, Bordes & Bengio, AISTATS 2011).

    Example:
        >>> penalty = ActivityPenalty(0.1, "l1", (0.5, 1.0))
        >>> penalty([torch.tensor([[1.0, -2.0]]), torch.tensor([[3.0]])])
        tensor([4.5000])
    """

    name = "sparsity"

    def __init__(self, weight: float, penalty: str = "l1", layer_weights: Sequence[float] = (1.0,)):
        if penalty not in PENALTIES:
            raise ConfigError(f"unknown penalty {penalty!r}; choose one of {', '.join(PENALTIES)}")
        if not weight >= 0:
            raise ConfigError(f"weight (λ) must be ≥ 0, got {weight}")
        try:
            omegas = tuple(float(w) for w in layer_weights)
        except (TypeError, ValueError):
            raise ConfigError(f"layer_weights must be numbers, one per layer, got {layer_weights!r}") from None
        if not omegas or any(not w >= 0 for w in omegas):
            raise ConfigError(f"layer_weights must be a non-empty tuple of numbers ≥ 0, got {layer_weights!r}")
        self.weight, self.penalty, self.layer_weights = float(weight), penalty, omegas

    def check_layers(self, num_layers: int) -> None:
        """Raise a ConfigError if there are fewer than ``len(layer_weights)`` layers to penalise."""
        if len(self.layer_weights) > num_layers:
            raise ConfigError(
                f"layer_weights has {len(self.layer_weights)} entries but the encoder has only {num_layers} "
                f"penalisable layers ({num_layers - 1} hidden activations + the code)"
            )

    def norm(self, h: torch.Tensor) -> torch.Tensor:
        """‖h‖ per example, shape (B,)."""
        flat = h.flatten(1)
        return flat.abs().sum(1) if self.penalty == "l1" else torch.linalg.vector_norm(flat, dim=1)

    def __call__(self, activations: Sequence[torch.Tensor]) -> torch.Tensor:
        """Ω per example, shape (B,), from (h_1, …, h_L, z)."""
        self.check_layers(len(activations))
        chosen = activations[len(activations) - len(self.layer_weights):]
        total = activations[-1].new_zeros(activations[-1].shape[0])
        for w, h in zip(self.layer_weights, chosen):
            if w:
                total = total + w * self.norm(h)
        return total
