"""The options every model shares, and the parts built from them (bodies, heads, prior)."""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field, fields
from typing import Any

from torch import nn

from vaekit.distributions import POSTERIORS, StandardNormalPrior, VampPrior, make_likelihood
from vaekit.distributions.likelihoods import LIKELIHOODS, LikelihoodHead
from vaekit.distributions.posteriors import DEFAULT_LOGVAR_CLAMP, check_logvar_clamp
from vaekit.errors import ConfigError
from vaekit.models.custom_bodies import CustomBody, check_body_module, check_decoder, check_encoder, custom_bodies_record
from vaekit.models.model import LatentVariableModel, Objective
from vaekit.distributions.vamp_prior import DEFAULT_PSEUDO_INPUTS
from vaekit.nn import ConvDecoder, ConvEncoder, GatedMLPDecoder, GatedMLPEncoder, MLPDecoder, MLPEncoder

__all__ = ["ModelSpec", "PRIORS"]

PRIORS = ("standard", "vamp")
"""Values of the shared ``prior`` option: N(0, I), or the VampPrior (Tomczak & Welling 2018)."""


@dataclass
class ModelSpec:
    """Shared options: data shape, latent size, body and observation model.

    Arguments:
        input_shape: shape of one example: (C, H, W) for images, (M,) for vectors.
        latent_dim: size of z.
        likelihood: "bernoulli" (data in [0, 1]), "gaussian" or "logistic" (8-bit data).
        likelihood_scale: σ of the Gaussian likelihood, a number or "learned".
        arch: "mlp" (any data), "conv" (images), "gated_mlp" (an MLP of gated layers
            h = (Wx + b) ⊙ σ(Vx + c), the VampPrior code's bodies), or "auto": conv for images
            (C, H, W) of at least 8×8 pixels, MLP otherwise.
        hidden_dims: MLP hidden sizes (the decoder mirrors them).
        channels: convolution channels, each layer halving H and W.
        num_classes: condition on one-hot labels with this many classes.
        condition_dim: condition on a real vector of this size.
        logvar_clamp: ``(min, max)`` range of a Gaussian posterior's log σ² (a flow's base
            too), so a runaway encoder gives a finite σ instead of NaN; the default
            (−30, 20), σ from 3·10⁻⁷ to 2·10⁴, leaves normal training unchanged; (−6, 2) is the
            VampPrior code's; None: no clamp. Every posterior head that has a log σ takes it.
        prior: p(z) of the variational models: "standard" (N(0, I)) or "vamp", the mixture
            (1/K) Σ_k q(z|u_k) of the model's own posterior at K learned pseudo-inputs
            (:class:`vaekit.distributions.VampPrior`; Tomczak & Welling 2018, arXiv:1705.07120).
            Every preset built by :meth:`build` takes it; a model that cannot (deterministic,
            conditional, flow posteriors, its own prior) refuses it.
        pseudo_inputs: K, the number of the VampPrior's pseudo-inputs (ignored by "standard").
        custom_encoder / custom_decoder: the user's networks (``nn.Module``) used as the bodies
            instead of ``arch``'s (``vaekit.create(..., encoder=, decoder=)``), checked on a dummy batch
            when built; not options (never in the config). Contract: :mod:`vaekit.models.custom_bodies`.
    """

    input_shape: tuple[int, ...]
    latent_dim: int = 16
    likelihood: str = "bernoulli"
    likelihood_scale: float | str = "learned"
    arch: str = "auto"
    hidden_dims: tuple[int, ...] = (512, 512)
    channels: tuple[int, ...] = (32, 64)
    num_classes: int | None = None
    condition_dim: int | None = None
    logvar_clamp: tuple[float, float] | None = DEFAULT_LOGVAR_CLAMP
    prior: str = "standard"
    pseudo_inputs: int = DEFAULT_PSEUDO_INPUTS
    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    custom_encoder: nn.Module | None = field(default=None, repr=False, compare=False, metadata={"option": False})
    custom_decoder: nn.Module | None = field(default=None, repr=False, compare=False, metadata={"option": False})

    def __post_init__(self) -> None:
        check_body_module(self.custom_encoder, "encoder")
        check_body_module(self.custom_decoder, "decoder")
        self.input_shape = tuple(int(s) for s in self.input_shape)
        self.hidden_dims = tuple(int(h) for h in self.hidden_dims)
        self.channels = tuple(int(c) for c in self.channels)
        if not self.input_shape or any(s <= 0 for s in self.input_shape):
            raise ConfigError(f"input_shape must be a tuple of positive sizes, got {self.input_shape}")
        if int(self.latent_dim) != self.latent_dim or self.latent_dim <= 0:
            raise ConfigError(f"latent_dim must be a positive integer, got {self.latent_dim}")
        self.latent_dim = int(self.latent_dim)
        if self.likelihood not in LIKELIHOODS:
            raise ConfigError(f"unknown likelihood {self.likelihood!r}; choose one of {', '.join(LIKELIHOODS)}")
        if self.likelihood_scale != "learned":
            try:
                scale = float(self.likelihood_scale)
            except (TypeError, ValueError):
                scale = -1.0
            if not scale > 0:
                raise ConfigError(f'likelihood_scale must be a positive number or "learned", got {self.likelihood_scale!r}')
            self.likelihood_scale = scale
        if self.arch == "auto":
            self.arch = "conv" if len(self.input_shape) == 3 and min(self.input_shape[1:]) >= 8 else "mlp"
        if self.arch not in ("mlp", "conv", "gated_mlp"):
            raise ConfigError(f'unknown arch {self.arch!r}; choose "auto", "mlp", "gated_mlp" or "conv"')
        if self.arch == "conv" and len(self.input_shape) != 3:
            raise ConfigError(f'arch="conv" needs images of shape (C, H, W), got input_shape {self.input_shape}; use arch="mlp"')
        if self.arch == "conv" and not self.channels:
            raise ConfigError("arch='conv' needs at least one entry in channels")
        if any(h <= 0 for h in self.hidden_dims) or any(c <= 0 for c in self.channels):
            raise ConfigError("hidden_dims and channels must be positive sizes")
        if isinstance(self.logvar_clamp, str):  # "-6,2" from the command line
            text = self.logvar_clamp.strip().strip("()[]")
            self.logvar_clamp = None if text.lower() in ("none", "null", "") else tuple(v.strip() for v in text.split(","))
        self.logvar_clamp = check_logvar_clamp(self.logvar_clamp)
        if self.prior not in PRIORS:
            raise ConfigError(f'unknown prior {self.prior!r}; choose "standard" (N(0, I)) or "vamp" (VampPrior, with pseudo_inputs=K)')
        if isinstance(self.pseudo_inputs, bool) or int(self.pseudo_inputs) != self.pseudo_inputs or self.pseudo_inputs < 1:
            raise ConfigError(f"pseudo_inputs must be a positive integer (the VampPrior's K, e.g. 500), got {self.pseudo_inputs!r}")
        self.pseudo_inputs = int(self.pseudo_inputs)
        if self.num_classes is not None and self.condition_dim is not None:
            raise ConfigError("give num_classes (labels) or condition_dim (vectors), not both")
        for name in ("num_classes", "condition_dim"):
            value = getattr(self, name)
            if value is not None and (int(value) != value or value <= 0):
                raise ConfigError(f"{name} must be a positive integer, got {value}")

    # -- derived sizes ------------------------------------------------------------------
    @property
    def num_inputs(self) -> int:
        return math.prod(self.input_shape)

    @property
    def condition_size(self) -> int:
        return int(self.num_classes or self.condition_dim or 0)

    def as_config(self) -> dict[str, Any]:
        """JSON-ready common options (custom bodies: a record that they are custom, never the modules)."""
        config = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra" and f.metadata.get("option", True)}
        for key in ("input_shape", "hidden_dims", "channels"):
            config[key] = list(config[key])
        if config["logvar_clamp"] is not None:
            config["logvar_clamp"] = list(config["logvar_clamp"])
        if self.custom_encoder is not None or self.custom_decoder is not None:
            config["custom_bodies"] = custom_bodies_record(self.custom_encoder, self.custom_decoder)
        return config

    # -- parts ----------------------------------------------------------------------------
    def encoder(self) -> nn.Module:
        """The encoder body chosen by ``arch`` (or the custom one); ``.out_features`` is its feature size."""
        if self.custom_encoder is not None:
            return CustomBody(self.custom_encoder, check_encoder(self.custom_encoder, self.input_shape))
        if self.arch == "conv":
            try:
                return ConvEncoder(self.input_shape, self.channels)
            except ValueError as e:
                raise ConfigError(str(e)) from None
        if self.arch == "gated_mlp":
            return GatedMLPEncoder(self.num_inputs, self.hidden_dims)
        return MLPEncoder(self.num_inputs, self.hidden_dims)

    def decoder(self, num_parameters: int, in_features: int | None = None) -> nn.Module:
        """The decoder body: z (+ condition) to ``num_parameters`` raw values per observed value."""
        in_features = (self.latent_dim + self.condition_size) if in_features is None else in_features
        if self.custom_decoder is not None:
            check_decoder(self.custom_decoder, in_features, self.input_shape, self.likelihood, num_parameters)
            return CustomBody(self.custom_decoder, num_parameters * self.num_inputs)
        if self.arch == "conv":
            try:  # reached without the encoder's check when the encoder is custom
                return ConvDecoder(in_features, self.input_shape, num_parameters * self.input_shape[0], self.channels)
            except ValueError as e:
                raise ConfigError(str(e)) from None
        if self.arch == "gated_mlp":
            return GatedMLPDecoder(in_features, num_parameters * self.num_inputs, tuple(reversed(self.hidden_dims)))
        return MLPDecoder(in_features, num_parameters * self.num_inputs, tuple(reversed(self.hidden_dims)))

    def likelihood_head(self) -> LikelihoodHead:
        return make_likelihood(self.likelihood, self.input_shape, self.likelihood_scale)

    def posterior_head(self, kind: str, in_features: int, **options: Any) -> nn.Module:
        if kind not in POSTERIORS:
            raise ConfigError(f"unknown posterior {kind!r}; choose one of {', '.join(POSTERIORS)}")
        head = POSTERIORS[kind]
        if "logvar_clamp" not in options and "logvar_clamp" in inspect.signature(head).parameters:
            options = {**options, "logvar_clamp": self.logvar_clamp}
        return head(in_features, self.latent_dim, **options)

    def prior_for(self, encoder: nn.Module, posterior: nn.Module, latent_dim: int | None = None) -> nn.Module:
        """The prior module the ``prior`` option names: N(0, I), or a VampPrior using ``posterior(encoder(u))``.

        The VampPrior's pseudo-inputs are clipped to [0, 1] for Bernoulli and discretised-logistic
        data (both live there) and left unclipped for Gaussian data. Conditional models are
        refused: q(z|u_k) would need a label for every pseudo-input. ``latent_dim``: the size
        of z when it is not the spec's (the top layer of ``hvae``).
        """
        if self.prior == "standard":
            return StandardNormalPrior(self.latent_dim if latent_dim is None else latent_dim)
        if self.condition_size:
            raise ConfigError('prior="vamp" takes unconditional models (a pseudo-input has no label); drop num_classes/condition_dim or use prior="standard"')
        data_range = None if self.likelihood == "gaussian" else (0.0, 1.0)
        return VampPrior(self.input_shape, self.pseudo_inputs, data_range).bind(encoder, posterior)

    def check_prior_taken(self, prior: nn.Module | None) -> None:
        """Refuse ``prior="vamp"`` for a model built with a prior of its own (or none)."""
        if self.prior != "standard" and not (isinstance(prior, nn.Module) and any(isinstance(m, VampPrior) for m in prior.modules())):
            raise ConfigError(f'prior={self.prior!r} is for the variational presets with a Gaussian posterior; this model has '
                              f'{"no prior" if prior is None else "its own prior (" + type(prior).__name__ + ")"}: use prior="standard"')

    def build(
        self,
        objective: Objective,
        *,
        posterior: str | nn.Module = "diagonal",
        prior: nn.Module | None | str = "standard_normal",
        config: dict[str, Any] | None = None,
        posterior_options: dict[str, Any] | None = None,
    ) -> LatentVariableModel:
        """Compose a model from this spec: bodies from ``arch``, the named (or given)
        posterior head, the prior of the ``prior`` option (N(0, I) or the VampPrior) unless
        told otherwise, and ``objective``."""
        own_prior = not (isinstance(prior, str) and prior == "standard_normal")
        if own_prior:
            self.check_prior_taken(prior)
        encoder = self.encoder()
        head_in = encoder.out_features + self.condition_size
        if isinstance(posterior, str):
            if self.prior == "vamp" and posterior not in ("diagonal", "full_covariance"):
                raise ConfigError(f'prior="vamp" mixes Gaussian posteriors: it needs posterior="diagonal" or "full_covariance", got {posterior!r}')
            posterior = self.posterior_head(posterior, head_in, **(posterior_options or {}))
        likelihood = self.likelihood_head()
        if not own_prior:
            prior = self.prior_for(encoder, posterior)
        return LatentVariableModel(
            input_shape=self.input_shape,
            latent_dim=self.latent_dim,
            encoder=encoder,
            posterior=posterior,
            decoder=self.decoder(likelihood.num_parameters),
            likelihood=likelihood,
            prior=prior,
            objective=objective,
            num_classes=self.num_classes,
            condition_dim=self.condition_dim,
            config=config,
        )



