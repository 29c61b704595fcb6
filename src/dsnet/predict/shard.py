"""``dsnet predict`` over many processes and machines: disjoint, deterministic shards of the inputs.

Under ``torchrun`` (``RANK`` and ``WORLD_SIZE`` in the environment), rank r of N takes every N-th input
of the list sorted by output name, so every output is written by exactly one process, whatever order the
file system lists the inputs in, and the same command on every node agrees on the split without talking.
The processes meet twice over gloo: after each has checked the output folder (so none sees another's
first outputs as "an earlier run"), and at the end. ``resume`` leaves out inputs whose outputs are all
there already (they are written whole or not at all), so a killed job continues where it stopped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch.distributed as dist

from ..errors import ConfigError
from .sources import InputFile

__all__ = ["Shard", "shard_from_env", "shard_group", "take_shard"]


@dataclass(frozen=True)
class Shard:
    rank: int = 0
    world: int = 1

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def describe(self) -> str:
        return f"rank {self.rank} of {self.world}"


def shard_from_env(env: dict[str, str] | None = None) -> Shard:
    """This process's shard from torchrun's ``RANK`` and ``WORLD_SIZE`` (one shard of one without them)."""
    env = dict(os.environ) if env is None else env
    try:
        rank, world = int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ConfigError(f"RANK={env.get('RANK')!r}, WORLD_SIZE={env.get('WORLD_SIZE')!r}: not integers") from None
    if world < 1 or not 0 <= rank < world:
        raise ConfigError(f"RANK={rank}, WORLD_SIZE={world}: the rank must be in 0..WORLD_SIZE-1")
    return Shard(rank, world)


def take_shard(inputs: Sequence[InputFile], shard: Shard) -> list[InputFile]:
    """This shard's inputs: every ``world``-th of the inputs sorted by output name, from ``rank``."""
    ordered = sorted(inputs, key=lambda item: item.rel.as_posix())
    return ordered[shard.rank :: shard.world]


@contextmanager
def shard_group(shard: Shard, timeout_s: float = 1800.0) -> Iterator[Callable[[], None]]:
    """A gloo group of the shards for the run (nothing for one process); yields ``barrier()``."""
    if not shard.distributed:
        yield lambda: None
        return
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group("gloo", timeout=timedelta(seconds=timeout_s))
    try:
        yield dist.barrier
    finally:
        if owned:
            dist.destroy_process_group()
