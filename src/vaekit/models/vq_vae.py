"""The VQ-VAE (van den Oord et al. 2017; survey §2.12): a grid of discrete codes and a learned code prior.

The composition: a convolutional encoder that keeps its spatial grid
(:class:`~vaekit.nn.ConvGridEncoder`, z_e(x) of shape (B, D, h, w)), the quantiser as posterior
head (:class:`~vaekit.distributions.VectorQuantizer`: q(z|x) is the point mass at the nearest
codebook vectors z_q(x)), the mirrored grid decoder and the shared likelihood head, trained by
:class:`~vaekit.objectives.VectorQuantization`. There is no continuous prior
(``prior_module`` is None, like the deterministic autoencoders): generation needs a prior
over the code grid, fitted after training (``vaekit fit-prior RUN``, or
:func:`vaekit.samplers.fit_prior`), which is a :class:`~vaekit.distributions.GatedPixelCNN`
kept beside the model as ``prior.safetensors`` + ``prior.json`` and attached by
``vaekit.load``.

Codes: ``encode``/``transform`` give z_q(x) flattened to (B, D·h·w) (channel-major, i.e.
``grid.flatten(1)``), so ``model.latent_dim`` is D·h·w; ``decode`` takes that or the grid
(B, D, h, w); ``code_indices`` and ``decode_indices`` work with the (B, h, w) index grid.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Sequence

import torch
from safetensors.torch import save_file
from torch.distributions import Distribution

from vaekit._io import atomic_path, atomic_write_text, read_checked_tensors, tensors_sha256
from vaekit._version import __version__
from vaekit.distributions.pixelcnn import GatedPixelCNN
from vaekit.distributions.vector_quantized import CodebookPrior, VectorQuantizer
from vaekit.errors import CheckpointError, ConfigError, DataError
from vaekit.models.model import LatentVariableModel
from vaekit.models.persistence import state_tensors
from vaekit.models.registry import register
from vaekit.models.spec import ModelSpec
from vaekit.nn.grid import ConvGridDecoder, ConvGridEncoder
from vaekit.objectives.vector_quantization import VectorQuantization

__all__ = ["VectorQuantizedModel", "vq_vae", "save_code_prior", "read_code_prior", "model_digest",
           "PRIOR_WEIGHTS_FILE", "PRIOR_CONFIG_FILE"]

PRIOR_WEIGHTS_FILE = "prior.safetensors"
PRIOR_CONFIG_FILE = "prior.json"
NO_PRIOR = ("this VQ-VAE has no code prior yet: run `vaekit fit-prior RUN` on its run folder "
            "(or vaekit.samplers.fit_prior(model, x) in Python), then sample")


def model_digest(model: LatentVariableModel) -> str:
    """SHA-256 of the model's weights and buffers (what a code prior was fitted to)."""
    return tensors_sha256(state_tensors(model))


