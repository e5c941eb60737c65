"""vaekit: autoencoders and variational autoencoders for PyTorch.

The public API (see DESIGN.md):

    vaekit.available_models(), vaekit.create(name, input_shape=..., ...), vaekit.fit(model, train, val, ...),
    vaekit.log_likelihood(model, x, num_samples=1000), vaekit.evaluate(model, x), vaekit.load(dir)
"""

from vaekit._version import __version__
from vaekit.apps import AnomalyDetector, Compressor, Denoiser, LatentClassifier
from vaekit.errors import CheckpointError, ConfigError, DataError, NonFiniteLossError, VaekitError
from vaekit.eval import evaluate, log_likelihood
from vaekit.models import LatentVariableModel, available_models, create
from vaekit.models import load_model as load
from vaekit.models import load_classifier
from vaekit.train import FitResult, fit
from vaekit import samplers  # noqa: E402  (vaekit.samplers.GaussianMixtureSampler(...).fit(model, x), vaekit.samplers.load(run))

__all__ = [
    "__version__",
    "available_models",
    "create",
    "fit",
    "load",
    "log_likelihood",
    "evaluate",
    "LatentVariableModel",
    "FitResult",
    "VaekitError",
    "DataError",
    "ConfigError",
    "CheckpointError",
    "NonFiniteLossError",
    "AnomalyDetector",
    "Compressor",
    "Denoiser",
    "LatentClassifier",
    "load_classifier",
]
