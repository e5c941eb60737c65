"""Data-parallel training under ``torchrun``: process group set-up and the few collective steps.

``torchrun --nproc_per_node=N script.py`` sets RANK, WORLD_SIZE and LOCAL_RANK; ``vaekit.fit``
then wraps the model in ``DistributedDataParallel`` (gradients averaged across processes),
gives each process its own shard of every epoch's permutation, sums the epoch's loss terms
across processes, and lets rank 0 alone write files. One process (no torchrun) needs none of it.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["ProcessGroup", "process_group_from_env"]


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

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


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
    if dist.is_initialized():
        dist.destroy_process_group()
