"""The VQ-VAE's posterior: nearest-neighbour quantisation of a grid of encoder outputs to a codebook.

van den Oord et al. (2017) replace the Gaussian posterior by a deterministic, discrete one:
each vector z_e(x)_p of the encoder's (B, D, h, w) map is replaced by its nearest codebook
entry,

    k_p = argmin_j ‖z_e(x)_p − e_j‖²,    z_q(x)_p = e_{k_p},

so q(k|x) puts all its mass on k = (k_p)_p, and with a uniform prior over codes the ELBO's
KL is the constant log K·h·w. :class:`VectorQuantizer` is the head that does this; it holds
the codebook e_1..e_K (a parameter learned through the codebook loss, or a buffer updated by
exponential moving averages) and restarts codes that fall out of use. The losses live in
:mod:`vaekit.objectives.vector_quantization`.

References:
    Neural Discrete Representation Learning (van den Oord, Vinyals & Kavukcuoglu, NeurIPS
    2017), arXiv:1711.00937. Generating Diverse High-Fidelity Images with VQ-VAE-2 (Razavi,
    van den Oord & Vinyals, NeurIPS 2019), arXiv:1906.00446. Jukebox: A Generative Model for
    Music (Dhariwal et al., 2020), arXiv:2005.00341 (random restarts of unused codes).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution, constraints

from vaekit.distributions.point_mass import PointMass

__all__ = ["QuantizedCode", "VectorQuantizer", "CodebookPrior", "nearest_codes", "straight_through", "ema_codebook_update", "LAPLACE_EPS"]

LAPLACE_EPS = 1e-5
"""ε of the Laplace smoothing of the EMA cluster sizes (Sonnet's ``VectorQuantizerEMA`` default)."""


def nearest_codes(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    r"""Index of the nearest codebook vector of every row: k_i = argmin_j ‖z_i − e_j‖².

    Computed as argmin_j (‖e_j − c‖² − 2 (z_i − c)·(e_j − c)) with c the codebook's mean
    (‖z_i − c‖² does not change the argmin), one (N, K) matrix product; ties go to the lowest
    index. Centring keeps the float32 rounding of the product at the scale of the codebook's
    spread rather than of its distance from the origin (codes clustered far from 0, as after a
    ReLU encoder, would otherwise be confused with their neighbours).

    Arguments:
        z: (N, D) vectors.
        codebook: (K, D) codebook e_1..e_K.

    Example:
        >>> nearest_codes(torch.tensor([[0.9, 0.0], [0.0, -2.0]]), torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, -1.0]]))
        tensor([1, 2])
    """
    center = codebook.mean(0)
    codebook, z = codebook - center, z - center
    distances = codebook.pow(2).sum(1) - 2 * z @ codebook.T
    return distances.argmin(1)


def straight_through(z: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    r"""z + sg[q − z]: the value of q, the gradient of z (the straight-through estimator).

    The forward pass decodes the quantised q = z_q(x); the backward pass copies the
    decoder's gradient ∂L/∂z_q onto the encoder output z = z_e(x) (∂/∂z is the identity),
    since the argmin has no useful gradient (van den Oord et al. 2017, §3.2; Bengio, Léonard
    & Courville 2013, arXiv:1308.3432).
    """
    return z + (q - z).detach()


def ema_codebook_update(
    cluster_size: torch.Tensor,
    embed_sum: torch.Tensor,
    z: torch.Tensor,
    indices: torch.Tensor,
    decay: float,
    eps: float = LAPLACE_EPS,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""One exponential-moving-average codebook step (van den Oord et al. 2017, appendix A.1).

    With n_i the number of rows of z assigned to code i in this batch and γ = ``decay``:

        N_i ← γ N_i + (1 − γ) n_i
        m_i ← γ m_i + (1 − γ) Σ_{j: k_j = i} z_j
        Ñ_i = (N_i + ε) / (Σ_l N_l + K ε) · Σ_l N_l        (Laplace smoothing: no division by 0)
        e_i = m_i / Ñ_i

    the smoothing as in Sonnet's ``VectorQuantizerEMA`` (Razavi et al. 2019).

    Arguments:
        cluster_size: N, (K,).
        embed_sum: m, (K, D).
        z: (N, D) encoder outputs.
        indices: (N,) their codes.
        decay: γ in [0, 1).
        eps: ε of the Laplace smoothing.

    Returns:
        the new N, m and codebook e (new tensors; the inputs are not modified).
    """
    k = cluster_size.shape[0]
    one_hot = F.one_hot(indices, k).to(z.dtype)  # (N, K)
    cluster_size = decay * cluster_size + (1 - decay) * one_hot.sum(0)
    embed_sum = decay * embed_sum + (1 - decay) * one_hot.T @ z
    total = cluster_size.sum()
    smoothed = (cluster_size + eps) / (total + k * eps) * total
    return cluster_size, embed_sum, embed_sum / smoothed.unsqueeze(1)


def _random_rows(z: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` rows of z drawn uniformly (without replacement when z has enough rows)."""
    if z.shape[0] >= count:
        return z[torch.randperm(z.shape[0], device=z.device)[:count]]
    return z[torch.randint(z.shape[0], (count,), device=z.device)]


class QuantizedCode(PointMass):
    r"""q(z|x) of the VQ-VAE: the point mass at the quantised grid z_q(x), flattened to (B, D·h·w).

    ``loc`` (= ``mean`` = ``rsample()``) carries the straight-through gradient to the encoder
    (:func:`straight_through`); when no gradient is tracked it is exactly the codebook vectors. The quantisation's parts ride along for the objective:
    ``indices`` k (B, h, w), ``codes`` e_k (B, D, h, w; differentiable with respect to a
    learned codebook) and ``inputs`` z_e(x) (B, D, h, w).
    """

    indices: torch.Tensor
    codes: torch.Tensor
    inputs: torch.Tensor

    @classmethod
    def of(cls, inputs: torch.Tensor, codes: torch.Tensor, indices: torch.Tensor) -> "QuantizedCode":
        # without a gradient to carry, the codes themselves (z + (e − z) can differ from e in the last bit)
        loc = straight_through(inputs, codes) if inputs.requires_grad and torch.is_grad_enabled() else codes
        q = cls(loc.flatten(1), validate_args=False)
        q.inputs, q.codes, q.indices = inputs, codes, indices
        return q


class VectorQuantizer(nn.Module):
    r"""Posterior head of the VQ-VAE: a codebook of K vectors e_j ∈ R^D and nearest-neighbour quantisation.

    ``forward(z_e)`` maps an encoder map (B, D, h, w) to a :class:`QuantizedCode`: every
    position's vector replaced by its nearest codebook vector (:func:`nearest_codes`), with
    the straight-through gradient. Training updates go through :meth:`update`, which the
    objective calls after each training batch:

    * ``ema=True``: the codebook is a buffer moved by :func:`ema_codebook_update` (decay γ),
      and the codebook loss is not needed (van den Oord et al. 2017, appendix A.1);
      ``ema=False``: the codebook is a parameter trained by the codebook loss ‖sg[z_e] − e‖².
    * Dead-code restarts: a code not chosen by any position for ``restart_after`` consecutive
      training batches is re-seeded with a random encoder output of the current batch
      (Dhariwal et al. 2020, §2.2; vector-quantize-pytorch's ``threshold_ema_dead_code``),
      and its EMA statistics restart at N_i = 1, m_i = e_i. Without restarts the encoder
      outputs outgrow the codebook in the first steps and most codes never win again (on
      Fashion-MNIST, K = 128: perplexity 6 after 80 batches with restarts after 100 batches,
      70 with restarts after 10).
    * :meth:`initialize`: on the first training batch the codebook is set to K random encoder
      outputs (N_i = 1, m_i = e_i), so every code starts where the data are (a codebook
      drawn at random far from z_e leaves most codes unused).

    State (buffers, saved with the model): ``codebook`` (a parameter when ``ema=False``),
    ``cluster_size`` N and ``embed_sum`` m (EMA only), ``unused_steps`` (batches since each code
    was last chosen) and ``initialized``. Updates never read tensors back to the host. Under
    ``torchrun`` DDP broadcasts buffers from rank 0 before every forward pass, so the codebook
    follows rank 0's batches (the other processes' statistics are not pooled).

    Arguments:
        codebook_size: K ≥ 2.
        embedding_dim: D, the size of each codebook vector.
        ema: EMA codebook updates (True) or a codebook learned by its loss (False).
        decay: γ of the EMA updates, in [0, 1).
        restart_after: batches a code may go unused before it is restarted (0: never).

    References:
        Neural Discrete Representation Learning (van den Oord, Vinyals & Kavukcuoglu, NeurIPS
        2017), arXiv:1711.00937. Jukebox (Dhariwal et al., 2020), arXiv:2005.00341.

    Example:
        >>> head = VectorQuantizer(8, 4)
        >>> q = head(torch.randn(2, 4, 3, 3))
        >>> q.indices.shape, q.mean.shape
        (torch.Size([2, 3, 3]), torch.Size([2, 36]))
    """

    def __init__(self, codebook_size: int, embedding_dim: int, *, ema: bool = True, decay: float = 0.99, restart_after: int = 10):
        super().__init__()
        if int(codebook_size) != codebook_size or codebook_size < 2:
            raise ValueError(f"codebook_size must be an integer ≥ 2, got {codebook_size}")
        if not 0 <= decay < 1:
            raise ValueError(f"decay must lie in [0, 1), got {decay}")
        if int(restart_after) != restart_after or restart_after < 0:
            raise ValueError(f"restart_after must be an integer ≥ 0 (0: never restart), got {restart_after}")
        self.codebook_size, self.embedding_dim = int(codebook_size), int(embedding_dim)
        self.ema, self.decay, self.restart_after = bool(ema), float(decay), int(restart_after)
        codebook = torch.randn(self.codebook_size, self.embedding_dim)
        if self.ema:
            self.register_buffer("codebook", codebook)
            self.register_buffer("cluster_size", torch.ones(self.codebook_size))
            self.register_buffer("embed_sum", codebook.clone())
        else:
            self.codebook = nn.Parameter(codebook)
        self.register_buffer("unused_steps", torch.zeros(self.codebook_size, dtype=torch.long))
        self.register_buffer("initialized", torch.zeros(1, dtype=torch.bool))

    def _check(self, z_e: torch.Tensor) -> None:
        if z_e.dim() != 4 or z_e.shape[1] != self.embedding_dim:
            raise ValueError(f"the quantiser takes encoder maps (B, {self.embedding_dim}, h, w), got shape {tuple(z_e.shape)}")

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codebook vectors of an index grid: (B, h, w) long -> (B, D, h, w)."""
        return F.embedding(indices, self.codebook).permute(0, 3, 1, 2)

    def quantize(self, z_e: torch.Tensor) -> torch.Tensor:
        """The nearest code of every position: (B, D, h, w) -> (B, h, w) long (no gradient)."""
        self._check(z_e)
        b, d, h, w = z_e.shape
        with torch.no_grad():
            return nearest_codes(z_e.permute(0, 2, 3, 1).reshape(-1, d), self.codebook).view(b, h, w)

    def forward(self, z_e: torch.Tensor) -> QuantizedCode:
        indices = self.quantize(z_e)
        return QuantizedCode.of(z_e, self.lookup(indices), indices)

    @staticmethod
    def _rows(z_e: torch.Tensor) -> torch.Tensor:
        return z_e.detach().permute(0, 2, 3, 1).reshape(-1, z_e.shape[1])

    @torch.no_grad()
    def initialize(self, z_e: torch.Tensor) -> None:
        """Seed the codebook with K random rows of this batch's encoder outputs, once (a no-op afterwards)."""
        self._check(z_e)
        fresh = ~self.initialized  # (1,): where, not if, so nothing is read back to the host
        seeds = _random_rows(self._rows(z_e), self.codebook_size).to(self.codebook.dtype)
        self.codebook.copy_(torch.where(fresh, seeds, self.codebook))
        if self.ema:
            self.embed_sum.copy_(torch.where(fresh, seeds, self.embed_sum))
            self.cluster_size.copy_(torch.where(fresh, torch.ones_like(self.cluster_size), self.cluster_size))
        self.initialized.fill_(True)

    @torch.no_grad()
    def update(self, z_e: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """After a training batch: the EMA step (``ema=True``) and dead-code restarts.

        Returns the (K,) mask of codes restarted by this call.
        """
        self._check(z_e)
        z, flat = self._rows(z_e).to(self.codebook.dtype), indices.reshape(-1)
        if self.ema:
            cluster_size, embed_sum, codebook = ema_codebook_update(self.cluster_size, self.embed_sum, z, flat, self.decay)
            self.cluster_size.copy_(cluster_size)
            self.embed_sum.copy_(embed_sum)
            self.codebook.copy_(codebook)
        used = torch.bincount(flat, minlength=self.codebook_size) > 0
        self.unused_steps.add_(1).masked_fill_(used, 0)
        if not self.restart_after:
            return torch.zeros_like(used)
        dead = self.unused_steps >= self.restart_after
        seeds = _random_rows(z, self.codebook_size)
        self.codebook.copy_(torch.where(dead.unsqueeze(1), seeds, self.codebook))
        if self.ema:
            self.embed_sum.copy_(torch.where(dead.unsqueeze(1), seeds, self.embed_sum))
            self.cluster_size.masked_fill_(dead, 1.0)
        self.unused_steps.masked_fill_(dead, 0)
        return dead

    def extra_repr(self) -> str:
        return (f"codebook_size={self.codebook_size}, embedding_dim={self.embedding_dim}, ema={self.ema}, "
                f"decay={self.decay}, restart_after={self.restart_after}")


class CodebookPrior(Distribution):
    r"""p(z) of a VQ-VAE: a distribution over code-index grids pushed through the codebook.

    z = flatten(e_k) with k ~ ``codes`` (a distribution over (h, w) grids of indices, such as
    the fitted :class:`~vaekit.distributions.GatedPixelCNN`'s), so samples are (n, D·h·w)
    codebook-vector grids in the layout of :class:`QuantizedCode` and ``decode`` takes them.
    The distribution is discrete: ``log_prob(z)`` = log p(k) where z is the grid of codebook
    vectors e_k (k found by :func:`nearest_codes`; equal up to float rounding), −∞ elsewhere.

    Arguments:
        codes: a distribution with event shape (h, w) over integer grids.
        codebook: (K, D) codebook.
    """

    arg_constraints: dict = {}
    has_rsample = False

    def __init__(self, codes: Distribution, codebook: torch.Tensor):
        self.codes, self.codebook = codes, codebook
        h, w = codes.event_shape
        super().__init__(torch.Size(), torch.Size([codebook.shape[1] * h * w]), validate_args=False)

    @property
    def support(self) -> constraints.Constraint:
        return constraints.real_vector

    def _grids(self, k: torch.Tensor) -> torch.Tensor:
        return F.embedding(k, self.codebook).permute(*range(k.dim() - 2), -1, -3, -2).flatten(-3)

    @torch.no_grad()
    def sample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size()) -> torch.Tensor:
        return self._grids(self.codes.sample(torch.Size(sample_shape)))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        h, w = self.codes.event_shape
        d = self.codebook.shape[1]
        batch = value.shape[:-1]
        grids = value.reshape(-1, d, h, w)
        k = nearest_codes(grids.permute(0, 2, 3, 1).reshape(-1, d), self.codebook).view(-1, h, w)
        exact = torch.isclose(self._grids(k), grids.flatten(1), rtol=1e-6, atol=1e-7).all(-1)  # up to rounding
        log_p = self.codes.log_prob(k).masked_fill(~exact, -math.inf)
        return log_p.reshape(batch)
