"""The point-mass (Dirac) posterior of deterministic autoencoders, and its head.

A deterministic autoencoder (survey §1.2–1.4) is the same composition as a VAE with
q(z|x) = δ(z − E_φ(x)): every "sample" is the code itself. :class:`PointMass` is that
distribution; :class:`PointMassPosterior` is the head that produces it (a linear map from
the encoder's features, optionally k-sparse, survey §1.4.1(a)).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Distribution, constraints

__all__ = ["PointMass", "PointMassPosterior", "keep_top_k"]


class PointMass(Distribution):
    r"""The Dirac distribution δ(z − loc) over vectors: all its mass at ``loc``.

    ``mean`` = ``mode`` = ``loc``, the variance is 0, and ``rsample(shape)`` returns ``loc``
    expanded to ``shape + loc.shape`` (a reparameterised sample whose gradient is the
    identity with respect to ``loc``). It has no density with respect to Lebesgue
    measure; following Pyro's ``Delta``, ``log_prob(z)`` is 0 where z equals ``loc`` and −∞
    elsewhere, and the entropy is −∞. No KL against a continuous prior is registered (it
    is infinite): deterministic autoencoders have no prior (``prior=None``).

    Arguments:
        loc: the point, shape (*batch_shape, D); the last axis is the event.

    Example:
        >>> q = PointMass(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        >>> q.batch_shape, q.event_shape
        (torch.Size([2]), torch.Size([2]))
        >>> q.rsample((3,)).shape
        torch.Size([3, 2, 2])
    """

    arg_constraints = {"loc": constraints.real_vector}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc: torch.Tensor, validate_args: bool | None = None):
        if loc.dim() < 1:
            raise ValueError("PointMass needs loc with at least one (event) dimension")
        self.loc = loc
        super().__init__(loc.shape[:-1], loc.shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape: torch.Size | tuple[int, ...], _instance: "PointMass | None" = None) -> "PointMass":
        new = self._get_checked_instance(PointMass, _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc = self.loc.expand(batch_shape + self.event_shape)
        super(PointMass, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def mean(self) -> torch.Tensor:
        return self.loc

    @property
    def mode(self) -> torch.Tensor:
        return self.loc

    @property
    def variance(self) -> torch.Tensor:
        return torch.zeros_like(self.loc)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size()) -> torch.Tensor:
        return self.loc.expand(self._extended_shape(torch.Size(sample_shape)))

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape).detach()

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        equal = (value == self.loc).all(-1)
        return torch.zeros_like(equal, dtype=self.loc.dtype).masked_fill(~equal, -torch.inf)

    def entropy(self) -> torch.Tensor:
        return torch.full(self.batch_shape, -torch.inf, dtype=self.loc.dtype, device=self.loc.device)


def keep_top_k(h: torch.Tensor, k: int) -> torch.Tensor:
    r"""Keep the k largest entries of each row of ``h`` (B, D) and set the others to 0.

    z_j = h_j for the k largest h_j (ties broken by ``torch.topk``), 0 otherwise:
    exactly k entries per row are kept, and the gradient flows only through them
    (∂z_j/∂h_j = 1 for kept entries, 0 for the others). The k-sparse autoencoder's code (survey §1.4.1(a)).

    References:
        k-Sparse Autoencoders (Makhzani & Frey, 2014), arXiv:1312.5663.

    Example:
        >>> keep_top_k(torch.tensor([[0.1, 3.0, -2.0, 2.0]]), 2)
        tensor([[0., 3., 0., 2.]])
    """
    if not 0 < k <= h.shape[-1]:
        raise ValueError(f"k must be in 1..{h.shape[-1]}, got {k}")
    index = h.topk(k, dim=-1).indices
    return torch.zeros_like(h).scatter(-1, index, h.gather(-1, index))


class PointMassPosterior(nn.Module):
    r"""Deterministic posterior head: q(z|x) = δ(z − E_φ(x)) with E_φ(x) = W h + b.

    ``h`` are the encoder body's features, so E_φ is the body followed by this linear map
    (with no hidden layers the whole encoder is linear, as in the linear autoencoder of
    survey §1.5). With ``k`` > 0 only the k largest code entries are kept (k-sparse
    autoencoder, survey §1.4.1(a); see :func:`keep_top_k`).

    Arguments:
        in_features: size of the encoder features.
        latent_dim: D, the size of the code.
        k: keep the k largest code entries per example (0: keep all).

    References:
        k-Sparse Autoencoders (Makhzani & Frey, 2014), arXiv:1312.5663.

    Example:
        >>> q = PointMassPosterior(32, 8, k=3)(torch.randn(5, 32))
        >>> int((q.mean != 0).sum(-1).max())
        3
    """

    def __init__(self, in_features: int, latent_dim: int, k: int = 0):
        super().__init__()
        if int(k) != k or not 0 <= k <= latent_dim:
            raise ValueError(f"k must be an integer in 0..{latent_dim} (latent_dim), got {k}")
        self.k = int(k)
        self.net = nn.Linear(in_features, latent_dim)

    def forward(self, h: torch.Tensor) -> Distribution:
        code = self.net(h)
        if self.k:
            code = keep_top_k(code, self.k)
        return PointMass(code, validate_args=False)

    def extra_repr(self) -> str:
        return f"k={self.k}" if self.k else ""
