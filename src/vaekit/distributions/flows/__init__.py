"""Flow posteriors: the diagonal Gaussian pushed through planar, radial or IAF steps (survey §2.11–2.12).

Each head maps encoder features to a :class:`FlowDistribution` (a
``torch.distributions.TransformedDistribution``) whose ``rsample_and_log_prob`` gives a
reparameterised z_K with log q(z_K|x) accumulated on the forward pass.
"""

from vaekit.distributions.flows.base import FlowDistribution, FlowTransform, ReverseTransform, check_flow_steps
from vaekit.distributions.flows.iaf import MADE, IAFPosterior, IAFTransform, MaskedLinear
from vaekit.distributions.flows.planar import PlanarFlowPosterior, PlanarTransform
from vaekit.distributions.flows.radial import RadialFlowPosterior, RadialTransform

FLOW_POSTERIORS = {"planar": PlanarFlowPosterior, "radial": RadialFlowPosterior, "iaf": IAFPosterior}
"""Flow posterior heads by name; each takes the ``flow_steps`` option."""

__all__ = [
    "FlowDistribution",
    "FlowTransform",
    "ReverseTransform",
    "check_flow_steps",
    "MADE",
    "MaskedLinear",
    "IAFTransform",
    "IAFPosterior",
    "PlanarTransform",
    "PlanarFlowPosterior",
    "RadialTransform",
    "RadialFlowPosterior",
    "FLOW_POSTERIORS",
]
