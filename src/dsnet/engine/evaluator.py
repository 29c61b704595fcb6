"""Evaluation: confusion matrix over a dataset, sharded across ranks without duplicates."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from .config import EvalConfig
from .distributed import get_rank, get_world_size
from .inference import predict_logits
from .metrics import ConfusionMatrix, SegMetrics

__all__ = ["evaluate", "random_crop_pair"]

logger = logging.getLogger("dsnet")


def random_crop_pair(image: torch.Tensor, label: torch.Tensor, crop: tuple[int, int], seed: int, index: int):
    """The authors' ADE20K validation: one random crop per image, seeded here by ``(seed, index)``.

    The image is padded with 0 (mean colour) and the label with ignore to at least the crop.
    """
    ch, cw = crop
    h, w = label.shape[-2:]
    ph, pw = max(ch - h, 0), max(cw - w, 0)
    if ph or pw:
        image = torch.nn.functional.pad(image, (0, pw, 0, ph))
        label = torch.nn.functional.pad(label, (0, pw, 0, ph), value=255)
        h, w = label.shape[-2:]
    rng = np.random.default_rng([seed, index])
    y0 = int(rng.integers(0, h - ch + 1))
    x0 = int(rng.integers(0, w - cw + 1))
    return image[..., y0 : y0 + ch, x0 : x0 + cw], label[..., y0 : y0 + ch, x0 : x0 + cw]


def _collate_single(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = zip(*batch)
    return torch.stack(images), torch.stack(labels)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: Dataset,
    num_classes: int,
    cfg: EvalConfig,
    *,
    device: torch.device,
    ignore_index: int = 255,
    max_samples: int | None = None,
    seed: int = 0,
    progress: Callable[[Any], Any] | None = None,
) -> tuple[SegMetrics, ConfusionMatrix]:
    """Evaluate ``model`` on ``dataset``; under DDP every rank takes a disjoint shard and the
    confusion matrices are summed (so no sample is counted twice)."""
    was_training = model.training
    model.eval()
    n = len(dataset)  # type: ignore[arg-type]
    if max_samples is not None:
        n = min(n, max_samples)
    if cfg.random_crop is not None and cfg.batch_size != 1:
        raise ValueError("eval.random_crop (the authors' ADE20K protocol) needs eval.batch_size=1")
    rank, world = get_rank(), get_world_size()
    shard = list(range(rank, n, world))
    loader = DataLoader(
        Subset(dataset, shard),
        batch_size=cfg.batch_size,
        shuffle=False,
        num_workers=cfg.num_workers,
        collate_fn=_collate_single,
    )
    cm = ConfusionMatrix(num_classes, ignore_index=ignore_index, device=device)
    iterator = progress(loader) if progress is not None else loader
    for b, (image, label) in enumerate(iterator):
        image = image.to(device, non_blocking=True)
        label = label.to(device, non_blocking=True)
        if cfg.random_crop is not None:
            image, label = random_crop_pair(image, label, tuple(cfg.random_crop), seed, shard[b])
        scores = predict_logits(
            model,
            image,
            mode=cfg.mode,
            crop=cfg.crop_size,
            stride=cfg.stride,
            scales=cfg.scales,
            flip=cfg.flip,
        )
        if scores.shape[-2:] != label.shape[-2:]:  # image resized for inference (e.g. ADE20K short side)
            scores = torch.nn.functional.interpolate(
                scores, size=label.shape[-2:], mode="bilinear", align_corners=False
            )
        cm.update(scores.argmax(dim=1), label)
    cm.all_reduce()
    model.train(was_training)
    return cm.compute(), cm
