"""Training: the loop, checkpoints."""

from vaekit.train.callbacks import Callback, MLflowCallback, TensorBoardCallback
from vaekit.train.checkpoint import load_checkpoint, save_checkpoint
from vaekit.train.trainer import FitResult, fit, resolve_device

__all__ = ["fit", "FitResult", "resolve_device", "save_checkpoint", "load_checkpoint", "Callback", "TensorBoardCallback", "MLflowCallback"]
