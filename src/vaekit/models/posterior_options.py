"""The posterior options every variational preset shares: ``posterior`` and ``flow_steps``.

A preset takes ``posterior: str = "diagonal", flow_steps: int = DEFAULT_FLOW_STEPS`` as
keyword options, decorates itself with :func:`document_posterior_options` (which writes
their lines into its ``Options:`` block) and builds with
``spec.build(objective, **posterior_build_options(posterior, flow_steps))``, so a new
posterior family is wired into every preset in one place.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, TypeVar

from vaekit.distributions import FLOW_POSTERIORS
from vaekit.errors import ConfigError

__all__ = [
    "DEFAULT_FLOW_STEPS", "POSTERIOR_OPTION_DOCS", "document_gaussian_posterior_options", "document_posterior_options",
    "posterior_build_options",
]

DEFAULT_FLOW_STEPS = 4

POSTERIOR_OPTION_DOCS = {
    "posterior": 'q(z|x): "diagonal" (§2.8), "full_covariance" (§2.9), or a flow on the diagonal Gaussian '
    '(§2.11–2.12): "planar", "radial" (Rezende & Mohamed 2015), "iaf" (Kingma et al. 2016).',
    "flow_steps": "number of flow steps K when the posterior is a flow (ignored otherwise).",
}

F = TypeVar("F", bound=Callable[..., Any])


def posterior_build_options(posterior: str, flow_steps: int) -> dict[str, Any]:
    """Keyword arguments for :meth:`ModelSpec.build`: the posterior and, for a flow, its steps.

    A variational model needs a density q(z|x): the deterministic autoencoders' point mass is refused.
    """
    if posterior == "point":
        raise ConfigError('posterior="point" is the deterministic autoencoders\' code (use the "ae" presets); '
                          'a VAE needs "diagonal", "full_covariance", "planar", "radial" or "iaf"')
    return {"posterior": posterior, "posterior_options": {"flow_steps": flow_steps} if posterior in FLOW_POSTERIORS else {}}


GAUSSIAN_POSTERIOR_OPTION_DOCS = {
    "posterior": 'q(z|x): "diagonal" (§2.8) or "full_covariance" (§2.9); this objective needs a Gaussian posterior.',
}


def document_gaussian_posterior_options(build: F) -> F:
    """:func:`document_posterior_options` for presets whose objective needs a Gaussian q(z|x) (no flows)."""
    return document_posterior_options(build, GAUSSIAN_POSTERIOR_OPTION_DOCS)


def document_posterior_options(build: F, docs: dict[str, str] = POSTERIOR_OPTION_DOCS) -> F:
    """Insert the ``posterior`` and ``flow_steps`` lines at the top of ``build``'s ``Options:`` block.

    Apply it below ``@register`` (decorators run bottom-up, and the registry reads the docstring).
    """
    lines = inspect.cleandoc(build.__doc__ or "").splitlines()
    if "Options:" not in [line.strip() for line in lines]:
        lines += ["", "Options:"]
    at = [line.strip() for line in lines].index("Options:")
    indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())] + "    "
    lines[at + 1 : at + 1] = [f"{indent}{name}: {text}" for name, text in docs.items()]
    build.__doc__ = "\n".join(lines)
    return build
