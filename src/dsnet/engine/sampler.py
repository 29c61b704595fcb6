"""Resumable, rank-sharded batch order for iteration-based training.

The order depends only on ``(seed, epoch)``: every rank sees a disjoint shard of the same
permutation, and a run resumed at iteration ``k`` continues with exactly the batch an
uninterrupted run would have drawn, without loading the skipped samples.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from ..data import worker_init_fn

__all__ = ["ResumableBatchSampler", "resumable_train_loader"]


class ResumableBatchSampler:
    """Yields lists of ``(index, epoch)`` pairs forever (``drop_last`` semantics per epoch).

    Args:
        dataset_size: number of samples.
        batch_size: per-rank batch size.
        rank, world_size: this process's shard.
        seed: base seed of the permutation.
        start_iter: number of batches already consumed (resume).
        shuffle: permute every epoch (training) or keep the natural order.
    """

    def __init__(
        self,
        dataset_size: int,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        start_iter: int = 0,
        shuffle: bool = True,
    ) -> None:
        self.batches_per_epoch = dataset_size // (batch_size * world_size)
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"the training set has {dataset_size} samples, fewer than one global batch "
                f"({batch_size} per device x {world_size} devices)"
            )
        self.dataset_size = dataset_size
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.start_iter = start_iter
        self.shuffle = shuffle

    def epoch_of(self, iteration: int) -> int:
        return iteration // self.batches_per_epoch

    def _epoch_indices(self, epoch: int) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(self.dataset_size, generator=g).tolist()
        else:
            order = list(range(self.dataset_size))
        used = self.batches_per_epoch * self.batch_size * self.world_size
        return order[:used][self.rank :: self.world_size]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        it = self.start_iter
        while True:
            epoch, pos = divmod(it, self.batches_per_epoch)
            indices = self._epoch_indices(epoch)
            for b in range(pos, self.batches_per_epoch):
                chunk = indices[b * self.batch_size : (b + 1) * self.batch_size]
                yield [(i, epoch) for i in chunk]
                it += 1


def resumable_train_loader(
    dataset: Dataset,
    batch_size: int,
    num_workers: int,
    *,
    rank: int,
    world_size: int,
    seed: int,
    start_iter: int,
    pin_memory: bool,
) -> tuple[Iterator[Any], int]:
    """The endless training batches of one rank from batch ``start_iter`` on, and the batches per epoch.

    The dataset is indexed by ``(index, epoch)`` (augmentation seeded per sample); workers are
    persistent and set up by :func:`dsnet.data.worker_init_fn`.
    """
    sampler = ResumableBatchSampler(
        len(dataset),
        batch_size,
        rank=rank,
        world_size=world_size,
        seed=seed,
        start_iter=start_iter,  # type: ignore[arg-type]
    )
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        worker_init_fn=worker_init_fn if num_workers > 0 else None,
        persistent_workers=num_workers > 0,
        prefetch_factor=4 if num_workers > 0 else None,
    )
    return iter(loader), sampler.batches_per_epoch
