"""Models: the composition class, the shared spec, the preset registry and the presets."""

from vaekit.models import vae as _vae  # noqa: F401  (registers the presets)
from vaekit.models import autoencoders as _autoencoders  # noqa: F401
from vaekit.models import conditional as _conditional  # noqa: F401
from vaekit.models import auxiliary as _auxiliary  # noqa: F401
from vaekit.models import vae_extensions as _vae_extensions  # noqa: F401
from vaekit.models import perceptual as _perceptual  # noqa: F401
from vaekit.models import wasserstein as _wasserstein  # noqa: F401
from vaekit.models import discrete as _discrete  # noqa: F401
from vaekit.models import vq_vae as _vq_vae  # noqa: F401
from vaekit.models import structured as _structured  # noqa: F401
from vaekit.models import hierarchical as _hierarchical  # noqa: F401
from vaekit.models.classifier import FeatureClassifier, classifier_sha256, load_classifier, save_classifier
from vaekit.models.model import LatentVariableModel
from vaekit.models.persistence import load_model, save_model
from vaekit.models.registry import available_models, create, get_preset, register
from vaekit.models.spec import ModelSpec

__all__ = ["LatentVariableModel", "ModelSpec", "available_models", "create", "get_preset", "register", "load_model", "save_model",
           "FeatureClassifier", "load_classifier", "save_classifier", "classifier_sha256"]
