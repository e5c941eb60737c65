"""The posterior options every variational preset shares: ``posterior``, ``flow_steps`` (and ``logvar_clamp``).

A preset takes ``posterior: str = "diagonal", flow_steps: int = DEFAULT_FLOW_STEPS`` as
keyword options, decorates itself with :func:`document_posterior_options` (which writes
their lines into its ``Options:`` block) and builds with
``spec.build(objective, **posterior_build_options(posterior, flow_steps))``, so a new
posterior family is wired into every preset in one place. A preset that also takes
``logvar_clamp: tuple = DEFAULT_LOGVAR_CLAMP`` passes it on with
``posterior_build_options(posterior, flow_steps, logvar_clamp)``; its line then appears in the
preset's ``Options:`` block (only options in the preset's signature are documented there).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Sequence, TypeVar

from vaekit.distributions import FLOW_POSTERIORS
from vaekit.distributions.posteriors import DEFAULT_LOGVAR_CLAMP, check_logvar_clamp
from vaekit.errors import ConfigError

__all__ = [
    "DEFAULT_FLOW_STEPS", "DEFAULT_LOGVAR_CLAMP", "POSTERIOR_OPTION_DOCS", "document_gaussian_posterior_options",
    "document_posterior_options", "posterior_build_options",
]

DEFAULT_FLOW_STEPS = 4

POSTERIOR_OPTION_DOCS = {
    "posterior": 'q(z|x): "diagonal" (§2.8), "full_covariance" (§2.9), or a flow on the diagonal Gaussian '
    '(§2.11–2.12): "planar", "radial" (Rezende & Mohamed 2015), "iaf" (Kingma et al. 2016).',
    "flow_steps": "number of flow steps K when the posterior is a flow (ignored otherwise).",
    "logvar_clamp": "(min, max) range of the posterior's log σ² (the flows' base too), so a runaway encoder gives a "
    f"finite σ instead of NaN; default {DEFAULT_LOGVAR_CLAMP} (σ from 3e-7 to 2e4) leaves normal training unchanged.",
}

F = TypeVar("F", bound=Callable[..., Any])


def posterior_build_options(
    posterior: str, flow_steps: int, logvar_clamp: Sequence[float] | None = DEFAULT_LOGVAR_CLAMP
) -> dict[str, Any]:
    """Keyword arguments for :meth:`ModelSpec.build`: the posterior and, for a flow, its steps;
    ``logvar_clamp`` when it differs from the heads' default (None: no clamp).

    A variational model needs a density q(z|x): the deterministic autoencoders' point mass is refused.
    """
    if posterior == "point":
        raise ConfigError('posterior="point" is the deterministic autoencoders\' code (use the "ae" presets); '
                          'a VAE needs "diagonal", "full_covariance", "planar", "radial" or "iaf"')
    options: dict[str, Any] = {"flow_steps": flow_steps} if posterior in FLOW_POSTERIORS else {}
    clamp = check_logvar_clamp(logvar_clamp)
    if clamp != DEFAULT_LOGVAR_CLAMP:
        options["logvar_clamp"] = clamp
    return {"posterior": posterior, "posterior_options": options}


GAUSSIAN_POSTERIOR_OPTION_DOCS = {
    "posterior": 'q(z|x): "diagonal" (§2.8) or "full_covariance" (§2.9); this objective needs a Gaussian posterior.',
}


def document_gaussian_posterior_options(build: F) -> F:
    """:func:`document_posterior_options` for presets whose objective needs a Gaussian q(z|x) (no flows)."""
    return document_posterior_options(build, GAUSSIAN_POSTERIOR_OPTION_DOCS)


def document_posterior_options(build: F, docs: dict[str, str] = POSTERIOR_OPTION_DOCS) -> F:
    """Insert the lines of the posterior options ``build`` takes (``posterior``, ``flow_steps``,
    ``logvar_clamp``) at the top of its ``Options:`` block.

    Apply it below ``@register`` (decorators run bottom-up, and the registry reads the docstring).
    """
    taken = inspect.signature(build).parameters
    docs = {name: text for name, text in docs.items() if name in taken}
    lines = inspect.cleandoc(build.__doc__ or "").splitlines()
    if "Options:" not in [line.strip() for line in lines]:
        lines += ["", "Options:"]
    at = [line.strip() for line in lines].index("Options:")
    indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())] + "    "
    lines[at + 1 : at + 1] = [f"{indent}{name}: {text}" for name, text in docs.items()]
    build.__doc__ = "\n".join(lines)
    return build
