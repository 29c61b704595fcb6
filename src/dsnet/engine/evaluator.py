"""Evaluation: the confusion matrix of a model over a dataset, sharded across ranks without duplicates.

Bad samples (with ``data.on_bad_sample=skip``) are dropped and reported, never replaced by a
neighbour, so every good image counts exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from ..constants import IGNORE_INDEX, round_up
from ..data import worker_init_fn
from ..errors import DataError
from ..inference import InferenceOptions, argmax_channels, predict_probs
from ..torchrun import Shard
from .config import Config, inference_options
from .distributed import get_rank, get_world_size
from .metrics import ConfusionMatrix, SegMetrics
from .observe import progress_bar

__all__ = ["evaluate", "evaluate_with_config", "EvaluationInterrupted", "random_crop_pair"]

logger = logging.getLogger("dsnet")


class EvaluationInterrupted(Exception):
    """``should_stop`` returned True: the evaluation was abandoned (nothing is returned)."""


def random_crop_pair(
    image: Tensor, label: Tensor, crop: tuple[int, int], seed: int, index: int
) -> tuple[Tensor, Tensor]:
    """The authors' ADE20K validation: one random crop per image, seeded here by ``(seed, index)``.

    The image is padded with 0 (mean colour) and the label with ignore to at least the crop.
    """
    ch, cw = crop
    h, w = label.shape[-2:]
    ph, pw = max(ch - h, 0), max(cw - w, 0)
    if ph or pw:
        image = torch.nn.functional.pad(image, (0, pw, 0, ph))
        label = torch.nn.functional.pad(label, (0, pw, 0, ph), value=IGNORE_INDEX)
        h, w = label.shape[-2:]
    rng = np.random.default_rng([seed, index])
    y0 = int(rng.integers(0, h - ch + 1))
    x0 = int(rng.integers(0, w - cw + 1))
    return image[..., y0 : y0 + ch, x0 : x0 + cw], label[..., y0 : y0 + ch, x0 : x0 + cw]


class _ShardSamples(Dataset):
    """This rank's share of the samples (every ``world``-th from its rank); a bad sample becomes
    ``(index, message)`` instead of data when skipping."""

    def __init__(self, dataset: Any, indices: list[int]) -> None:
        self.dataset = dataset
        self.indices = indices
        self.skip_bad = getattr(dataset, "on_bad_sample", "error") == "skip"

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[int, Any]:
        index = self.indices[i]
        if not self.skip_bad:
            return index, self.dataset[index]
        try:
            return index, self.dataset.load_sample(index)
        except DataError as e:
            return index, str(e)


def _collate(batch: list[tuple[int, Any]]) -> tuple[list[int], Tensor | None, Tensor | None, list[str]]:
    good = [(i, s) for i, s in batch if not isinstance(s, str)]
    bad = [s for _, s in batch if isinstance(s, str)]
    if not good:
        return [], None, None, bad
    samples = [sample for _, sample in good]
    images = torch.stack([image for image, _ in samples])
    labels = torch.stack([label for _, label in samples])
    return [i for i, _ in good], images, labels, bad


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: Any,
    *,
    options: InferenceOptions | None = None,
    num_classes: int | None = None,
    ignore_index: int | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 1,
    num_workers: int = 0,
    max_samples: int | None = None,
    random_crop: tuple[int, int] | None = None,
    seed: int = 0,
    progress: bool | str = False,
    should_stop: Callable[[], bool] | None = None,
) -> SegMetrics:
    """Evaluate ``model`` on ``dataset`` (pairs of normalised image, label); returns the metrics,
    which carry the confusion matrix, the number of images and the skipped bad samples.

    Under DDP every rank takes a disjoint shard and the counts are summed. ``should_stop`` is
    called once per batch (the same number of times on every rank); when it returns True the
    evaluation stops with :class:`EvaluationInterrupted`. ``progress`` shows a bar (a string
    is its label).
    """
    device = torch.device(device)
    num_classes = num_classes or dataset.num_classes
    if ignore_index is None:
        ignore_index = int(getattr(getattr(dataset, "label_space", None), "ignore_index", IGNORE_INDEX))
    if random_crop is not None and batch_size != 1:
        raise ValueError("eval.random_crop (the authors' ADE20K protocol) needs eval.batch_size=1")
    was_training = model.training
    model.eval()
    n = len(dataset) if max_samples is None else min(len(dataset), max_samples)
    shard = Shard(get_rank(), get_world_size())
    loader = DataLoader(
        _ShardSamples(dataset, list(range(shard.rank, n, shard.world))),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_collate,
        worker_init_fn=worker_init_fn if num_workers > 0 else None,
    )
    # every rank calls should_stop (a collective under DDP) equally often
    steps = round_up(round_up(n, shard.world) // shard.world, batch_size) // batch_size
    cm = ConfusionMatrix(num_classes, ignore_index=ignore_index, device=device)
    try:
        images, skipped = _accumulate(
            model, loader, cm, device, options, random_crop, seed, progress, should_stop, steps
        )
    finally:
        model.train(was_training)
    return _summed_metrics(cm, images, skipped, shard.world)


def _accumulate(
    model: nn.Module,
    loader: DataLoader,
    cm: ConfusionMatrix,
    device: torch.device,
    options: InferenceOptions | None,
    random_crop: tuple[int, int] | None,
    seed: int,
    progress: bool | str,
    should_stop: Callable[[], bool] | None,
    steps: int,
) -> tuple[int, list[str]]:
    """Add this rank's predictions to ``cm``; the number of images counted and the bad samples' messages.

    ``should_stop`` is called ``steps`` times whatever the shard's length (the same on every rank)."""
    images, skipped = 0, []
    label = progress if isinstance(progress, str) else "eval"
    done = 0
    for indices, image, target, bad in progress_bar(loader, label, enabled=bool(progress), leave=False):
        if should_stop is not None and should_stop():
            raise EvaluationInterrupted(f"evaluation stopped after {images} images")
        done += 1
        for message in bad:
            logger.warning("dropping bad sample from the evaluation: %s", message)
        skipped += bad
        if image is None or target is None:
            continue
        image = image.to(device, non_blocking=True)
        target = target.to(device, non_blocking=True)
        if random_crop is not None:
            image, target = random_crop_pair(image, target, tuple(random_crop), seed, indices[0])
        probs = predict_probs(model, image, options)
        if probs.shape[-2:] != target.shape[-2:]:  # input resized for inference (ADE20K short side)
            probs = torch.nn.functional.interpolate(probs, size=target.shape[-2:], mode="bilinear", align_corners=False)
        cm.update(argmax_channels(probs), target)
        images += len(indices)
    if should_stop is not None:
        for _ in range(done, steps):
            if should_stop():
                raise EvaluationInterrupted(f"evaluation stopped after {images} images")
    return images, skipped


