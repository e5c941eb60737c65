"""Experiment tracking: the callback protocol of :func:`vaekit.fit`, and TensorBoard and MLflow callbacks.

The protocol (every hook is a no-op in :class:`Callback`; override the ones you need):

* ``on_fit_start(model, info)``: once, after the data are checked and a run is resumed, before
  the first step. ``info`` holds the fit settings (``epochs``, ``batch_size``, ``lr``,
  ``weight_decay``, ``seed``, ``grad_clip``, ``patience``, ``binarize_data``, ``out_dir``,
  ``device``), ``start_epoch`` (epochs already done when resuming), ``num_train``,
  ``num_val``, ``world_size``, and ``examples``: a :class:`vaekit.data.Dataset` of up to
  :data:`EXAMPLES` validation examples (training examples without validation), on the
  model's device, for reconstructions.
* ``on_epoch_end(epoch, record, model)``: after each epoch, once its files are written.
  ``record`` is the epoch's line of ``metrics.jsonl``: ``epoch``, ``step``, ``train/<term>``,
  ``val/<term>``, ``samples_per_s``, ``elapsed_s`` (wall time since the run began, resumes included).
* ``on_fit_end(result)``: once, always, when ``on_fit_start`` was called: after the last epoch,
  and also when training fails (a non-finite loss, Ctrl-C, a lost process). It is called in a
  ``finally``: ``result.error`` is the exception that is propagating (None on success) and
  ``result.history`` the epochs finished. When it succeeds, the model holds the weights
  ``fit`` hands back (the best epoch's).

Hooks run in the main process only (rank 0 under ``torchrun``), once per epoch: they add no
host synchronisation to the training steps.
"""

from __future__ import annotations

import json
import numbers
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from vaekit.errors import ConfigError

__all__ = ["Callback", "TensorBoardCallback", "MLflowCallback", "check_callbacks", "flatten_params", "EXAMPLES"]

EXAMPLES = 64
"""How many validation examples ``on_fit_start``'s ``info["examples"]`` holds."""


class Callback:
    """Hooks that :func:`vaekit.fit` calls; each is a no-op here (see the module docstring for the protocol)."""

    def on_fit_start(self, model: torch.nn.Module, info: Mapping[str, Any]) -> None:
        """Once, before the first step."""

    def on_epoch_end(self, epoch: int, record: Mapping[str, Any], model: torch.nn.Module) -> None:
        """After epoch ``epoch`` (1-based): ``record`` is its line of ``metrics.jsonl``."""

    def on_fit_end(self, result: Any) -> None:
        """Once, after training or when it fails (``result.error`` set): release files and runs here."""


def check_callbacks(callbacks: Sequence[Callback] | None) -> list[Callback]:
    """``callbacks`` as a list of :class:`Callback` instances, or a ``ConfigError``."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        callbacks = [callbacks]
    callbacks = list(callbacks)
    for c in callbacks:
        if not isinstance(c, Callback):
            raise ConfigError(f"callbacks must be vaekit.train.callbacks.Callback instances (subclass it and override "
                              f"on_fit_start/on_epoch_end/on_fit_end), got {type(c).__name__}")
    return callbacks


def _require(module: str, flag: str, extra: str) -> Any:
    """Import ``module`` or say, in one line, which pip command provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{flag} needs the {extra} package: pip install 'vaekit[{extra}]'") from None


def numeric_scalars(record: Mapping[str, Any]) -> dict[str, float]:
    """The finite-or-not real numbers of ``record`` (booleans and the ``epoch`` counter left out)."""
    return {k: float(v) for k, v in record.items()
            if k != "epoch" and isinstance(v, numbers.Real) and not isinstance(v, bool)}


