"""What every ex-post sampler shares: codes in, decoded samples out, and its files in the run folder.

An ex-post sampler is a density q(z) over the latent codes of a trained model, fitted
after training to the codes z_i = E(x_i) of the training data (posterior means for VAEs,
the point code for deterministic autoencoders) and sampled instead of the prior:
x ~ p(x | z) with z ~ q(z); :meth:`Sampler.sample` returns the decoder's mean at z. It
makes a deterministic autoencoder generative, and it closes the gap between a VAE's prior
and its aggregate posterior (the "holes" the prior samples into).

References:
    From Variational to Deterministic Autoencoders (Ghosh, Sajjadi, Vergari, Black &
    Schölkopf, 2020), arXiv:1903.12436 — "ex-post density estimation" of the codes.
    Pythae: Unifying Generative Autoencoders in Python (Chadebec, Vincent & Allassonnière,
    2022), arXiv:2206.08309 — GMM and flow samplers fitted on a trained model's codes.

A fitted sampler is saved beside its model as ``RUN/sampler_<kind>.safetensors`` (its
arrays, with a SHA-256 digest of them in the header) and ``RUN/sampler_<kind>.json`` (its
kind, hyper-parameters, fit statistics, the digest of the model weights it was fitted to,
and the digest of its own arrays); both are written atomically and nothing is pickled.
:func:`load` refuses a sampler whose recorded model digest differs from the model it is
given (a file copied from another run, or a model retrained since), and a JSON file whose
arrays file belongs to another fit.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, ClassVar

import torch

from vaekit._io import atomic_path, atomic_write_text, read_checked_tensors, tensors_sha256
from vaekit._version import __version__
from vaekit.errors import CheckpointError, ConfigError, DataError
from vaekit.models.model import LatentVariableModel
from vaekit.models.persistence import CONFIG_FILE, WEIGHTS_FILE, state_tensors

__all__ = ["Sampler", "load", "load_run_model", "fitted_kinds", "sampler_files", "weights_digest", "check_model", "encode_codes", "decode_codes"]

CHUNK = 1024
"""Examples encoded, or codes decoded, at once: bounds memory; results do not depend on it."""

FORMAT = 1
"""Version of the sampler file layout, recorded in its JSON."""


# -- the model a sampler works on -------------------------------------------------------------
def weights_digest(model: LatentVariableModel) -> str:
    """SHA-256 of the model's weights, the digest ``model.save`` writes into ``model.safetensors``."""
    return tensors_sha256(state_tensors(model))


def _model_name(model: Any) -> str:
    config = getattr(model, "config", None)
    return str(config.get("model", "this model")) if isinstance(config, dict) else type(model).__name__


def check_model(model: Any, owner: str) -> None:
    """``model`` must be an unconditional vaekit model with a decoder (samples are decoded codes)."""
    if not isinstance(model, LatentVariableModel):
        raise ConfigError(f"{owner}: model must be a vaekit model (vaekit.create / vaekit.load), got {type(model).__name__}")
    if getattr(model, "decoder", None) is None or getattr(model, "likelihood", None) is None:
        raise ConfigError(f"{owner}: {_model_name(model)} has no decoder, so codes cannot be turned into samples; "
                          "use a model with a decoder (ae, vae, beta_vae, ...)")
    if model.conditional:
        raise ConfigError(f"{owner}: {_model_name(model)} is conditional (its codes depend on labels), and samplers fit "
                          "codes of unconditional models; sample it from its prior with a label (`vaekit sample RUN --label K`)")


def _batched(model: LatentVariableModel, fn: Any, x: torch.Tensor) -> torch.Tensor:
    """``fn`` over ``x`` in chunks on the model's device, in evaluation mode, without gradients; results on the CPU."""
    was_training = model.training
    model.eval()
    device = model.device
    try:
        with torch.no_grad():
            out = [fn(x[i : i + CHUNK].to(device)).cpu() for i in range(0, x.shape[0], CHUNK)]
    finally:
        model.train(was_training)
    return torch.cat(out)


def encode_codes(model: LatentVariableModel, x: Any) -> torch.Tensor:
    """The codes (N, D) of ``x`` (tensor, array or vaekit Dataset): ``model.transform`` in chunks, float32 on the CPU."""
    from vaekit.data import as_dataset, check_data

    x = as_dataset(x, name="x").x.detach().to(torch.float32)
    check_data(x, input_shape=model.input_shape, name="x")
    codes = _batched(model, model.transform, x).to(torch.float32)
    if not bool(torch.isfinite(codes).all()):
        raise DataError(f"the codes of x contain NaN or infinite values: {_model_name(model)}'s encoder is broken "
                        "(a diverged training run?) — retrain the model")
    return codes


