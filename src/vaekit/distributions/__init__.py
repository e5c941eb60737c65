"""Posteriors, priors, likelihoods and flows, all ``torch.distributions`` objects."""

from vaekit.distributions.discretized_logistic import DiscretizedLogistic
from vaekit.distributions.flows import (
    FLOW_POSTERIORS,
    FlowDistribution,
    IAFPosterior,
    IAFTransform,
    PlanarFlowPosterior,
    PlanarTransform,
    RadialFlowPosterior,
    RadialTransform,
)
from vaekit.distributions.kl import kl_full_covariance_diagonal, kl_or_estimate, kl_per_dimension, sample_and_kl
from vaekit.distributions.likelihoods import (
    LIKELIHOODS,
    BernoulliLikelihood,
    DiscretizedLogisticLikelihood,
    GaussianLikelihood,
    LikelihoodHead,
    make_likelihood,
)
from vaekit.distributions.point_mass import PointMass, PointMassPosterior, keep_top_k
from vaekit.distributions.posteriors import (
    DiagonalGaussianPosterior,
    FullCovarianceGaussianPosterior,
    scale_tril_from_parameters,
)
from vaekit.distributions.priors import StandardNormalPrior
from vaekit.distributions.vamp_prior import VampPrior
from vaekit.distributions.chain import ChainDistribution
from vaekit.distributions.sampling import latent_code, sample_with_log_prob
from vaekit.distributions.vector_quantized import CodebookPrior, QuantizedCode, VectorQuantizer
from vaekit.distributions.pixelcnn import CodeGridDistribution, GatedPixelCNN
from vaekit.distributions.mixture import (
    GaussianMixture,
    GaussianMixturePrior,
    conjugate_mixture_posterior,
    diagonal_mixture_log_prob,
    gaussian_product,
    kl_joint_mixture,
    mean_parameters,
    natural_parameters,
)
from vaekit.distributions.product import ProductDistribution, ProductPrior, kl_parts, kl_product
from vaekit.distributions.categorical import (
    CategoricalPosterior,
    GaussianCategoricalPosterior,
    GumbelSoftmaxCategorical,
    UniformCategoricalPrior,
    kl_categorical_codes,
)

POSTERIORS = {
    "diagonal": DiagonalGaussianPosterior,
    "full_covariance": FullCovarianceGaussianPosterior,
    "planar": PlanarFlowPosterior,
    "radial": RadialFlowPosterior,
    "iaf": IAFPosterior,
    "point": PointMassPosterior,
}
"""Posterior heads by name: ``Head(in_features, latent_dim, **options)``. Flow posteriors add themselves here."""

__all__ = [
    "DiscretizedLogistic",
    "FLOW_POSTERIORS",
    "FlowDistribution",
    "IAFPosterior",
    "IAFTransform",
    "PlanarFlowPosterior",
    "PlanarTransform",
    "RadialFlowPosterior",
    "RadialTransform",
    "kl_full_covariance_diagonal",
    "kl_or_estimate",
    "kl_per_dimension",
    "sample_and_kl",
    "LIKELIHOODS",
    "BernoulliLikelihood",
    "DiscretizedLogisticLikelihood",
    "GaussianLikelihood",
    "LikelihoodHead",
    "make_likelihood",
    "DiagonalGaussianPosterior",
    "FullCovarianceGaussianPosterior",
    "scale_tril_from_parameters",
    "PointMass",
    "PointMassPosterior",
    "keep_top_k",
    "StandardNormalPrior",
    "VampPrior",
    "ChainDistribution",
    "latent_code",
    "sample_with_log_prob",
    "POSTERIORS",
    # discrete latents (categorical VAE, Joint-VAE)
    "ProductDistribution",
    "ProductPrior",
    "kl_parts",
    "kl_product",
    "CategoricalPosterior",
    "GaussianCategoricalPosterior",
    "GumbelSoftmaxCategorical",
    "UniformCategoricalPrior",
    "kl_categorical_codes",
    # VQ-VAE: the quantiser head and the autoregressive code prior
    "QuantizedCode",
    "VectorQuantizer",
    "CodebookPrior",
    "CodeGridDistribution",
    "GatedPixelCNN",
    # structured VAE: the Gaussian-mixture prior and its conjugate posterior
    "GaussianMixture",
    "GaussianMixturePrior",
    "conjugate_mixture_posterior",
    "diagonal_mixture_log_prob",
    "gaussian_product",
    "kl_joint_mixture",
    "mean_parameters",
    "natural_parameters",
]