def flatten_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested config as flat ``{"options.beta": "4.0"}`` strings (lists as JSON), for tracking servers.

    Example:
        >>> flatten_params({"latent_dim": 2, "options": {"beta": 4.0}, "hidden_dims": [16]})
        {'latent_dim': '2', 'options.beta': '4.0', 'hidden_dims': '[16]'}
    """
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, prefix=f"{name}."))
        elif isinstance(value, (list, tuple)):
            flat[name] = json.dumps(list(value), default=str)
        else:
            flat[name] = str(value)
    return flat


def _as_images(x: torch.Tensor, input_shape: Sequence[int]) -> torch.Tensor | None:
    """Decoded means as an ``(N, C, H, W)`` float CPU batch in [0, 1] for 1- or 3-channel images, else None."""
    if len(input_shape) == 2:
        x = x.reshape(-1, 1, *input_shape)
    elif len(input_shape) != 3 or input_shape[0] not in (1, 3):
        return None  # tables and other layouts have no picture
    x = x.detach().float().cpu()
    low, high = float(x.min()), float(x.max())
    if low < 0.0 or high > 1.0:  # e.g. a Gaussian decoder's means: one min-max scale for the batch
        x = (x - low) / max(high - low, 1e-12)
    return x.clamp(0.0, 1.0)


class TensorBoardCallback(Callback):
    """Scalars every epoch, samples and reconstructions as images, to TensorBoard event files.

    Every real number of the epoch record is written with ``add_scalar(tag, value, epoch)``
    under its own name (``train/loss``, ``val/kl``, ``samples_per_s``). Every
    ``images_every`` epochs (and after the last), ``samples`` (decoded means of
    ``num_images`` draws of the prior, for models that have one; the same codes every
    time) and ``reconstructions`` (the input batch above its reconstruction) are written
    with ``add_images``. The model's config goes in as text (``config``). View with
    ``tensorboard --logdir DIR``.

    Arguments:
        log_dir: folder of the event files; created when training starts, not before.
        images_every: epochs between image logs (0: no images).
        num_images: images per grid.
        examples: a fixed batch (N, *input_shape) to reconstruct; default the first
            ``num_images`` validation examples ``fit`` passes in ``info["examples"]``.
    """

    def __init__(self, log_dir: str | os.PathLike, images_every: int = 1, num_images: int = 16,
                 examples: torch.Tensor | None = None):
        _require("torch.utils.tensorboard", "--tensorboard", "tensorboard")
        for name, value, low in (("images_every", images_every, 0), ("num_images", num_images, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"TensorBoardCallback {name} must be an integer ≥ {low}, got {value!r}")
        self.log_dir = Path(log_dir)
        self.images_every, self.num_images, self.examples = images_every, num_images, examples
        self.writer: Any = None

    def on_fit_start(self, model: torch.nn.Module, info: Mapping[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(self.log_dir))
        self.epochs = int(info["epochs"])
        self.writer.add_text("config", "```\n" + json.dumps(getattr(model, "config", {}), indent=2, default=str) + "\n```", 0)
        self.writer.add_text("fit", "```\n" + json.dumps({k: v for k, v in info.items() if k != "examples"}, indent=2, default=str)
                             + "\n```", 0)
        examples = info.get("examples")
        x = self.examples if self.examples is not None else (None if examples is None else examples.x)
        y = None if self.examples is not None or examples is None else examples.y
        self.x = None if x is None else x[: self.num_images]
        self.y = None if (y is None or not getattr(model, "conditional", False)) else y[: self.num_images]

    def on_epoch_end(self, epoch: int, record: Mapping[str, Any], model: torch.nn.Module) -> None:
        for tag, value in numeric_scalars(record).items():
            self.writer.add_scalar(tag, value, epoch)
        if self.images_every and (epoch % self.images_every == 0 or epoch == self.epochs):
            self._log_images(epoch, model)
        self.writer.flush()

    @torch.no_grad()
    def _log_images(self, epoch: int, model: Any) -> None:
        was_training = model.training
        model.eval()
        cuda = [model.device.index or 0] if model.device.type == "cuda" else []
        try:
            if getattr(model, "prior_module", None) is not None and (model.num_classes or not model.conditional):
                with torch.random.fork_rng(devices=cuda):  # the same draws every epoch; training's noise untouched
                    torch.manual_seed(0)
                    y = torch.arange(self.num_images) % model.num_classes if model.num_classes else None
                    images = _as_images(model.sample(self.num_images, y=y), model.input_shape)
                if images is not None:
                    self.writer.add_images("samples", images, epoch)
            if self.x is not None:
                x = model.as_tensor(self.x, "examples")
                with torch.random.fork_rng(devices=cuda):
                    reconstructions = model.reconstruct(x, self.y)
                images = _as_images(torch.cat([x, reconstructions]), model.input_shape)
                if images is not None:
                    self.writer.add_images("reconstructions", images, epoch)
        finally:
            model.train(was_training)

    def on_fit_end(self, result: Any) -> None:
        if self.writer is not None:
            self.writer.close()


def is_file_store(uri: str | None) -> bool:
    """True for a local MLflow file store: no URI, a path, or a ``file:`` URI."""
    if uri is None or uri.startswith("file:"):
        return True
    return "://" not in uri and not uri.startswith(("sqlite:", "databricks"))


class MLflowCallback(Callback):
    """Parameters, per-epoch metrics and the run's files to an MLflow run.

    ``on_fit_start`` opens a run (``experiment``, ``run_name``) and logs the model config
    flattened (``options.beta``) and the fit settings (``fit.lr``); ``on_epoch_end`` logs
    every real number of the record with ``step=epoch``; ``on_fit_end`` logs
    ``config.json``, ``model.safetensors``, ``metrics.jsonl`` and the PNGs of ``out_dir``
    as artifacts and ends the run, as ``FAILED`` when training failed. :meth:`log_report`
    adds files written later (the CLI's report) and final metrics to the finished run.

    A local file store (the default ``./mlruns``, a path, or a ``file:`` URI) needs
    ``MLFLOW_ALLOW_FILE_STORE=true`` from MLflow 3 on; this callback sets it (unless the
    environment already says otherwise) for such URIs. Browse with
    ``mlflow ui --backend-store-uri URI``.

    Arguments:
        tracking_uri: where runs go (``file:///abs/mlruns``, ``./mlruns``, ``http://host:5000``,
            ``sqlite:///mlflow.db``); None: ``./mlruns``.
        experiment: experiment name (created when missing).
        run_name: the run's name (None: MLflow picks one).
    """

    def __init__(self, tracking_uri: str | None = None, experiment: str = "vaekit", run_name: str | None = None):
        _require("mlflow", "--mlflow", "mlflow")
        if not isinstance(experiment, str) or not experiment:
            raise ConfigError(f"MLflowCallback experiment must be a non-empty name, got {experiment!r}")
        uri = "mlruns" if tracking_uri is None else str(tracking_uri)
        if is_file_store(uri) and not uri.startswith("file:"):
            uri = Path(uri).absolute().as_uri()  # MLflow wants file store paths as URIs
        self.tracking_uri, self.experiment, self.run_name = uri, experiment, run_name
        self.run_id: str | None = None
        self.out_dir: Path | None = None

    def _client(self) -> Any:
        if is_file_store(self.tracking_uri):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri)

    def on_fit_start(self, model: torch.nn.Module, info: Mapping[str, Any]) -> None:
        client = self._client()
        found = client.get_experiment_by_name(self.experiment)
        experiment_id = found.experiment_id if found is not None else client.create_experiment(self.experiment)
        run = client.create_run(experiment_id, run_name=self.run_name)
        self.run_id, self.client = run.info.run_id, client
        self.out_dir = None if info.get("out_dir") is None else Path(info["out_dir"])
        params = flatten_params(getattr(model, "config", {}))
        params.update(flatten_params({k: v for k, v in info.items() if k != "examples"}, prefix="fit."))
        from mlflow.entities import Param

        client.log_batch(self.run_id, params=[Param(_metric_key(k), v[:6000]) for k, v in params.items()])

    def on_epoch_end(self, epoch: int, record: Mapping[str, Any], model: torch.nn.Module) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(_metric_key(k), v, now, epoch) for k, v in numeric_scalars(record).items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def on_fit_end(self, result: Any) -> None:
        if self.run_id is None:
            return
        try:
            if self.out_dir is not None:
                self._log_files(self.out_dir)
        finally:
            self.client.set_terminated(self.run_id, status="FAILED" if getattr(result, "error", None) is not None else "FINISHED")

    def log_report(self, out_dir: str | os.PathLike, metrics: Mapping[str, Any] | None = None, prefix: str = "") -> None:
        """After ``fit``: log the PNGs, ``metrics.json`` and model files now in ``out_dir``, and the
        real numbers of ``metrics`` (as ``prefix + key``), to the finished run."""
        if self.run_id is None:
            raise ConfigError("MLflowCallback.log_report: no run yet; pass the callback to vaekit.fit first")
        self._log_files(Path(out_dir))
        if metrics:
            import time

            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            self.client.log_batch(self.run_id, metrics=[Metric(_metric_key(prefix + k), v, now, 0)
                                                        for k, v in numeric_scalars(metrics).items()])

    def _log_files(self, out_dir: Path) -> None:
        names = ("config.json", "model.safetensors", "metrics.jsonl", "metrics.json", "train.yaml")
        for path in sorted(out_dir.glob("*.png")) + [out_dir / n for n in names]:
            if path.is_file():
                self.client.log_artifact(self.run_id, str(path))


def _metric_key(key: str) -> str:
    """MLflow metric and parameter keys allow letters, digits, ``_ - . / :`` and spaces; anything else becomes ``_``."""
    return "".join(c if c.isalnum() or c in "_-./: " else "_" for c in key)
