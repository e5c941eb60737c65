"""A callback that stops training after a given epoch as Ctrl-C would, for tests that resume a run."""

from __future__ import annotations

import vaekit


class InterruptAfter(vaekit.train.Callback):
    """Raises ``KeyboardInterrupt`` at the end of epoch ``epoch`` (after its checkpoint is written)."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_epoch_end(self, epoch, record, model):
        if epoch == self.epoch:
            raise KeyboardInterrupt
