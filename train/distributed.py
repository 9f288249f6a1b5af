"""PyTorch's own distributed engine for the training loop: one process, or many under torchrun.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT in each worker's
environment; with them the loop joins a process group (nccl on GPUs, gloo on CPUs), wraps its
networks in DistributedDataParallel and trains on its shard of every global batch. Without
them it is one ordinary process: no process group, no wrappers, no per-step overhead.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from enhance_edge.errors import EnhanceEdgeError

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
CPU = torch.device("cpu")


@dataclass(frozen=True)
class Processes:
    """This process's place among the training processes, and the device it trains on."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = CPU
    distributed: bool = False  # a process group is up (launched by torchrun)

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes logs, metrics and checkpoints."""
        return self.rank == 0


@contextlib.contextmanager
def processes_from_environment() -> Iterator[Processes]:
    """Join torchrun's process group for the duration of a run, or run as one process."""
    if "WORLD_SIZE" not in os.environ:
        yield Processes(device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))
        return
    missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
    if missing:
        raise EnhanceEdgeError(f"WORLD_SIZE is set but {', '.join(missing)} are not: launch with torchrun")
    rank, world_size, local_rank = (int(os.environ[name]) for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    if torch.cuda.is_available():
        device, backend = torch.device("cuda", local_rank), "nccl"
        torch.cuda.set_device(device)
    else:
        device, backend = CPU, "gloo"
    dist.init_process_group(backend, rank=rank, world_size=world_size)
    try:
        yield Processes(rank, world_size, device, distributed=True)
        # Leave together: a process that tore its group down while rank 0 was still validating and
        # writing the last epoch sometimes aborted in gloo ("terminate called without an active
        # exception", exit -6) and failed the whole run. After an error nobody waits for the others.
        # The run's reference cycles (DistributedDataParallel's reducer holds gloo work) are freed
        # first, while the group and the interpreter are alive: left to the collection at exit they
        # still aborted rank 1 now and then (tests/train/test_resume.py's two-worker run: 1 of 8 runs
        # on a busy machine and 2 full suites of 2026-12-05; with the collection, 0 of 25).
        gc.collect()
        dist.barrier()
    finally:
        dist.destroy_process_group()


def local_batch_size(batch_size: int, procs: Processes) -> int:
    """Each process's share of the global batch, which stays the size the user asked for."""
    if batch_size % procs.world_size:
        raise EnhanceEdgeError(f"batch size {batch_size} does not split evenly over {procs.world_size} processes; "
                               f"use a multiple of {procs.world_size}")
    return batch_size // procs.world_size


def epoch_order(dataset_size: int, procs: Processes, seed: int) -> DistributedSampler:
    """This process's shard of each epoch's shuffled order (``set_epoch`` picks the epoch).

    The order is a function of (seed, epoch) alone, so a resumed run needs no sampler state,
    and global step s covers the same images, positions s*B .. (s+1)*B of the epoch's
    permutation, whatever the number of processes.
    """
    return DistributedSampler(range(dataset_size), num_replicas=procs.world_size, rank=procs.rank,
                              shuffle=True, seed=seed)


def sync_batch_norm(module: nn.Module, procs: Processes) -> nn.Module:
    """Batch-norm statistics over the global batch rather than each process's share.

    torch's SyncBatchNorm runs on GPUs only; on CPUs (gloo) each process normalises its own
    share of the batch, and rank 0's running statistics are the ones evaluated and saved.
    """
    if procs.distributed and procs.device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return module


def data_parallel(module: nn.Module, procs: Processes) -> nn.Module:
    """The module wrapped so that backward averages its gradients over all processes."""
    if not procs.distributed:
        return module
    return DistributedDataParallel(module, device_ids=[procs.device.index] if procs.device.type == "cuda" else None)


def sum_over_processes(values: list[float], procs: Processes) -> list[float]:
    """Element-wise sums over all processes (every process must call this at the same point)."""
    if not procs.distributed:
        return values
    total = torch.tensor(values, dtype=torch.float64, device=procs.device)
    dist.all_reduce(total)
    return total.tolist()


def from_main(value: Any, procs: Processes) -> Any:
    """Rank 0's ``value`` on every process (what the others pass is ignored).

    Sent with torch.distributed's own pickling between processes of this run, never read
    from a file: checkpoints are only ever loaded with ``weights_only=True``, on rank 0.
    """
    if not procs.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0, device=procs.device)
    return box[0]
