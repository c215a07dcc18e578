"""torch.distributed plumbing for ``torchrun``: process group from the environment, and the
collectives the bank update needs (no-ops in a single process)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as tdist
from torch import Tensor


@dataclass
class DistContext:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce_(self, t: Tensor) -> Tensor:
        if self.enabled:
            tdist.all_reduce(t)
        return t

    def all_gather_cat(self, t: Tensor) -> Tensor:
        """Concatenate equal-shaped tensors from all ranks, in rank order."""
        if not self.enabled:
            return t
        parts = [torch.empty_like(t) for _ in range(self.world)]
        tdist.all_gather(parts, t.contiguous())
        return torch.cat(parts, 0)

    def broadcast_(self, t: Tensor, src: int = 0) -> Tensor:
        if self.enabled:
            tdist.broadcast(t, src)
        return t

    def barrier(self) -> None:
        if self.enabled:
            tdist.barrier()

    def close(self) -> None:
        if self.owns_group and tdist.is_initialized():
            tdist.destroy_process_group()


def init_distributed(device: str | None = None) -> DistContext:
    """Join the process group torchrun describes (WORLD_SIZE > 1), else a single-process context.

    CUDA: nccl, one GPU per process (LOCAL_RANK); CPU: gloo."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local if world > 1 else (dev.index or 0))
        torch.cuda.set_device(dev)
    owns = False
    if world > 1 and not tdist.is_initialized():
        tdist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        owns = True
    return DistContext(rank, world, local, dev, owns)
