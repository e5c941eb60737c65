"""Evaluation: log-likelihood estimates and model diagnostics."""

from vaekit.eval.likelihood import log_likelihood
from vaekit.eval.metrics import active_units, evaluate

__all__ = ["log_likelihood", "evaluate", "active_units"]