def decode_codes(model: LatentVariableModel, z: torch.Tensor) -> torch.Tensor:
    """Decoder means E[x | z] (N, *input_shape) for codes ``z`` (N, D), on the CPU."""
    return _batched(model, lambda zb: model.decode(zb).mean, z.to(torch.float32))


def _check_count(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"n must be a positive number of samples, got {n!r}")
    return n


def _generator(seed: Any) -> torch.Generator | None:
    """A CPU generator seeded with ``seed``, or None (torch's global generator) when ``seed`` is None."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an integer or None, got {seed!r}")
    return torch.Generator().manual_seed(seed)


def _json_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# -- the estimator ----------------------------------------------------------------------------
class Sampler:
    """Base of the ex-post samplers: scikit-learn estimator conventions over a trained model.

    The constructor stores hyper-parameters only; ``fit(model, x)`` computes the codes of
    ``x`` with ``model.transform`` (in chunks, without gradients) and fits the density;
    fitted attributes end in ``_`` (``model_``, ``latent_dim_``, ``num_codes_``,
    ``train_log_likelihood_``, ``model_sha256_`` and each sampler's own). A subclass sets
    ``kind`` (its file name and ``--sampler`` value) and implements ``_fit_codes``,
    ``_sample_codes``, ``_log_prob`` and, when it is saved, ``_tensors`` / ``_restore``.

    Methods: ``sample_codes(n, seed=)`` (n, D) codes; ``sample(n, seed=)`` (n, *input_shape)
    decoder means at those codes, on the CPU; ``log_prob(codes)`` (N,) float64 log q(z);
    ``score(x)`` the average log q of the codes of ``x``; ``save(run)``.
    """

    kind: ClassVar[str] = ""
    saved: ClassVar[bool] = True
    _KINDS: ClassVar[dict[str, type["Sampler"]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            Sampler._KINDS[cls.kind] = cls

    # -- hyper-parameters --------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        return [p.name for p in inspect.signature(cls.__init__).parameters.values() if p.name != "self"]

    def get_params(self) -> dict[str, Any]:
        """The constructor's arguments, by name (as scikit-learn's ``get_params``)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def check_params(self) -> None:
        """Raise a ConfigError for hyper-parameters that cannot work (subclasses add their own)."""

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if k != "model")
        return f"{type(self).__name__}({params})"

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, model: LatentVariableModel, x: Any, y: Any = None) -> "Sampler":
        """Fit the density to the codes of ``x`` under ``model``; return ``self``, bound to ``model``.

        Arguments:
            model: a trained, unconditional vaekit model with a decoder.
            x: training examples (tensor, array or vaekit Dataset), shape (N, *input_shape).
            y: must be None (conditional models are refused: their codes depend on labels).
        """
        owner = type(self).__name__
        self.check_params()
        check_model(model, owner)
        if y is not None:
            raise ConfigError(f"{owner}.fit: y must be None; samplers fit the codes of unconditional models")
        codes = encode_codes(model, x)
        self._fit_codes(codes)
        self._bind(model)
        self.num_codes_ = int(codes.shape[0])
        self.train_log_likelihood_ = float(self.log_prob(codes).mean())
        return self

    def _bind(self, model: LatentVariableModel, digest: str | None = None) -> None:
        self.model_ = model
        self.latent_dim_ = int(model.latent_dim)
        self.model_sha256_ = digest or weights_digest(model)

    def _fit_codes(self, codes: torch.Tensor) -> None:
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise ConfigError(f"this {type(self).__name__} is not fitted yet: call fit(model, x) first")

    # -- using the density -------------------------------------------------------------------
    def sample_codes(self, n: int, *, seed: int | None = None) -> torch.Tensor:
        """n codes z ~ q(z), (n, D) float32 on the CPU; ``seed`` makes them reproducible (the global RNG is untouched)."""
        self._check_fitted()
        return self._sample_codes(_check_count(n), seed).to(torch.float32).cpu()

    def sample(self, n: int, *, seed: int | None = None) -> torch.Tensor:
        """n samples (n, *input_shape): the decoder's mean E[x | z] at codes z ~ q(z), on the CPU."""
        codes = self.sample_codes(n, seed=seed)
        return decode_codes(self.model_, codes)

    def log_prob(self, codes: Any) -> torch.Tensor:
        """log q(z) for codes (N, D): float64, shape (N,)."""
        self._check_fitted()
        codes = torch.as_tensor(codes)
        if codes.dim() != 2 or codes.shape[1] != self.latent_dim_:
            raise DataError(f"codes must have shape (N, {self.latent_dim_}), got {tuple(codes.shape)}")
        if codes.shape[0] == 0:  # torch's distributions cannot validate an empty batch
            return torch.zeros(0, dtype=torch.float64)
        with torch.no_grad():
            return self._log_prob(codes.detach().cpu()).to(torch.float64)

    def score(self, x: Any, y: Any = None) -> float:
        """Average log-likelihood (nats) of the codes of ``x`` under the fitted density."""
        self._check_fitted()
        return float(self.log_prob(encode_codes(self.model_, x)).mean())

    def _sample_codes(self, n: int, seed: int | None) -> torch.Tensor:
        raise NotImplementedError

    def _log_prob(self, codes: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # -- persistence -------------------------------------------------------------------------
    def _tensors(self) -> dict[str, torch.Tensor]:
        """The fitted arrays, saved in safetensors."""
        raise NotImplementedError

    def _fitted_info(self) -> dict[str, Any]:
        """Fitted scalars and lists, saved in the JSON (subclasses extend it)."""
        return {"latent_dim": self.latent_dim_, "num_codes": self.num_codes_, "train_log_likelihood": self.train_log_likelihood_}

    def _restore(self, tensors: dict[str, torch.Tensor], fitted: dict[str, Any]) -> None:
        """Set the fitted attributes from saved arrays and the JSON's ``fitted`` block."""
        raise NotImplementedError

    def save(self, run: str | Path) -> dict[str, str]:
        """Write ``RUN/sampler_<kind>.safetensors`` and ``RUN/sampler_<kind>.json`` atomically; return their paths.

        ``run`` must hold the model this sampler was fitted to (``model.save(run)`` or a
        ``vaekit train`` run folder), so the sampler is stored beside its weights.
        """
        self._check_fitted()
        if not self.saved:
            raise ConfigError(f"a {self.kind} sampler is part of the model: there is nothing to save")
        run = Path(run)
        on_disk = saved_model_digest(run)
        if on_disk != self.model_sha256_:
            raise ConfigError(f"the model saved in {run} is not the one this sampler was fitted to (weights digest "
                              f"{on_disk[:12]}… vs {self.model_sha256_[:12]}…); fit the sampler to vaekit.load({str(run)!r}), "
                              "or save the model there first")
        tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in self._tensors().items()}
        digest = tensors_sha256(tensors)
        meta = {
            "format": FORMAT,
            "kind": self.kind,
            "vaekit_version": __version__,
            "params": {k: _json_value(v) for k, v in self.get_params().items()},
            "fitted": self._fitted_info(),
            "model": {"name": _model_name(self.model_), "sha256": self.model_sha256_},
            "tensors_sha256": digest,
        }
        from safetensors.torch import save_file

        weights, config = sampler_files(run, self.kind)
        with atomic_path(weights) as tmp:
            save_file(tensors, str(tmp), metadata={"vaekit_version": __version__, "sha256": digest})
        atomic_write_text(config, json.dumps(meta, indent=2, allow_nan=False) + "\n")
        return {"weights": str(weights), "config": str(config)}

    @classmethod
    def _load(cls, run: Path, model: LatentVariableModel) -> "Sampler":
        weights, config = sampler_files(run, cls.kind)
        meta = _read_meta(config, cls.kind)
        refit = f"re-fit it with `vaekit fit-sampler {run} --sampler {cls.kind}`"
        check_model(model, f"sampler {config}")
        digest = weights_digest(model)
        if meta["model"]["sha256"] != digest:
            raise CheckpointError(f"{config} was fitted to another model (weights digest {meta['model']['sha256'][:12]}…, "
                                  f"this model's {digest[:12]}…): it comes from another run or the model was retrained — {refit}")
        tensors = _read_tensors(weights, refit)
        if tensors_sha256(tensors) != meta["tensors_sha256"]:
            raise CheckpointError(f"{weights} does not belong to {config} (they come from different fits) — {refit}")
        try:
            sampler = cls(**meta["params"])
            sampler.check_params()
            sampler._bind(model, digest)
            sampler._restore(tensors, meta["fitted"])
            sampler.num_codes_ = int(meta["fitted"]["num_codes"])
            sampler.train_log_likelihood_ = float(meta["fitted"]["train_log_likelihood"])
        except (ConfigError, TypeError, KeyError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"{config} holds a {cls.kind} sampler this vaekit cannot rebuild ({e}) — {refit}") from None
        return sampler