class VectorQuantizedModel(LatentVariableModel):
    r"""A :class:`LatentVariableModel` whose code is an (h, w) grid of codebook vectors.

    Arguments:
        grid_shape: (h, w), the encoder's output grid.
        embedding_dim: D, the size of each codebook vector.
        **parts: the rest of :class:`LatentVariableModel`; ``posterior`` is a
            :class:`~vaekit.distributions.VectorQuantizer`, ``latent_dim`` is D·h·w.

    ``code_prior`` is the fitted :class:`~vaekit.distributions.GatedPixelCNN` (None until one
    is fitted or loaded). It is not part of the model's weights: it lives in its own files
    beside the model, so a model trained, saved and reloaded before any prior exists is
    complete.

    References:
        Neural Discrete Representation Learning (van den Oord, Vinyals & Kavukcuoglu, NeurIPS
        2017), arXiv:1711.00937.

    Example:
        >>> model = vaekit.create("vq_vae", input_shape=(1, 28, 28), codebook_size=64)  # doctest: +SKIP
        >>> model.code_indices(torch.rand(2, 1, 28, 28)).shape  # doctest: +SKIP
        torch.Size([2, 7, 7])
    """

    def __init__(self, *, grid_shape: Sequence[int], embedding_dim: int, **parts: Any):
        super().__init__(**parts)
        self.grid_shape = tuple(int(s) for s in grid_shape)
        self.embedding_dim = int(embedding_dim)
        self._attach(None, {})

    def _attach(self, prior: GatedPixelCNN | None, info: dict[str, Any]) -> None:
        # not a submodule: its weights stay out of model.safetensors (they have their own file)
        object.__setattr__(self, "code_prior", prior)
        object.__setattr__(self, "code_prior_info", dict(info))

    @property
    def codebook_size(self) -> int:
        return self.posterior.codebook_size

    # -- codes ----------------------------------------------------------------------------
    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> Distribution:
        """p(x|z_q): z is (B, D·h·w) as ``encode`` gives it, or the grid (B, D, h, w)."""
        if not isinstance(z, torch.Tensor):
            z = self.as_tensor(z, "z") if hasattr(self, "as_tensor") else torch.as_tensor(z)
        d, (h, w) = self.embedding_dim, self.grid_shape
        if z.dim() == 2 and z.shape[1] == self.latent_dim:
            z = z.reshape(-1, d, h, w)
        elif z.dim() != 4 or tuple(z.shape[1:]) != (d, h, w):
            raise DataError(f"z has shape {tuple(z.shape)}; this VQ-VAE decodes codes of shape (batch, {self.latent_dim}) "
                            f"or grids (batch, {d}, {h}, {w})")
        return super().decode(z, y)

    @torch.no_grad()
    def code_indices(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The index grid k(x) = argmin_j ‖z_e(x)_p − e_j‖², shape (B, h, w), long."""
        return self.posterior.quantize(self.features(x, y))

    def decode_indices(self, indices: torch.Tensor) -> Distribution:
        """p(x | z_q = e_k) for an index grid k of shape (B, h, w)."""
        indices = torch.as_tensor(indices, device=self.device)
        if indices.is_floating_point() or indices.is_complex() or indices.dim() != 3 or tuple(indices.shape[1:]) != self.grid_shape:
            raise DataError(f"code indices must be an integer tensor of shape (batch, {', '.join(map(str, self.grid_shape))}), "
                            f"got {indices.dtype} {tuple(indices.shape)}")
        if indices.numel() and not bool(((indices >= 0) & (indices < self.codebook_size)).all()):
            raise DataError(f"code indices must lie in 0..{self.codebook_size - 1} (codebook_size={self.codebook_size})")
        return self.decode(self.posterior.lookup(indices.long()))

    # -- generation -----------------------------------------------------------------------
    def prior(self) -> Distribution:
        """p(z): the fitted code prior over index grids, pushed through the codebook (:class:`~vaekit.distributions.CodebookPrior`).

        Raises ConfigError until a code prior is fitted (``vaekit fit-prior RUN``) or loaded.
        """
        if self.code_prior is None:
            raise ConfigError(NO_PRIOR)
        return CodebookPrior(self.code_prior.to(self.device).eval()(), self.posterior.codebook.detach())

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | int | Sequence[int] | None = None, mean: bool = True) -> torch.Tensor:
        """n grids k ~ p(k) from the fitted code prior, decoded from their codebook vectors: the decoder's mean
        (or a draw of x when ``mean=False``)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"n must be a positive number of samples, got {n!r}")
        if y is not None:
            raise ConfigError("this VQ-VAE is unconditional: sample(n) takes no y")
        px = self.decode(self.prior().sample((n,)))
        return px.mean if mean else px.sample()

    def attach_code_prior(self, prior: GatedPixelCNN | None, info: dict[str, Any] | None = None) -> None:
        """Use ``prior`` (a fitted GatedPixelCNN over this model's code grid) for ``sample``; None detaches."""
        if prior is not None and (prior.num_codes != self.codebook_size or tuple(prior.grid_shape) != self.grid_shape):
            raise ConfigError(f"the code prior models {prior.num_codes} codes on a {prior.grid_shape} grid, but this VQ-VAE has "
                              f"{self.codebook_size} codes on a {self.grid_shape} grid; fit one for this model")
        self._attach(prior, info or {})

    # -- the prior's files, beside the model's (called by save_model / load_model) ---------
    def save_attached(self, directory: str | Path) -> None:
        """Write the attached code prior (if any) as ``prior.safetensors`` + ``prior.json``."""
        if self.code_prior is not None:
            save_code_prior(self, directory)

    def load_attached(self, directory: str | Path) -> None:
        """Attach ``directory``'s code prior when it has one fitted to these weights; warn and skip otherwise."""
        directory = Path(directory)
        if not (directory / PRIOR_WEIGHTS_FILE).exists() and not (directory / PRIOR_CONFIG_FILE).exists():
            return
        try:
            prior, info = read_code_prior(directory)
        except CheckpointError as e:
            warnings.warn(f"the code prior is not attached: {e}", stacklevel=3)
            return
        if info.get("model_sha256") != model_digest(self):
            warnings.warn(f"{directory / PRIOR_WEIGHTS_FILE} was fitted to other weights than {directory / 'model.safetensors'} "
                          f"(the model was retrained or saved since); the code prior is not attached — re-run `vaekit fit-prior {directory}`",
                          stacklevel=3)
            return
        self.attach_code_prior(prior.to(self.device), info)


