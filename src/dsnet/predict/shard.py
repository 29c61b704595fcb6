"""``dsnet predict`` over many processes and machines: disjoint, deterministic shards of the inputs.

Under ``torchrun`` (``RANK`` and ``WORLD_SIZE`` in the environment, read by :mod:`dsnet.torchrun`), rank r
of N takes every N-th input of the list sorted by output name, so every output is written by exactly one
process, whatever order the file system lists the inputs in, and the same command on every node agrees
on the split without talking. The processes meet twice over gloo: after each has checked the output
folder (so none sees another's first outputs as "an earlier run"), and at the end
(:func:`sharded_output_dir`). ``resume`` leaves out inputs whose outputs are all there already
(:mod:`dsnet.predict.resume`), so a killed job continues where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import torch.distributed as dist

from ..fileio import LOCK_FILE, check_output_dir
from ..torchrun import Shard, shard_from_env
from .sources import InputFile
from .writers import locked_output_dir, rank_lock_name

__all__ = ["Shard", "shard_from_env", "shard_group", "shard_lock_name", "sharded_output_dir", "take_shard"]


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


def shard_lock_name(shard: Shard) -> str:
    """The lock file a shard holds in the output folder: the plain one for a single process, one per rank
    for a torchrun job (whose ranks share the folder, while a plain run and a job refuse each other)."""
    return rank_lock_name(shard.rank) if shard.distributed else LOCK_FILE


@contextmanager
def sharded_output_dir(out_dir: str | Path, shard: Shard, overwrite: bool, timeout_s: float = 1800.0) -> Iterator[Path]:
    """Hold ``out_dir`` for this shard while the block writes into it, and yield it.

    Joins the shards' group, takes this shard's lock and checks the folder (one that holds files is
    refused unless ``overwrite``), all before any work; then waits until every shard has checked it, so
    none takes another's first outputs for an earlier run's. A block that ends normally waits for every
    shard to finish too; one that raises does not wait (the group is torn down instead).
    """
    with shard_group(shard, timeout_s) as barrier, locked_output_dir(out_dir, shard_lock_name(shard)):
        checked = check_output_dir(out_dir, overwrite)
        barrier()
        yield checked
        barrier()