# -- files ------------------------------------------------------------------------------------
def sampler_files(run: str | Path, kind: str) -> tuple[Path, Path]:
    """``(RUN/sampler_<kind>.safetensors, RUN/sampler_<kind>.json)``."""
    run = Path(run)
    return run / f"sampler_{kind}.safetensors", run / f"sampler_{kind}.json"


def fitted_kinds(run: str | Path) -> list[str]:
    """The kinds of the samplers saved in ``run`` (those with a ``sampler_<kind>.json``), sorted."""
    return sorted(k for k, c in Sampler._KINDS.items() if c.saved and sampler_files(run, k)[1].is_file())


def saved_model_digest(run: Path) -> str:
    """The weights digest of the model saved in ``run``: from its header, or computed when it has none.

    What a file fitted after training (a sampler, a VQ-VAE's code prior) records to name its model.
    """
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    path = run / WEIGHTS_FILE
    if not path.is_file():
        raise ConfigError(f"{run} holds no saved model ({WEIGHTS_FILE}): save the model there first (model.save({str(run)!r})), "
                          "so the sampler is stored beside the weights it was fitted to")
    try:
        with safe_open(str(path), framework="pt") as f:
            digest = (f.metadata() or {}).get("sha256")
        return digest or tensors_sha256(load_file(str(path)))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({e}); it is truncated or tampered with") from None


