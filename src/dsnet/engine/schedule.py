"""Learning-rate schedule: the reference's per-iteration poly decay, with optional linear warm-up."""

from __future__ import annotations

__all__ = ["poly_lr"]


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
    if max_iters <= 0:
        raise ValueError(f"max_iters must be positive, got {max_iters}")
    it = min(max(iteration, 0), max_iters)
    lr = base_lr * (1 - it / max_iters) ** power
    if warmup_iters > 0 and it < warmup_iters:
        lr *= warmup_ratio + (1 - warmup_ratio) * it / warmup_iters
    return lr
