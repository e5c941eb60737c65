"""Applications of trained models (survey §1.5), with scikit-learn-style interfaces.

* :class:`Compressor` — codes, quantised to a number of bits, and reconstructions;
  :func:`compare_with_pca` against PCA with as many components.
* :class:`LatentClassifier` — k-nearest neighbours on latent codes;
  :func:`compare_latent_classification` against raw inputs and PCA codes.
* :class:`AnomalyDetector` — reconstruction error, −ELBO or −log p(x) as anomaly score,
  a threshold from normal data, AUROC / average precision / confusion.
* :class:`Denoiser` — corrupt, denoise, PSNR and SSIM (:func:`psnr`, :func:`ssim`).

Each works with any unconditional model of the library, deterministic or variational:
constructors store settings, ``fit`` learns, fitted attributes end with ``_``.
"""

from vaekit.apps.anomaly import SCORES, AnomalyDetector, anomaly_scores, detection_metrics
from vaekit.apps.classification import LatentClassifier, compare_latent_classification
from vaekit.apps.compression import Compressor, UniformQuantizer, compare_with_pca, normalize_for_pca, pca_reconstruction_errors
from vaekit.apps.denoising import Denoiser
from vaekit.apps.image_quality import gaussian_window, psnr, ssim

__all__ = [
    "AnomalyDetector",
    "anomaly_scores",
    "detection_metrics",
    "SCORES",
    "LatentClassifier",
    "compare_latent_classification",
    "Compressor",
    "UniformQuantizer",
    "compare_with_pca",
    "normalize_for_pca",
    "pca_reconstruction_errors",
    "Denoiser",
    "psnr",
    "ssim",
    "gaussian_window",
]
