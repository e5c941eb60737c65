"""The one model class: an encoder, a posterior, a prior, a decoder, a likelihood and an objective.

Every named model in vaekit (``vae``, ``beta_vae``, ``iwae``, ``ae``, …) is an instance of
:class:`LatentVariableModel` with different parts; presets in this package choose them.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution

from vaekit.distributions import latent_code
from vaekit.errors import ConfigError, DataError

__all__ = ["LatentVariableModel", "Objective"]

Objective = Callable[["LatentVariableModel", torch.Tensor, "torch.Tensor | None"], Mapping[str, torch.Tensor]]


class LatentVariableModel(nn.Module):
    r"""x → encoder → q(z|x) → z → decoder → p(x|z), with prior p(z) and an objective.

    Arguments:
        input_shape: shape of one example, (C, H, W) or (M,).
        latent_dim: D, the size of z.
        encoder: body mapping x (B, *input_shape) to features (B, F).
        posterior: head mapping features (B, F [+ condition]) to q(z|x).
        decoder: body mapping z (B, D [+ condition]) to the likelihood's raw parameters.
        likelihood: head mapping those parameters to p(x|z).
        prior: module returning p(z) (``None`` for deterministic autoencoders).
        objective: callable (model, x, y) -> named loss terms, ``"loss"`` minimised.
        num_classes / condition_dim: conditioning on one-hot labels or on a vector y,
            appended to the encoder features and to z (Sohn et al. 2015).
        config: the options that rebuild this model (``vaekit.create(**config)``).

    ``step`` counts optimisation steps; the trainer sets it and schedules (KL warm-up,
    capacity) read it.
    """

    def __init__(
        self,
        *,
        input_shape: Sequence[int],
        latent_dim: int,
        encoder: nn.Module,
        posterior: nn.Module,
        decoder: nn.Module,
        likelihood: nn.Module,
        prior: nn.Module | None,
        objective: Objective,
        num_classes: int | None = None,
        condition_dim: int | None = None,
        config: Mapping[str, Any] | None = None,
    ):
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.latent_dim = latent_dim
        self.encoder, self.posterior, self.decoder, self.likelihood = encoder, posterior, decoder, likelihood
        self.prior_module = prior
        self.objective = objective
        self.num_classes = num_classes
        self.condition_dim = condition_dim
        self.config = dict(config or {})
        self.step = 0
        self.dataset_size: int | None = None  # examples per training epoch, recorded by vaekit.fit
        self.data_range: tuple[float, float] | None = None  # (min, max) of the training data, recorded by vaekit.fit
        self.body_dtype: torch.dtype | None = None  # set by vaekit.fit(precision="bf16") while it trains; see run_body

    # -- conditioning -------------------------------------------------------------------
    @property
    def conditional(self) -> bool:
        return bool(self.num_classes or self.condition_dim)

    def condition(self, y: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        """The conditioning vector (B, K): one-hot labels or y itself; None for unconditional models."""
        if not self.conditional:
            if y is not None:
                raise ConfigError("this model is not conditional; create it with num_classes= or condition_dim= to pass y")
            return None
        if y is None:
            raise ConfigError("this conditional model needs y (labels or a conditioning vector)")
        y = self.labels_per_example(y, batch).to(self.device)
        if self.num_classes:
            if y.dim() != 1:
                raise DataError(f"labels must be a vector of {batch} class indices, got shape {tuple(y.shape)}")
            if y.is_floating_point() and not bool((y == y.round()).all()):
                raise DataError(f"labels must be whole class indices 0..{self.num_classes - 1}, got fractional values such as "
                                f"{y[y != y.round()][0].item():g}; round them or pass integer labels")
            try:
                return F.one_hot(y.long(), self.num_classes).to(self._dtype)
            except RuntimeError:
                raise DataError(f"labels must lie in 0..{self.num_classes - 1} (the model was created with num_classes={self.num_classes})") from None
        c = y.to(self._dtype).reshape(batch, -1)
        if c.shape[1] != self.condition_dim:
            raise DataError(f"conditioning vectors have {c.shape[1]} values but the model was created with condition_dim={self.condition_dim}")
        return c

    @property
    def _dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # -- the generative model and the inference network -----------------------------------
    def as_tensor(self, value: Any, name: str) -> torch.Tensor:
        """``value`` as a floating tensor of the model's dtype on its device.

        Accepts what a user naturally passes (numpy arrays, lists, tensors of any real dtype:
        float64, uint8, …) and refuses anything else with a :class:`DataError` naming ``name``.
        """
        if not isinstance(value, torch.Tensor):
            try:
                value = torch.as_tensor(value)
            except (TypeError, ValueError, RuntimeError):
                raise DataError(f"{name} must be a tensor or an array of numbers, got {type(value).__name__}") from None
        if value.is_complex():
            raise DataError(f"{name} must hold real numbers, got dtype {value.dtype}")
        first = next(self.parameters())
        return value.to(device=first.device, dtype=first.dtype)

    @staticmethod
    def labels_per_example(y: Any, batch: int) -> torch.Tensor:
        """``y`` (class labels or conditioning vectors: a tensor, numpy array or list) as a tensor with one
        entry per example of a batch of ``batch``, where it already is; a :class:`DataError` otherwise."""
        if not isinstance(y, torch.Tensor):
            try:
                y = torch.as_tensor(y)
            except (TypeError, ValueError, RuntimeError):
                raise DataError(f"y must be a tensor or an array of labels / vectors, got {type(y).__name__}") from None
        if y.dim() == 0 or y.shape[0] != batch:
            raise DataError(f"y has shape {tuple(y.shape)} but x has {batch} rows: give one label or vector per example")
        return y

    def check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise DataError(f"x must be a tensor, got {type(x).__name__}; pass torch.as_tensor(x) or use model.encode, which converts arrays")
        if x.dim() != len(self.input_shape) + 1 or tuple(x.shape[1:]) != self.input_shape:
            raise DataError(
                f"input has shape {tuple(x.shape)} but the model expects (batch, {', '.join(map(str, self.input_shape))}); "
                "reshape the data or create the model with a matching input_shape"
            )

    def features(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Encoder features (B, F), with the conditioning vector appended."""
        x = self.as_tensor(x, "x")
        self.check_input(x)
        h = self.run_body(self.encoder, x)
        c = self.condition(y, x.shape[0])
        return h if c is None else torch.cat([h, c], dim=-1)

    def run_body(self, body: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        """``body(inputs)``: under ``torch.autocast`` in ``body_dtype`` when it is set (mixed-precision training),
        with the output cast back to float32, so the heads, densities, KLs and log-sum-exps that follow stay in float32."""
        if self.body_dtype is None:
            return body(inputs)
        with torch.autocast(inputs.device.type, dtype=self.body_dtype):
            out = body(inputs)
        return out.float() if isinstance(out, torch.Tensor) and out.is_floating_point() else out

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Distribution:
        """q(z|x): a distribution with batch shape (B,) and event shape (latent_dim,)."""
        return self.posterior(self.features(x, y))

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> Distribution:
        """p(x|z): a distribution with batch shape (B,) and event shape ``input_shape``."""
        z = self.as_tensor(z, "z")
        if z.dim() == 0:
            raise DataError("z must have a batch dimension: shape (batch, latent_dim)")
        c = self.condition(y, z.shape[0])
        if c is not None and z.dim() != 2:
            raise DataError(f"z has shape {tuple(z.shape)}; a conditional model decodes codes of shape (batch, {self.latent_dim})")
        try:
            params = self.run_body(self.decoder, z if c is None else torch.cat([z, c], dim=-1))
        except RuntimeError as e:
            if "shape" not in str(e) and "size" not in str(e):
                raise
            raise DataError(f"z has shape {tuple(z.shape)}, which this decoder cannot take: it decodes codes of shape "
                            f"(batch, {self.latent_dim}) (torch said: {str(e).splitlines()[0]})") from None
        return self.likelihood(params)

    def decode_unchecked(self, z: torch.Tensor, y: torch.Tensor | None = None) -> Distribution:
        """p(x|z) as :meth:`decode` gives it, without its checks of a user's input: for codes the model drew
        itself, as importance sampling decodes them tile after tile (``vaekit.log_likelihood``), where the
        checks cost ~25 µs a call, 1–2 % of the time on the reference MLP VAE. A subclass that overrides
        :meth:`decode`, and a conditional model, are decoded by :meth:`decode`."""
        if y is None and not self.conditional and type(self).decode is LatentVariableModel.decode:
            return self.likelihood(self.run_body(self.decoder, z))
        return self.decode(z, y)

    def prior(self) -> Distribution:
        """p(z)."""
        if self.prior_module is None:
            raise ConfigError(f"{self.config.get('model', 'this model')} is deterministic: it has no prior to sample from")
        return self.prior_module()

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Mapping[str, torch.Tensor]:
        """The objective's named terms for a batch; ``out["loss"]`` is the scalar minimised."""
        if not isinstance(x, torch.Tensor) or x.dtype != self._dtype:
            x = self.as_tensor(x, "x")
        return self.objective(self, x, y)

    forward = loss

    # -- using a trained model ----------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | int | Sequence[int] | None = None, mean: bool = True) -> torch.Tensor:
        """n draws z ~ p(z) decoded to data space: the decoder's mean (or a draw of x when ``mean=False``).

        For conditional models ``y`` is one label (int or 0-d tensor) or n labels, or one or n
        conditioning vectors.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"n must be a positive number of samples, got {n!r}")
        if y is not None:
            y = torch.as_tensor(y, device=self.device)
            if self.num_classes is not None and y.dim() == 0:  # one label for all n
                y = y.expand(n)
            elif self.num_classes is None and y.dim() == 1 and (y.shape[0] != n or self.condition_dim != 1):
                y = y.expand(n, -1)  # one conditioning vector for all n (n values are n vectors only when condition_dim is 1)
        z = self.prior().sample((n,))
        px = self.decode(z, y)
        return px.mean if mean else px.sample()

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Decoder mean at the posterior's code: D(E(x))."""
        return self.decode(latent_code(self.encode(x, y)), y).mean

    @torch.no_grad()
    def transform(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Latent codes (B, D): posterior means (a point for deterministic autoencoders)."""
        return latent_code(self.encode(x, y))

    # -- persistence --------------------------------------------------------------------
    def save(self, directory: str) -> None:
        """Write ``model.safetensors`` and ``config.json`` to ``directory`` (atomically)."""
        from vaekit.models.persistence import save_model

        save_model(self, directory)

    def extra_repr(self) -> str:
        return f"model={self.config.get('model')!r}, input_shape={self.input_shape}, latent_dim={self.latent_dim}"
