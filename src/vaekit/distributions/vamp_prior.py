"""The VampPrior: a mixture of the variational posteriors of K learned pseudo-inputs (Tomczak & Welling 2018)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Categorical, Distribution, Independent, MixtureSameFamily, MultivariateNormal, Normal

from vaekit.distributions.mixture import GaussianMixture
from vaekit.errors import ConfigError

__all__ = ["VampPrior", "DEFAULT_PSEUDO_INPUTS", "PSEUDO_INPUT_INIT"]

DEFAULT_PSEUDO_INPUTS = 500
"""K of the VampPrior paper's MNIST experiments."""

PSEUDO_INPUT_INIT = (0.05, 0.01)
"""(mean, std) of the normal draw the raw pseudo-inputs start from: the VampPrior code's
``pseudoinputs_mean`` and ``pseudoinputs_std`` for data in [0, 1]. Unbounded (Gaussian) data
start at N(0, 0.01²)."""


class VampPrior(nn.Module):
    r"""p(z) = (1/K) Σ_k q(z | u_k): the model's own posterior at K learned pseudo-inputs u_k.

    The forward returns a ``MixtureSameFamily`` over K equally weighted components (a
    :class:`~vaekit.distributions.GaussianMixture` for a diagonal posterior, whose log-density
    is two matrix products), each
    q(z|u_k) computed by running u_k through the model's *current* encoder and posterior head,
    so the prior moves with the encoder during training. log p(z) is a logsumexp over the
    components; KL(q(z|x) ‖ p(z)) has no closed form and the ELBO takes the one-sample estimate
    log q(z|x) − log p(z) (:func:`vaekit.distributions.sample_and_kl` falls back to it).

    Pseudo-inputs: the module stores raw values w_k (shape (K, *input_shape), a parameter in the
    state dict) and uses u_k = hardtanh(w_k) clipped to ``data_range`` (the VampPrior code's
    ``Hardtanh(0, 1)`` on the "means" layer for data in [0, 1]); with ``data_range=None``
    (Gaussian data) u_k = w_k. They start at N(0.05, 0.01²) in [0, 1] (the code's defaults) or
    N(0, 0.01²) otherwise (:data:`PSEUDO_INPUT_INIT`).

    The encoder and head are not submodules (their weights belong to the model, and a module
    cycle would save them twice): :meth:`bind` keeps plain references, set by
    :meth:`vaekit.models.ModelSpec.build` right after building them. ``copy.deepcopy`` of the
    model keeps the references pointing at the copy's own encoder and head.

    References:
        VAE with a VampPrior (Tomczak & Welling, AISTATS 2018), arXiv:1705.07120.

    Arguments:
        input_shape: shape of one example (of a pseudo-input).
        pseudo_inputs: K, the number of components.
        data_range: (low, high) the pseudo-inputs are clipped to, or None for no clipping.

    Example:
        >>> from vaekit.distributions import DiagonalGaussianPosterior
        >>> from vaekit.nn import MLPEncoder
        >>> encoder, head = MLPEncoder(4, (8,)), DiagonalGaussianPosterior(8, 2)
        >>> prior = VampPrior((4,), 10).bind(encoder, head)
        >>> prior().log_prob(torch.zeros(3, 2)).shape
        torch.Size([3])
    """

    def __init__(self, input_shape: Sequence[int], pseudo_inputs: int = DEFAULT_PSEUDO_INPUTS,
                 data_range: tuple[float, float] | None = (0.0, 1.0)):
        super().__init__()
        if isinstance(pseudo_inputs, bool) or int(pseudo_inputs) != pseudo_inputs or pseudo_inputs < 1:
            raise ConfigError(f"pseudo_inputs must be a positive integer (K, the VampPrior's number of components; e.g. 500), got {pseudo_inputs!r}")
        self.input_shape = tuple(int(s) for s in input_shape)
        self.data_range = None if data_range is None else (float(data_range[0]), float(data_range[1]))
        mean, std = PSEUDO_INPUT_INIT if self.data_range is not None else (0.0, PSEUDO_INPUT_INIT[1])
        self.pseudo_inputs = nn.Parameter(torch.randn(int(pseudo_inputs), *self.input_shape) * std + mean)
        self._parts: tuple[nn.Module, nn.Module] | None = None

    @property
    def num_components(self) -> int:
        return self.pseudo_inputs.shape[0]

    def bind(self, encoder: nn.Module, posterior: nn.Module) -> "VampPrior":
        """Use ``posterior(encoder(u))`` as q(z|u); returns self. Plain references, not submodules."""
        self._parts = (encoder, posterior)
        return self

    def inputs(self) -> torch.Tensor:
        """The pseudo-inputs u_k in the data range, (K, *input_shape)."""
        if self.data_range is None:
            return self.pseudo_inputs
        return F.hardtanh(self.pseudo_inputs, *self.data_range)

    def components(self) -> Distribution:
        """q(z | u_k) for every k: batch shape (K,), event shape (D,)."""
        if self._parts is None:
            raise ConfigError("this VampPrior is not bound to an encoder: call prior.bind(encoder, posterior_head) (ModelSpec.build does)")
        encoder, posterior = self._parts
        q = posterior(encoder(self.inputs()))
        if not (isinstance(q, Independent) and isinstance(q.base_dist, Normal)) and not isinstance(q, MultivariateNormal):
            raise ConfigError(f'prior="vamp" needs a Gaussian posterior ("diagonal" or "full_covariance"), got {type(q).__name__}')
        return q

    def forward(self) -> Distribution:
        q = self.components()
        logits = torch.zeros(self.num_components, device=self.pseudo_inputs.device, dtype=self.pseudo_inputs.dtype)
        if isinstance(q, Independent):  # diagonal: log p(z) by matrix products (GaussianMixture)
            return GaussianMixture(logits, q.base_dist.loc, q.base_dist.scale)
        return MixtureSameFamily(Categorical(logits=logits, validate_args=False), q, validate_args=False)

    def extra_repr(self) -> str:
        return f"pseudo_inputs={self.num_components}, input_shape={self.input_shape}, data_range={self.data_range}"

