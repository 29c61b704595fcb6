"""torchrun's environment, read in one place: which share of the work (:class:`Shard`) this process has.

``torchrun`` tells each process ``RANK`` (its place among all processes), ``WORLD_SIZE`` (how many there
are) and ``LOCAL_RANK`` (its place on this machine, i.e. its GPU). The command line, the engine's process
group and ``dsnet predict``'s split of the inputs all read them here, so they agree on what the values
mean and on the error a bad one gives. A leaf module: it imports nothing of dsnet but its errors.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple

from .errors import ConfigError

__all__ = ["Shard", "is_main_process", "local_rank_from_env", "restarted_by_torchrun", "shard_from_env"]


class Shard(NamedTuple):
    """Rank ``rank`` of ``world`` processes splitting one job (also a plain ``(rank, world)`` pair)."""

    rank: int = 0
    world: int = 1

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def describe(self) -> str:
        return f"rank {self.rank} of {self.world}"


def _environment(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def shard_from_env(env: Mapping[str, str] | None = None) -> Shard:
    """This process's shard from torchrun's ``RANK`` and ``WORLD_SIZE`` (one shard of one without them);
    ``env`` defaults to the process environment."""
    env = _environment(env)
    try:
        rank, world = int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ConfigError(f"RANK={env.get('RANK')!r}, WORLD_SIZE={env.get('WORLD_SIZE')!r}: not integers") from None
    if world < 1 or not 0 <= rank < world:
        raise ConfigError(f"RANK={rank}, WORLD_SIZE={world}: the rank must be in 0..WORLD_SIZE-1")
    return Shard(rank, world)


def local_rank_from_env(env: Mapping[str, str] | None = None) -> int:
    """torchrun's ``LOCAL_RANK``: this process's place on its machine (which GPU it takes); 0 without it."""
    value = _environment(env).get("LOCAL_RANK", "0")
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"LOCAL_RANK={value!r}: not an integer") from None


def is_main_process(env: Mapping[str, str] | None = None) -> bool:
    """Whether this process is rank 0 (or not under torchrun): the one that logs to files and tidies up.

    Never raises: it is asked on the way out of a failed command too, where a bad ``RANK`` has already
    been reported; a process whose rank cannot be read is not the main one.
    """
    return _environment(env).get("RANK", "0") == "0"


def restarted_by_torchrun(env: Mapping[str, str] | None = None) -> bool:
    """Whether torchrun restarted this job after a failure (``TORCHELASTIC_RESTART_COUNT`` above 0)."""
    return _environment(env).get("TORCHELASTIC_RESTART_COUNT", "0") not in ("", "0")