def save_code_prior(model: VectorQuantizedModel, directory: str | Path) -> dict[str, Path]:
    """Write ``model.code_prior`` to ``directory``: ``prior.safetensors`` (weights, with a digest) and
    ``prior.json`` (its architecture, the digest of the model it belongs to, ``model.code_prior_info``),
    each atomically. Returns the two paths."""
    if model.code_prior is None:
        raise ConfigError(NO_PRIOR)
    directory = Path(directory)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.code_prior.state_dict().items()}
    weights, config = directory / PRIOR_WEIGHTS_FILE, directory / PRIOR_CONFIG_FILE
    with atomic_path(weights) as tmp:
        save_file(tensors, str(tmp), metadata={"vaekit_version": __version__, "sha256": tensors_sha256(tensors)})
    info = {**model.code_prior_info, "kind": "gated_pixelcnn", "network": model.code_prior.config,
            "model_sha256": model_digest(model), "vaekit_version": __version__}
    atomic_write_text(config, json.dumps(info, indent=2) + "\n")
    return {"prior_weights": weights, "prior_config": config}


def read_code_prior(directory: str | Path) -> tuple[GatedPixelCNN, dict[str, Any]]:
    """The code prior saved in ``directory`` and its ``prior.json``; CheckpointError when missing or damaged."""
    weights, config = Path(directory) / PRIOR_WEIGHTS_FILE, Path(directory) / PRIOR_CONFIG_FILE
    for path in (weights, config):
        if not path.is_file():
            raise CheckpointError(f"{path} is missing — re-run `vaekit fit-prior`")
    try:
        info = json.loads(config.read_text())
        network = GatedPixelCNN(**{**info["network"], "grid_shape": tuple(info["network"]["grid_shape"])})
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{config} is not a vaekit code-prior description ({type(e).__name__}: {e}) — re-run `vaekit fit-prior`") from None
    tensors = read_checked_tensors(weights, "re-run `vaekit fit-prior`")
    try:
        network.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{weights} does not match {config} ({str(e).splitlines()[0]}) — re-run `vaekit fit-prior`") from None
    return network.eval(), info


