"""The stop flag of data-parallel training reaches every rank, on the device its backend takes.

NCCL refuses CPU tensors; no GPU is here, so the device choice is checked with the backend
reported as NCCL, and the broadcast itself runs for real between two gloo processes.
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sortline_dev.processes import free_port
from trainer.fit import distributed
from trainer.fit.distributed import broadcast_flag, init_from_env, shutdown


def _rank(rank: int, port: int, decisions: list[bool], results: mp.SimpleQueue) -> None:
    os.environ.update(
        {"RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank),
         "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    )  # fmt: skip
    torch.set_num_threads(1)
    info = init_from_env(torch.device("cpu"))
    try:
        # Each rank proposes its own value: only rank 0's may count.
        results.put((rank, [broadcast_flag(decision != (rank == 1), info) for decision in decisions]))
    finally:
        shutdown(info)


def test_every_rank_sees_rank_0s_decision() -> None:
    decisions = [True, False, True]
    results = mp.get_context("spawn").SimpleQueue()
    mp.start_processes(_rank, args=(free_port(), decisions, results), nprocs=2, start_method="spawn")
    seen = dict(results.get() for _ in range(2))
    assert seen == {0: decisions, 1: decisions}


def test_the_flag_lives_on_the_cuda_device_under_nccl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dist, "get_backend", lambda: "nccl")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert distributed.collective_device() == torch.device("cuda", 1)
    monkeypatch.setattr(dist, "get_backend", lambda: "gloo")
    assert distributed.collective_device() == torch.device("cpu")
