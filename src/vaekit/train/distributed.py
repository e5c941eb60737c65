"""Data-parallel training under ``torchrun``: process group set-up and the few collective steps.

``torchrun --nproc_per_node=N script.py`` sets RANK, WORLD_SIZE and LOCAL_RANK; ``vaekit.fit``
then wraps the model in ``DistributedDataParallel`` (gradients averaged across processes),
gives each process its own shard of every epoch's permutation, sums the epoch's loss terms
across processes, and lets rank 0 alone write files (and, in the CLI, evaluate and print).
One process (no torchrun) needs none of it.

A process that dies (killed, out of memory, its machine gone) breaks the next collective
step of the others; :func:`lost_process_error` turns the backend's message into one line
that says what happened and how to resume.
"""

from __future__ import annotations

import atexit
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from vaekit.errors import VaekitError

__all__ = ["LostProcessError", "ProcessGroup", "is_main_process", "lost_process_error", "process_group_from_env"]


class LostProcessError(VaekitError, RuntimeError):
    """Another training process stopped answering (killed, crashed, or its machine went away)."""


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place among the training processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, requested: torch.device) -> torch.device:
        """Each process drives its own GPU (``cuda:LOCAL_RANK``); CPU processes share the CPU."""
        if self.distributed and requested.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return requested

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over processes (identity for one process)."""
        if self.distributed:
            tensor = tensor.clone()
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def any(self, flag: torch.Tensor) -> bool:
        """True when ``flag`` is set in any process (a NaN in one stops all)."""
        return bool(self.sum(flag.to(torch.float32)) > 0)

    def same(self, values: list[int]) -> bool:
        """True when every process holds the same ``values`` (always for one process)."""
        if not self.distributed:
            return True
        both = torch.tensor(values + [-v for v in values], dtype=torch.float64, device=self._collective_device())
        dist.all_reduce(both, op=dist.ReduceOp.MAX)  # max(v) == -max(-v) == min(v) everywhere
        return bool((both[: len(values)] == -both[len(values) :]).all())

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def _collective_device(self) -> torch.device:
        return torch.device("cuda", self.local_rank) if dist.get_backend() == "nccl" else torch.device("cpu")


def is_main_process() -> bool:
    """True in the process that writes, evaluates and prints: rank 0 under ``torchrun``, the only one otherwise.

    Reads the initialised process group when there is one, else torchrun's ``RANK`` variable,
    so it answers the same before and after ``vaekit.fit`` joins the group.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def process_group_from_env(device: torch.device) -> ProcessGroup:
    """Join the process group described by torchrun's environment, if any (gloo on CPU, NCCL on GPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return ProcessGroup()
    group = ProcessGroup(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(group.local_rank)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        # The group is ours: tear it down while the interpreter is still whole. Exiting with a
        # live gloo group lets its worker threads touch Python objects during finalisation,
        # which aborts the process (SIGABRT) at random (pytorch/pytorch#179291).
        atexit.register(_destroy_process_group)
    return group


def _destroy_process_group() -> None:
    """Leave the group together: a gloo peer whose partner has already torn down its connections
    can abort in its own teardown ("terminate called without an active exception"), so every
    process first waits for the others — at most a few seconds, in case one of them is gone."""
    if not dist.is_initialized():
        return
    if dist.get_backend() == "gloo":
        import datetime

        try:
            dist.monitored_barrier(timeout=datetime.timedelta(seconds=5))
        except Exception:  # noqa: BLE001 — a lost peer: nothing to wait for
            pass
    dist.destroy_process_group()


_LOST_SIGNS = ("connection reset", "connection closed", "connection refused", "broken pipe", "timed out", "timeout",
               "remote worker", "peer", "ncclremoteerror", "nccl error", "socket")
"""What gloo's and NCCL's messages say when a peer is gone (they raise plain RuntimeErrors)."""


def lost_process_error(error: BaseException, group: ProcessGroup, epoch: int, checkpoint: Path | None) -> LostProcessError | None:
    """The one-line :class:`LostProcessError` for ``error`` raised by a collective step during ``epoch``
    (1-based), or None when ``error`` is something else (a bug, out of memory) or there is one process.

    ``checkpoint`` is the run's checkpoint file (None without a run folder). Rank 0 writes it
    atomically between two barriers, so it holds the last finished epoch, whole, and
    re-running the same ``torchrun`` command resumes from there.
    """
    if not group.distributed or not isinstance(error, RuntimeError) or isinstance(error, VaekitError):
        return None
    text = str(error).strip()
    if not (isinstance(error, dist.DistError) or any(sign in text.lower() for sign in _LOST_SIGNS)):
        return None
    reason = re.sub(r"^\[[^\]]*\]\s*", "", text.splitlines()[0]) if text else type(error).__name__
    reason = reason.split(". ")[0].rstrip(".")  # the backend's first sentence, without its source location
    if checkpoint is None:
        saved = "nothing was saved (no out_dir)"
    elif checkpoint.exists():
        from vaekit.train.checkpoint import read_trainer_state

        try:
            done = f"epoch {int(read_trainer_state(checkpoint)['epoch'])}"
        except Exception:  # noqa: BLE001 — the message must not fail; the file is checked on resume
            done = "the last finished epoch"
        saved = f"{checkpoint} holds {done}, intact: re-run the same torchrun command to resume"
    else:
        saved = f"no epoch finished, so {checkpoint.parent} has no checkpoint: re-run the same torchrun command to start over"
    return LostProcessError(
        f"lost contact with another training process during epoch {epoch} (this is rank {group.rank} of {group.world_size}: "
        f"{reason}); torchrun's summary names the process that failed first, and its log says why; {saved}"
    )
