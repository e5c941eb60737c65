"""The preset registry: named models are functions from a :class:`ModelSpec` and options to a model.

A preset is registered once with :func:`register`; its keyword-only parameters *are* its
options (defaults included), and the ``Options:`` block of its docstring documents them.
``vaekit.create(name, ...)`` validates the options, builds the model and records the
config that ``vaekit.load`` uses to rebuild it.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, fields
from typing import Any, Callable

from vaekit.errors import ConfigError
from vaekit.models.custom_bodies import PARTS, check_bodies_used, check_body_module, refuse_fixed_bodies
from vaekit.models.model import LatentVariableModel
from vaekit.models.spec import ModelSpec

__all__ = ["Preset", "register", "available_models", "get_preset", "create", "SPEC_OPTIONS"]

SPEC_OPTIONS = tuple(f.name for f in fields(ModelSpec) if f.name != "extra" and f.metadata.get("option", True))


@dataclass(frozen=True)
class Preset:
    """A named model: its builder, a one-line summary, its family and its options."""

    name: str
    build: Callable[..., LatentVariableModel]
    summary: str
    family: str
    defaults: dict[str, Any]
    docs: dict[str, str]

    def resolve(self, options: dict[str, Any]) -> dict[str, Any]:
        """Defaults overridden by ``options``, each checked and coerced to its default's type."""
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            valid = ", ".join(sorted(self.defaults)) or "none"
            hint = difflib.get_close_matches(unknown[0], list(self.defaults) + list(SPEC_OPTIONS), n=1)
            raise ConfigError(
                f"unknown option {unknown[0]!r} for model {self.name!r}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f"; its options are: {valid}; shared options: {', '.join(SPEC_OPTIONS)}"
            )
        resolved = dict(self.defaults)
        for key, value in options.items():
            resolved[key] = _coerce(self.name, key, value, self.defaults[key])
        return resolved


def _scalar(text: str) -> Any:
    """A number, boolean or string from command-line text."""
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (int, float, bool, str)) else text


def _coerce(model: str, key: str, value: Any, default: Any) -> Any:
    if value is None:
        return value
    if default is None:  # an option without a typed default: read text the way YAML would ("0.5" -> 0.5)
        return _scalar(value) if isinstance(value, str) else value
    kind = type(default)
    try:
        if kind is bool:
            if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
                return value.lower() in ("true", "yes", "1")
            if not isinstance(value, bool):
                raise TypeError
            return value
        if kind is int:
            if isinstance(value, bool) or float(value) != int(float(value)):
                raise TypeError
            return int(float(value))
        if kind is float:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if kind is tuple:
            items = value.split(",") if isinstance(value, str) else list(value)
            item_kind = type(default[0]) if default else None
            return tuple(_coerce(model, key, item.strip() if isinstance(item, str) else item, default[0]) if item_kind else item
                         for item in items)
        if kind is str:
            if not isinstance(value, str):
                raise TypeError
            return value
    except (TypeError, ValueError):
        raise ConfigError(f"option {key!r} of model {model!r} takes a {kind.__name__} (default {default!r}), got {value!r}") from None
    return value


def _option_docs(doc: str) -> dict[str, str]:
    docs, inside = {}, False
    for line in inspect.cleandoc(doc or "").splitlines():
        if line.strip() == "Options:":
            inside = True
            continue
        if inside:
            if not line.startswith(" ") and line.strip():
                break
            name, sep, text = line.strip().partition(":")
            if sep and name.isidentifier():
                docs[name] = text.strip()
            elif docs and line.strip():
                last = list(docs)[-1]
                docs[last] += " " + line.strip()
    return docs


_PRESETS: dict[str, Preset] = {}


def register(name: str, family: str) -> Callable[[Callable[..., LatentVariableModel]], Callable[..., LatentVariableModel]]:
    """Register ``build(spec, *, option=default, ...)`` as the preset ``name``."""

    def decorator(build: Callable[..., LatentVariableModel]) -> Callable[..., LatentVariableModel]:
        if name in _PRESETS:
            raise RuntimeError(f"preset {name!r} registered twice")
        params = list(inspect.signature(build).parameters.values())[1:]
        defaults = {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}
        summary = inspect.cleandoc(build.__doc__ or name).splitlines()[0]
        _PRESETS[name] = Preset(name, build, summary, family, defaults, _option_docs(build.__doc__ or ""))
        return build

    return decorator


def available_models() -> list[str]:
    """Names of every preset, sorted."""
    return sorted(_PRESETS)


def get_preset(name: str) -> Preset:
    if name not in _PRESETS:
        hint = difflib.get_close_matches(name, list(_PRESETS), n=1)
        raise ConfigError(
            f"unknown model {name!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
            + f"; available: {', '.join(available_models())} (see `vaekit models`)"
        )
    return _PRESETS[name]


def create(name: str, input_shape: tuple[int, ...] | list[int], **options: Any) -> LatentVariableModel:
    """Build the preset ``name`` for data of shape ``input_shape``.

    Shared options (``latent_dim``, ``likelihood``, ``arch``, ``hidden_dims``, ``channels``,
    ``num_classes``, ``condition_dim``, ``likelihood_scale``) go to :class:`ModelSpec`; the
    rest are the preset's own (``vaekit models`` lists them). ``encoder=`` / ``decoder=`` take
    your own ``nn.Module`` bodies (contract and checks: :mod:`vaekit.models.custom_bodies`);
    they are never pickled: ``vaekit.load(run, encoder=..., decoder=...)`` takes them again.

    Example:
        >>> model = create("vae", input_shape=(1, 28, 28), latent_dim=8)
        >>> model.encode(torch.rand(2, 1, 28, 28)).mean.shape  # doctest: +SKIP
        torch.Size([2, 8])
    """
    preset = get_preset(name)
    bodies = {part: check_body_module(options.pop(part, None), part) for part in PARTS}
    bodies = {part: body for part, body in bodies.items() if body is not None}
    refuse_fixed_bodies(name, list(bodies))
    spec_options = {k: options.pop(k) for k in list(options) if k in SPEC_OPTIONS}
    if "input_shape" in spec_options:
        raise ConfigError("input_shape given twice")
    spec = ModelSpec(input_shape=tuple(input_shape), **spec_options, **{f"custom_{part}": body for part, body in bodies.items()})
    resolved = preset.resolve(options)
    model = preset.build(spec, **resolved)
    check_bodies_used(name, model, bodies)
    spec.check_prior_taken(model.prior_module)  # a preset that builds its own prior refuses prior="vamp"
    # a preset may record an option as something other than what it was given (spec.build(config={"options": ...})):
    # dfc_vae records an nn.Module as a placeholder and a classifier folder with its weights' digest
    recorded = {**resolved, **model.config.get("options", {})}
    model.config = {"model": name, **spec.as_config(), "options": _jsonable(recorded)}
    return model


def _jsonable(options: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}