def _summed_metrics(cm: ConfusionMatrix, images: int, skipped: list[str], world: int) -> SegMetrics:
    """The metrics of every rank's counts together."""
    cm.all_reduce()
    counts = torch.tensor([images, len(skipped)], dtype=torch.int64, device=cm.device)
    if world > 1:
        dist.all_reduce(counts)
    metrics = cm.compute()
    metrics.num_images = int(counts[0])
    metrics.num_skipped = int(counts[1])
    metrics.skipped = skipped
    return metrics


def evaluate_with_config(
    model: nn.Module,
    dataset: Any,
    cfg: Config,
    *,
    device: torch.device | str = "cpu",
    progress: bool | str = False,
    should_stop: Callable[[], bool] | None = None,
) -> SegMetrics:
    """:func:`evaluate` with the settings of a config's ``eval`` and ``train`` sections."""
    e = cfg.eval
    return evaluate(
        model,
        dataset,
        options=inference_options(cfg),
        num_classes=cfg.model.num_classes,
        device=device,
        batch_size=e.batch_size,
        num_workers=e.num_workers,
        max_samples=cfg.train.max_val_samples,
        random_crop=tuple(e.random_crop) if e.random_crop else None,  # type: ignore[arg-type]
        seed=cfg.train.seed,
        progress=progress,
        should_stop=should_stop,
    )
