"""Ex-post latent samplers: densities fitted to a trained model's codes, sampled and decoded.

After training, fit a density q(z) to the codes of the training data and sample from it
instead of the prior: :class:`GaussianMixtureSampler` (scikit-learn's ``GaussianMixture``)
or :class:`FlowSampler` (a zuko MAF or NSF). This is what makes a deterministic
autoencoder generative, and it often improves a VAE's samples. :class:`PriorSampler` puts
the model's own prior behind the same interface. A fitted sampler is saved beside its
model (``sampler.save(run)``: safetensors + JSON) and read back with :func:`load`, which
refuses a sampler fitted to other weights.

    sampler = vaekit.samplers.GaussianMixtureSampler(components=10).fit(model, x_train)
    images = sampler.sample(64, seed=0)        # (64, *input_shape) decoder means
    sampler.save("runs/ae")
    sampler = vaekit.samplers.load("runs/ae")  # the single sampler fitted there, bound to vaekit.load("runs/ae")

The model layer knows nothing of samplers: they are estimators over a trained model.
"""

from vaekit.samplers.base import Sampler, fitted_kinds, load
from vaekit.samplers.flow import FlowSampler
from vaekit.samplers.gmm import GaussianMixtureSampler
from vaekit.samplers.prior import PriorSampler
from vaekit.samplers.code_prior import CodePriorFit, fit_prior

__all__ = ["Sampler", "PriorSampler", "GaussianMixtureSampler", "FlowSampler", "load", "fitted_kinds", "fit_prior", "CodePriorFit"]
