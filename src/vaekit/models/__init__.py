"""Models: the composition class, the shared spec, the preset registry and the presets."""

from vaekit.models import vae as _vae  # noqa: F401  (registers the presets)
from vaekit.models import autoencoders as _autoencoders  # noqa: F401
from vaekit.models import conditional as _conditional  # noqa: F401
from vaekit.models import auxiliary as _auxiliary  # noqa: F401
from vaekit.models import vae_extensions as _vae_extensions  # noqa: F401
from vaekit.models.model import LatentVariableModel
from vaekit.models.persistence import load_model, save_model
from vaekit.models.registry import available_models, create, get_preset, register
from vaekit.models.spec import ModelSpec

__all__ = ["LatentVariableModel", "ModelSpec", "available_models", "create", "get_preset", "register", "load_model", "save_model"]
