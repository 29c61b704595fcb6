"""Top-1 / top-5 accuracy of a classifier on a dataset, on one device or sharded over DDP ranks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from ...data import worker_init_fn
from ..observe import progress_bar

__all__ = ["ClsMetrics", "evaluate_classifier", "topk_correct"]


@dataclass
class ClsMetrics:
    top1: float
    top5: float
    loss: float  # mean cross-entropy (no smoothing)
    num_images: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> list[int]:
    """How many rows have their label among the ``k`` largest logits, for each ``k``."""
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices
    hits = top == labels[:, None]
    return [int(hits[:, : min(k, kmax)].any(dim=1).sum()) for k in ks]


@torch.no_grad()
def evaluate_classifier(
    model: nn.Module,
    dataset: Dataset,
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 100,
    num_workers: int = 0,
    max_samples: int | None = None,
    channels_last: bool = False,
    progress: str | bool = False,
    should_stop: Callable[[], bool] | None = None,
) -> ClsMetrics | None:
    """Every image counted once: under DDP rank ``r`` takes images ``r, r + world, ...`` and the counts are
    summed. Returns None when ``should_stop`` asked to abandon the evaluation."""
    device = torch.device(device)
    n = len(dataset) if max_samples is None else min(max_samples, len(dataset))  # type: ignore[arg-type]
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    shard = Subset(dataset, range(rank, n, world))
    loader = DataLoader(
        shard,
        batch_size=batch_size,
        num_workers=num_workers,
        worker_init_fn=worker_init_fn if num_workers > 0 else None,
        pin_memory=device.type == "cuda",
    )
    was_training = model.training
    model.eval()
    totals = torch.zeros(4, dtype=torch.float64, device=device)  # top1, top5, loss sum, images
    try:
        for images, labels in progress_bar(loader, str(progress or "eval"), enabled=bool(progress)):
            if should_stop is not None and should_stop():
                return None
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            logits = model(images).float()
            c1, c5 = topk_correct(logits, labels)
            loss = F.cross_entropy(logits, labels, reduction="sum")
            totals += torch.tensor([c1, c5, float(loss), len(labels)], dtype=torch.float64, device=device)
    finally:
        model.train(was_training)
    if world > 1:
        dist.all_reduce(totals)
    count = max(int(totals[3]), 1)
    return ClsMetrics(float(totals[0]) / count, float(totals[1]) / count, float(totals[2]) / count, int(totals[3]))
