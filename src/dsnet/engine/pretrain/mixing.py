"""Mixup and CutMix on a batch, with soft targets; the randomness comes from the caller's generator."""

from __future__ import annotations

import math

import numpy as np
import torch.nn.functional as F
from torch import Tensor

__all__ = ["soft_targets", "mix_batch"]


def soft_targets(labels: Tensor, num_classes: int, smoothing: float = 0.0) -> Tensor:
    """One-hot ``labels`` smoothed: ``1 - s + s/C`` on the class, ``s/C`` elsewhere."""
    off = smoothing / num_classes
    return F.one_hot(labels, num_classes).float() * (1.0 - smoothing) + off


def mix_batch(
    images: Tensor,
    targets: Tensor,
    rng: np.random.Generator,
    mixup_alpha: float = 0.0,
    cutmix_alpha: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Mix each image with the batch's reverse (timm's pairing): mixup blends whole images, CutMix pastes a
    box; the soft targets are mixed by the share of pixels. With both alphas, one is picked per call."""
    if mixup_alpha <= 0 and cutmix_alpha <= 0:
        return images, targets
    use_cutmix = cutmix_alpha > 0 and (mixup_alpha <= 0 or rng.random() < 0.5)
    alpha = cutmix_alpha if use_cutmix else mixup_alpha
    lam = float(rng.beta(alpha, alpha))
    flipped = images.flip(0)
    if not use_cutmix:
        return images * lam + flipped * (1 - lam), targets * lam + targets.flip(0) * (1 - lam)
    h, w = images.shape[-2:]
    cut = math.sqrt(1 - lam)
    ch, cw = int(h * cut), int(w * cut)
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    mixed = images.clone()
    mixed[..., y0:y1, x0:x1] = flipped[..., y0:y1, x0:x1]
    lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    return mixed, targets * lam + targets.flip(0) * (1 - lam)
