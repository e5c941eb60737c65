"""Evaluation: log-likelihood estimates, model diagnostics and disentanglement metrics."""

from vaekit.eval.disentanglement import betavae_score, dci, disentanglement_scores, factorvae_score, mig, sap
from vaekit.eval.likelihood import log_likelihood
from vaekit.eval.metrics import active_units, evaluate
from vaekit.eval.sample_quality import (
    frechet_distance, kernel_distance, label_entropies, precision_recall_density_coverage, sample_quality, trace_sqrt_product,
)

__all__ = ["log_likelihood", "evaluate", "active_units", "mig", "sap", "dci", "betavae_score", "factorvae_score", "disentanglement_scores",
           "sample_quality", "frechet_distance", "kernel_distance", "precision_recall_density_coverage", "label_entropies",
           "trace_sqrt_product"]
