"""Learning-rate schedules, per iteration: the reference's poly decay (segmentation) and the cosine and
step schedules of ImageNet pre-training, each with an optional linear warm-up."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["poly_lr", "cosine_lr", "step_lr", "warmup_factor"]


def warmup_factor(iteration: int, warmup_iters: int, warmup_ratio: float) -> float:
    """Factor rising linearly from ``warmup_ratio`` at iteration 0 to 1 at ``warmup_iters`` (1 after it)."""
    if warmup_iters > 0 and iteration < warmup_iters:
        return warmup_ratio + (1 - warmup_ratio) * iteration / warmup_iters
    return 1.0


def _clamp(iteration: int, max_iters: int) -> int:
    if max_iters <= 0:
        raise ValueError(f"max_iters must be positive, got {max_iters}")
    return min(max(iteration, 0), max_iters)


def poly_lr(
    base_lr: float,
    iteration: int,
    max_iters: int,
    power: float = 0.9,
    warmup_iters: int = 0,
    warmup_ratio: float = 0.1,
) -> float:
    """LR at ``iteration`` (0-based): ``base_lr * (1 - it/max_iters) ** power``.

    During ``warmup_iters`` the poly value is scaled by a factor rising linearly from
    ``warmup_ratio`` to 1.
    """
    it = _clamp(iteration, max_iters)
    return base_lr * (1 - it / max_iters) ** power * warmup_factor(it, warmup_iters, warmup_ratio)


def cosine_lr(
    base_lr: float,
    iteration: int,
    max_iters: int,
    warmup_iters: int = 0,
    warmup_ratio: float = 0.0,
    min_ratio: float = 0.0,
) -> float:
    """Linear warm-up to ``base_lr``, then half a cosine down to ``min_ratio * base_lr`` at ``max_iters``."""
    it = _clamp(iteration, max_iters)
    if warmup_iters > 0 and it < warmup_iters:
        return base_lr * warmup_factor(it, warmup_iters, warmup_ratio)
    span = max(max_iters - warmup_iters, 1)
    progress = (it - warmup_iters) / span
    return base_lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def step_lr(
    base_lr: float,
    iteration: int,
    milestones: Sequence[int],
    gamma: float = 0.1,
    warmup_iters: int = 0,
    warmup_ratio: float = 0.0,
) -> float:
    """``base_lr * gamma ** (number of milestones reached)``, after a linear warm-up."""
    it = max(iteration, 0)
    drops = sum(1 for m in milestones if it >= m)
    return base_lr * gamma**drops * warmup_factor(it, warmup_iters, warmup_ratio)
