"""Objectives: functions of (model, x, y) that return named loss terms."""

from vaekit.objectives.auxiliary import AuxiliaryELBO, auxiliary_log_weights
from vaekit.objectives.elbo import ELBO, free_bits_kl
from vaekit.objectives.importance import importance_terms, log_importance_weights
from vaekit.objectives.posterior_sample import PosteriorSample, Reconstruction, Regulariser
from vaekit.objectives.beta import KLCapacity, capacity_at
from vaekit.objectives.dip import DIPPenalty, dip_covariance, dip_penalty
from vaekit.objectives.importance_weighted import ImportanceWeightedBound, importance_weighted_bound
from vaekit.objectives.logcosh import LogCoshReconstruction, log_cosh
from vaekit.objectives.mmd import MMDPenalty, kernel_matrix, mmd_unbiased
from vaekit.objectives.total_correlation import TotalCorrelationPenalty, total_correlation_decomposition
from vaekit.objectives.schedules import linear_warmup
from vaekit.objectives.autoencoding import Autoencoding, reconstruction_error, squared_error
from vaekit.objectives.sliced_wasserstein import SlicedWassersteinPenalty, random_directions, sliced_wasserstein, wasserstein_1d
from vaekit.objectives.contractive import ContractivePenalty, jacobian_frobenius_sq
from vaekit.objectives.sparsity import ActivityPenalty, record_activations
from vaekit.objectives.ssim import MSSSIMReconstruction, gaussian_window, ms_ssim, ssim
from vaekit.objectives.perceptual import FeatureReconstruction, feature_distance, feature_maps
from vaekit.objectives.structured import StructuredELBO, component_reconstruction
from vaekit.objectives.hierarchical import HierarchicalELBO
from vaekit.objectives.vector_quantization import (
    VectorQuantization, code_counts, code_perplexity, codebook_loss, codebook_usage, commitment_loss,
)

__all__ = ["AuxiliaryELBO", "auxiliary_log_weights", "ELBO", "free_bits_kl", "linear_warmup", "importance_terms", "log_importance_weights",
           # VAE extensions I: KL capacity, β-TC, IWAE/MIWAE, MMD, DIP, log-cosh
           "PosteriorSample", "Reconstruction", "Regulariser", "KLCapacity", "capacity_at", "DIPPenalty", "dip_covariance", "dip_penalty",
           "ImportanceWeightedBound", "importance_weighted_bound", "LogCoshReconstruction", "log_cosh",
           "MMDPenalty", "kernel_matrix", "mmd_unbiased", "TotalCorrelationPenalty", "total_correlation_decomposition",
           # deterministic autoencoders (survey §1)
           "Autoencoding", "reconstruction_error", "ContractivePenalty", "jacobian_frobenius_sq",
           "ActivityPenalty", "record_activations",
           # Wasserstein autoencoders: squared-error cost, sliced Wasserstein distance
           "squared_error", "SlicedWassersteinPenalty", "random_directions", "sliced_wasserstein", "wasserstein_1d",
           # perceptual reconstruction costs: 1 − MS-SSIM, feature-space distance
           "MSSSIMReconstruction", "gaussian_window", "ms_ssim", "ssim", "FeatureReconstruction", "feature_distance", "feature_maps",
           # VQ-VAE: codebook and commitment losses, codebook health
           "VectorQuantization", "codebook_loss", "commitment_loss", "code_counts", "code_perplexity", "codebook_usage",
           # structured VAE: the bound with mixture assignments
           "StructuredELBO", "component_reconstruction",
           # two-layer VAE: q(z2|x) q(z1|x,z2) against p(z2) p(z1|z2)
           "HierarchicalELBO"]
