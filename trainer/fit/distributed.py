"""Device choice and ``torchrun`` data parallelism (NCCL on GPUs, gloo on CPUs).

``torchrun --nproc-per-node N trainer train ...`` starts N processes with ``RANK``/``WORLD_SIZE``
in their environment; each trains on its own shard of every epoch and DDP averages gradients, so
the N replicas stay identical. Only rank 0 writes checkpoints, exports and reports.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job (rank 0 of 1 when not launched by torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def select_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto``: this process's CUDA GPU if any, else Apple MPS, else the CPU."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def init_from_env(device: torch.device) -> DistInfo:
    """Join the process group when started by torchrun; a no-op for a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":  # NCCL runs collectives on the current device: this rank's own
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
        log.info("rank %d of %d joined the %s process group", info.rank, world, backend)
    return info


def shard(indices: Sequence[int], info: DistInfo) -> list[int]:
    """This rank's share, padded by wrap-around so every rank runs the same number of steps."""
    items = list(indices)
    if not info.enabled or not items:
        return items
    per_rank = -(-len(items) // info.world_size)
    padded = (items * (1 + per_rank * info.world_size // len(items)))[: per_rank * info.world_size]
    return padded[info.rank :: info.world_size]


def broadcast_flag(flag: bool, info: DistInfo) -> bool:
    """Rank 0's decision (e.g. stop early), seen by every rank."""
    if not info.enabled:
        return flag
    tensor = torch.tensor([1 if flag else 0], dtype=torch.int64, device=collective_device())
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())


def collective_device() -> torch.device:
    """Where a collective's tensors must live: NCCL takes only CUDA tensors (of this rank's
    device), gloo CPU tensors."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
