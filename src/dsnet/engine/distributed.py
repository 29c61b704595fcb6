"""Thin helpers over torch.distributed for torchrun-launched (single- or multi-node) runs."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..torchrun import Shard, local_rank_from_env, shard_from_env

__all__ = [
    "DistEnv",
    "init_distributed",
    "get_rank",
    "get_world_size",
    "cleanup",
    "all_ranks_agree",
    "param_divergence",
]


@dataclass(frozen=True)
class DistEnv:
    """This process in a (torchrun) run: its rank of ``world_size``, its place on the machine and its device."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    owns_group: bool = False  # this call created the process group (and so may destroy it)

    @property
    def shard(self) -> Shard:
        """The process's share of the work, in the vocabulary predict and eval split work by."""
        return Shard(self.rank, self.world_size)

    distributed = property(lambda self: self.shard.distributed, doc="more than one process")
    is_main = property(lambda self: self.shard.is_main, doc="rank 0: the one that logs and writes")


def init_distributed(device: str | None = None, timeout_s: int = 1800) -> DistEnv:
    """Initialise the process group when launched by torchrun (``WORLD_SIZE`` > 1).

    NCCL on CUDA, gloo on CPU. Rendezvous (single- or multi-node) is torchrun's: the ``RANK``/
    ``LOCAL_RANK``/``WORLD_SIZE`` it sets are read by :mod:`dsnet.torchrun`, ``MASTER_ADDR``/``MASTER_PORT``
    by torch.distributed.
    """
    rank, world_size = shard_from_env()
    local_rank = local_rank_from_env()
    if device is None or device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device(device)
    owns = False
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
        owns = True
    return DistEnv(rank=rank, local_rank=local_rank, world_size=world_size, device=dev, owns_group=owns)


def get_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def cleanup(env: DistEnv) -> None:
    """Destroy the process group if ``env`` created it (never one the caller set up)."""
    if env.owns_group and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_ranks_agree(ok: bool, env: DistEnv) -> bool:
    """True on every rank when ``ok`` holds on every rank (a no-op without a process group)."""
    if not env.distributed:
        return ok
    t = torch.tensor([1 if ok else 0], device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def param_divergence(model: torch.nn.Module) -> float:
    """Largest absolute difference between this rank's parameters and rank 0's (should be 0).

    Parameters only: without SyncBatchNorm (CPU) each rank's BN running statistics legitimately differ.
    """
    worst = torch.zeros((), dtype=torch.float64, device=next(model.parameters()).device)
    for p in model.parameters():
        ref = p.detach().clone()
        dist.broadcast(ref, src=0)
        worst = torch.maximum(worst, (p.detach() - ref).abs().max().double())
    dist.all_reduce(worst, op=dist.ReduceOp.MAX)
    return float(worst)