def _read_meta(path: Path, kind: str) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e}); re-fit the sampler with `vaekit fit-sampler`") from None
    ok = (isinstance(meta, dict) and meta.get("kind") == kind and isinstance(meta.get("params"), dict)
          and isinstance(meta.get("fitted"), dict) and isinstance(meta.get("model"), dict)
          and isinstance(meta["model"].get("sha256"), str) and isinstance(meta.get("tensors_sha256"), str))
    if not ok:
        raise CheckpointError(f"{path} is not a vaekit {kind} sampler file (it lacks kind, params, fitted, model or "
                              f"tensors_sha256); re-fit it with `vaekit fit-sampler RUN --sampler {kind}`")
    return meta


def _read_tensors(path: Path, fix: str) -> dict[str, torch.Tensor]:
    return read_checked_tensors(path, fix)


def load_run_model(run: str | Path, device: str | torch.device | None = None) -> LatentVariableModel:
    """The model saved in ``run`` (``vaekit.load``), refusing a run of a network without a decoder.

    A folder whose ``config.json`` records a ``kind`` and no ``model`` (a feature classifier
    from ``vaekit train-classifier``) has nothing to decode codes with: that is named, with
    the fix, instead of the generic "not a model config".
    """
    from vaekit.models import load_model

    path = Path(run) / CONFIG_FILE
    try:
        config = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        config = None  # load_model names what is wrong with it
    if isinstance(config, dict) and "model" not in config and isinstance(config.get("kind"), str):
        raise ConfigError(f"{run} holds a {config['kind']}, which has no decoder to draw samples with; give the run folder "
                          "of a model with a decoder (`vaekit train ae|vae|beta_vae ...`)")
    return load_model(run) if device is None else load_model(run, device=device)


def load(run: str | Path, kind: str | None = None, model: LatentVariableModel | None = None) -> Sampler:
    """The sampler saved in ``run``, bound to its model.

    Arguments:
        run: a run folder (``vaekit train`` or ``model.save``) where ``vaekit fit-sampler``
            or ``sampler.save(run)`` wrote the sampler.
        kind: ``"gmm"``, ``"flow"`` or ``"prior"``; None: the single sampler fitted in
            ``run`` (an error when there are none or several). ``"prior"`` returns
            :class:`~vaekit.samplers.PriorSampler` (an error for models without a prior).
        model: the model the sampler was fitted to; None loads it with ``vaekit.load(run)``.
            Its weights must match the digest recorded when the sampler was fitted.

    Example:
        >>> sampler = load("runs/ae", kind="gmm")   # doctest: +SKIP
        >>> images = sampler.sample(64, seed=0)     # doctest: +SKIP
    """
    run = Path(run)
    if kind is not None and kind not in Sampler._KINDS:
        raise ConfigError(f"unknown sampler {kind!r}: choose one of {', '.join(sorted(Sampler._KINDS))}")
    if kind is None:
        kinds = fitted_kinds(run)
        if not kinds:
            raise ConfigError(f"{run} holds no fitted sampler: fit one with `vaekit fit-sampler {run} --sampler gmm` "
                              "(or flow), or sample from the model's prior (kind='prior')")
        if len(kinds) > 1:
            raise ConfigError(f"{run} holds several samplers ({', '.join(kinds)}): choose one with kind= (--sampler)")
        kind = kinds[0]
    cls = Sampler._KINDS[kind]
    if cls.saved and not sampler_files(run, kind)[1].is_file():
        raise ConfigError(f"{run} has no fitted {kind} sampler: fit one with `vaekit fit-sampler {run} --sampler {kind}`")
    if model is None:
        model = load_run_model(run)
    if not cls.saved:
        return cls(model)
    return cls._load(run, model)