@register("vq_vae", family="vector_quantized")
def vq_vae(
    spec: ModelSpec,
    *,
    codebook_size: int = 128,
    commitment: float = 0.25,
    ema: bool = True,
    decay: float = 0.99,
    restart_after: int = 10,
) -> LatentVariableModel:
    r"""VQ-VAE: a grid of codebook vectors, nearest-neighbour quantisation, straight-through gradient.

    The encoder's (B, D, h, w) map z_e(x) (D = ``latent_dim``; h×w is the image shrunk by the
    stride-2 ``channels`` layers, 7×7 for 28×28 with two) is quantised position by position to
    the nearest of K = ``codebook_size`` codebook vectors e_j, k = argmin_j ‖z_e − e_j‖², and
    decoded from z_q = e_k; the decoder's gradient is copied onto z_e. Loss (eq. 3 of the paper):

        loss = d(x, D(z_q(x))) + ‖sg[z_e(x)] − e‖² + β ‖z_e(x) − sg[e]‖²

    (codebook term only with ``ema=False``). With ``ema=True`` the codebook follows
    exponential moving averages of its assigned encoder outputs (decay γ, Laplace-smoothed
    counts; appendix A.1). The codebook is seeded from the first batch's encoder outputs, and
    a code unused for ``restart_after`` batches is re-seeded from the current batch. Terms:
    ``loss``, ``reconstruction``, ``codebook``, ``commitment``, ``perplexity`` and
    ``codebook_usage`` (of each batch's codes). Conv bodies only; unconditional.

    Sampling needs a prior over code grids: ``vaekit fit-prior RUN`` fits a gated PixelCNN
    (``vaekit.samplers.fit_prior``), after which ``model.sample(n)`` / ``vaekit sample`` work.

    References:
        Neural Discrete Representation Learning (van den Oord, Vinyals & Kavukcuoglu, NeurIPS
        2017), arXiv:1711.00937. Generating Diverse High-Fidelity Images with VQ-VAE-2 (Razavi
        et al., NeurIPS 2019), arXiv:1906.00446.

    Options:
        codebook_size: K ≥ 2, the number of codebook vectors (each of size latent_dim).
        commitment: β ≥ 0, the weight of the commitment loss (0.25 in the paper).
        ema: update the codebook by exponential moving averages (true) or learn it through the codebook loss (false).
        decay: γ in [0, 1), the decay of the EMA updates.
        restart_after: re-seed a code from the encoder outputs after this many consecutive batches unused (0: never);
            10 batches of 128 28×28 images hold 62 720 codes, so only codes with almost no use go.
    """
    if int(codebook_size) != codebook_size or codebook_size < 2:
        raise ConfigError(f"codebook_size must be an integer ≥ 2 (the number of codebook vectors K), got {codebook_size}")
    if not commitment >= 0:
        raise ConfigError(f"commitment (β, the weight of the commitment loss) must be ≥ 0, got {commitment}")
    if not 0 <= decay < 1:
        raise ConfigError(f"decay (γ of the EMA codebook updates) must lie in [0, 1), got {decay}")
    if int(restart_after) != restart_after or restart_after < 0:
        raise ConfigError(f"restart_after must be an integer ≥ 0 (batches a code may go unused; 0: never restart), got {restart_after}")
    if spec.arch != "conv":
        raise ConfigError(f'vq_vae quantises a grid of codes: it needs arch="conv" (--arch conv) and images (C, H, W), '
                          f"got arch={spec.arch!r} for input_shape {spec.input_shape}")
    if spec.condition_size:
        raise ConfigError("vq_vae is unconditional: drop num_classes / condition_dim (or --conditional)")
    try:
        encoder = ConvGridEncoder(spec.input_shape, spec.channels, spec.latent_dim)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    likelihood = spec.likelihood_head()
    decoder = ConvGridDecoder(spec.latent_dim, spec.input_shape, likelihood.num_parameters * spec.input_shape[0], spec.channels)
    h, w = encoder.grid_shape
    return VectorQuantizedModel(
        grid_shape=(h, w),
        embedding_dim=spec.latent_dim,
        input_shape=spec.input_shape,
        latent_dim=spec.latent_dim * h * w,
        encoder=encoder,
        posterior=VectorQuantizer(int(codebook_size), spec.latent_dim, ema=ema, decay=decay, restart_after=int(restart_after)),
        decoder=decoder,
        likelihood=likelihood,
        prior=None,
        objective=VectorQuantization(commitment),
        config=None,
    )
