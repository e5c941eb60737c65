"""VAE extensions II (survey §2.12): perceptual reconstruction costs, MS-SSIM-VAE and DFC-VAE.

Each preset is the VAE composition (``spec.build``) with the ELBO of ``vaekit.objectives``
and its own reconstruction cost (``ELBO(reconstruction=...)``), as ``logcosh_vae`` does:
1 − MS-SSIM (:mod:`vaekit.objectives.ssim`) or the pixel NLL plus a feature-space distance
(:mod:`vaekit.objectives.perceptual`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from vaekit._io import tensors_sha256
from vaekit.errors import ConfigError
from vaekit.models.model import LatentVariableModel
from vaekit.models.posterior_options import DEFAULT_FLOW_STEPS, document_posterior_options, posterior_build_options
from vaekit.models.registry import register
from vaekit.models.spec import ModelSpec
from vaekit.objectives import ELBO, FeatureReconstruction, MSSSIMReconstruction
from vaekit.objectives.perceptual import feature_shapes
from vaekit.objectives.ssim import MS_SSIM_WEIGHTS, check_scales, check_ssim_window, max_scales

__all__ = ["mssim_vae", "dfc_vae"]

TRAIN_CLASSIFIER_HINT = "train one on this data with `vaekit train-classifier` and pass its run folder"


@register("mssim_vae", family="variational")
@document_posterior_options
def mssim_vae(
    spec: ModelSpec,
    *,
    posterior: str = "diagonal",
    flow_steps: int = DEFAULT_FLOW_STEPS,
    beta: float = 0.01,
    window: int = 7,
    sigma: float = 1.0,
    scales: int | None = None,
    normalize: str = "relu",
    data_range: float = 1.0,
) -> LatentVariableModel:
    r"""MS-SSIM-VAE: 1 − MS-SSIM(x̂, x) as the reconstruction cost, with x̂ the decoder mean, plus β·KL.

        loss = 1 − MS-SSIM(x̂, x) + β · KL(q(z|x) ‖ p(z)),
        MS-SSIM = [l_M]^{w_M} Π_{j=1}^{M} [cs_j]^{w_j}   (Wang et al. 2003)

    with the Gaussian-window SSIM statistics of ``vaekit.objectives.ms_ssim`` over M scales
    (each halving the image; Wang et al.'s weights w_j, renormalised when M < 5). The cost asks
    for the same local means, contrasts and structure at several resolutions rather than the
    same pixels, which penalises blur more than a pixel likelihood does. The likelihood only
    supplies x̂ (its mean; Bernoulli: in [0, 1]); the cost is not a log-density, so no ``elbo``
    term. Terms: ``loss``, ``reconstruction`` (1 − MS-SSIM, before any weight), ``kl``.

    β: 1 − MS-SSIM lies in [0, 1] per image while the KL is in nats summed over the code, so the
    KL needs a small weight (PyTorch-VAE's MSSIM-VAE weights it too): at β a nat of KL costs as
    much as a β change of MS-SSIM. Measured on Fashion-MNIST (20 000 images, 5 epochs, MLP 512,
    latent_dim 16, the default 3 scales): β = 0.01 (the default) gives KL ≈ 9 nats, 15 of 16
    active dimensions, reconstructions at MS-SSIM 0.81 and varied, clean samples; β = 0.1
    collapses the code (KL 0.8 nats, 4 active dimensions, samples alike and blurred); β = 0.001
    codes more (KL 32 nats, MS-SSIM 0.87) but its prior samples are noisy, the aggregate
    posterior having drifted from N(0, I). 8×8 digits (window 3, 2 scales, 30 epochs) agree:
    KL 6.5 nats at β = 0.01, collapse (0.7 nats) at β = 0.1.

    The window must fit the coarsest scale: ⌊min(H, W) / 2^{M−1}⌋ ≥ window. 28×28 allows 3 scales
    with the default 7-pixel window (28 → 14 → 7); 8×8 digits 1 (SSIM), or 2 with window=3.

    References:
        Learning to Generate Images with Perceptual Similarity Metrics (Snell, Ridgeway, Liao,
        Roads, Mozer & Zemel, ICIP 2017), arXiv:1511.06409. Multiscale Structural Similarity
        for Image Quality Assessment (Wang, Simoncelli & Bovik, Asilomar 2003).

    Options:
        beta: KL weight β relative to 1 − MS-SSIM ∈ [0, 1]; 0.01 keeps ≈ 9 nats of KL and varied samples on Fashion-MNIST, 0.1 collapses the code.
        window: odd side of the Gaussian window in pixels (≥ 3; 11 is Wang et al.'s for large images).
        sigma: σ of the Gaussian window in pixels (1.0 suits the 7-pixel window as 1.5 suits 11: it spans about ±3σ).
        scales: M, the number of scales (1 to 5); None: as many as the image allows with this window (at most 5).
        normalize: negative SSIM factors at coarse scales: "relu" (set to 0, torchmetrics' default), "simple" ((f + 1)/2) or "none".
        data_range: L, max − min of the pixel values (1 for data in [0, 1]).
    """
    if len(spec.input_shape) != 3:
        raise ConfigError(f"mssim_vae compares images: input_shape must be (C, H, W), got {spec.input_shape}; "
                          "use vae or logcosh_vae for vectors")
    check_ssim_window(window, sigma, data_range)
    height, width = spec.input_shape[1:]
    if scales is None:
        check_scales(1, height, width, window)  # refuses a window larger than the image
        scales = min(max_scales(height, width, window), len(MS_SSIM_WEIGHTS))
    elif isinstance(scales, bool) or not isinstance(scales, (int, float)) or int(scales) != scales or not 1 <= scales <= len(MS_SSIM_WEIGHTS):
        raise ConfigError(f"scales must be an integer from 1 to {len(MS_SSIM_WEIGHTS)} or None (as many as fit), got {scales!r}")
    scales = int(scales)
    check_scales(scales, height, width, window)
    cost = MSSSIMReconstruction(window=window, sigma=sigma, data_range=data_range, scales=scales, normalize=normalize)
    return spec.build(ELBO(beta=beta, reconstruction=cost), **posterior_build_options(posterior, flow_steps))


def _feature_network(value: Any, digest: str) -> tuple[nn.Module, Any]:
    """The feature network ``value`` names and what the config records for it (a folder, or a placeholder for a module)."""
    if value is None:
        raise ConfigError("dfc_vae needs feature_network: the run folder of a classifier (" + TRAIN_CLASSIFIER_HINT
                          + " as --feature-network) or an nn.Module from Python; no VGG weights can be downloaded")
    if isinstance(value, dict) and "module" in value:
        raise ConfigError(f"this dfc_vae was created with feature_network given as an nn.Module ({value['module']}), which is "
                          "never saved: pass it again, vaekit.load(run, feature_network=module)")
    if isinstance(value, nn.Module):
        return value, {"module": type(value).__name__}
    if isinstance(value, (str, os.PathLike)):
        folder = Path(value).expanduser().resolve()
        if not folder.is_dir():
            raise ConfigError(f"feature_network {value}: no such folder; it takes a classifier's run folder ({TRAIN_CLASSIFIER_HINT})")
        from vaekit.models.classifier import load_classifier  # the classifier preset's own loader

        return load_classifier(folder, device="cpu"), str(folder)
    raise ConfigError(f"feature_network takes a classifier run folder or an nn.Module, got {type(value).__name__} {value!r}")


@register("dfc_vae", family="variational")
@document_posterior_options
def dfc_vae(
    spec: ModelSpec,
    *,
    posterior: str = "diagonal",
    flow_steps: int = DEFAULT_FLOW_STEPS,
    feature_network: Any = None,
    feature_network_sha256: str = "",
    weight: float = 0.01,
    layer_weights: tuple = (1.0,),
    beta: float = 1.0,
) -> LatentVariableModel:
    r"""DFC-VAE: the pixel NLL plus the distance between a frozen CNN's features of x and x̂, plus β·KL.

        loss = −log p(x|z) + λ · Σ_l w_l ‖φ_l(x) − φ_l(x̂)‖² + β · KL(q(z|x) ‖ p(z))

    with x̂ = E[x|z] the decoder mean and φ_1 … φ_L the feature maps of ``feature_network``
    (``feature_maps(x)`` if it has one, else its output: a tensor or a list of tensors). Hou et
    al. use VGG-19 layers, which cannot be downloaded here; a small classifier trained on the
    same data by ``vaekit train-classifier`` plays its part. The network is frozen (eval mode, no
    gradients to its weights) and never stored in the VAE's file: the config records its run
    folder and the SHA-256 of its weights, and ``vaekit.load`` rebuilds it from the folder
    (refusing one whose weights changed); a module given from Python must be given again,
    ``vaekit.load(run, feature_network=module)``. Terms: ``loss``, ``reconstruction`` (the
    pixel and feature terms together, −log p(x|z) + λ Σ_l …), ``kl``.

    References:
        Deep Feature Consistent Variational Autoencoder (Hou, Shen, Sun & Qiu, WACV 2017),
        arXiv:1610.00291.

    Options:
        feature_network: the run folder of a classifier from `vaekit train-classifier`, or an nn.Module (Python).
        feature_network_sha256: SHA-256 of the feature network's weights, recorded at creation; when set, other weights are refused ("": not checked).
        weight: λ ≥ 0, the weight of the feature term against the pixel term. Default 0.01: the features of vaekit's classifier are unnormalised ReLU activations summed over every position, so on Fashion-MNIST (MLP 512-512, D = 32, 9 000 images, 5 epochs) λ = 1 let the feature term dominate and prior samples were textured noise, λ = 0.1 gave garments with stripe artefacts, λ = 0.01 clean samples.
        layer_weights: w_l ≥ 0, one per feature layer, or one value for all (Hou et al.'s normalisation: w_l = 1/(2·C_l·H_l·W_l)).
        beta: KL weight β.
    """
    network, recorded = _feature_network(feature_network, feature_network_sha256)
    digest = tensors_sha256(network.state_dict())
    if feature_network_sha256 and feature_network_sha256 != digest:
        raise ConfigError(f"feature_network's weights (SHA-256 {digest[:12]}…) are not the ones this model was created with "
                          f"({str(feature_network_sha256)[:12]}…): the classifier was retrained or replaced; pass the original")
    try:
        layers = feature_shapes(network, spec.input_shape)
    except ConfigError as e:
        raise ConfigError(f"{e}; give a feature network made for these images ({TRAIN_CLASSIFIER_HINT})") from None
    cost = FeatureReconstruction(network, weight=weight, layer_weights=layer_weights)
    cost.weights_for(len(layers))  # one weight per layer, or one for all
    options = {"feature_network": recorded, "feature_network_sha256": digest}
    return spec.build(ELBO(beta=beta, reconstruction=cost), **posterior_build_options(posterior, flow_steps), config={"options": options})
