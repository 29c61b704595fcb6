"""Whole-image, sliding-window, multi-scale and flip inference for any size of input.

Inputs are normalised image batches ``(N, 3, H, W)`` of any size: they are padded (with 0,
i.e. the mean colour after normalisation) to the model's multiple of 8 and the logits are
cropped back, so the output is always ``(N, C, H, W)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["predict_logits", "slide_logits", "whole_logits"]


def _multiple(model: nn.Module) -> int:
    return int(getattr(model, "input_multiple", 8))


def whole_logits(model: nn.Module, image: Tensor) -> Tensor:
    """One forward pass over the whole (padded) image; logits at the input size."""
    m = _multiple(model)
    h, w = image.shape[-2:]
    ph, pw = math.ceil(h / m) * m - h, math.ceil(w / m) * m - w
    x = F.pad(image, (0, pw, 0, ph)) if ph or pw else image
    out = model(x)
    if not isinstance(out, Tensor):  # a training-mode output tuple
        out = out[0]
    return out[..., :h, :w]


def slide_logits(model: nn.Module, image: Tensor, crop: Sequence[int], stride: Sequence[int]) -> Tensor:
    """Average the logits of overlapping ``crop`` windows placed every ``stride`` pixels."""
    ch, cw = int(crop[0]), int(crop[1])
    sh, sw = int(stride[0]), int(stride[1])
    if min(ch, cw, sh, sw) <= 0:
        raise ValueError(f"sliding window crop {tuple(crop)} and stride {tuple(stride)} must be positive")
    n, _, h, w = image.shape
    rows = max(math.ceil((h - ch) / sh), 0) + 1
    cols = max(math.ceil((w - cw) / sw), 0) + 1
    total: Tensor | None = None
    count = image.new_zeros((1, 1, h, w))
    for r in range(rows):
        for c in range(cols):
            y0 = min(r * sh, max(h - ch, 0))
            x0 = min(c * sw, max(w - cw, 0))
            y1, x1 = min(y0 + ch, h), min(x0 + cw, w)
            logits = whole_logits(model, image[:, :, y0:y1, x0:x1])
            if total is None:
                total = image.new_zeros((n, logits.shape[1], h, w))
            total[:, :, y0:y1, x0:x1] += logits
            count[:, :, y0:y1, x0:x1] += 1
    assert total is not None
    return total / count


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    image: Tensor,
    *,
    mode: str = "whole",
    crop: Sequence[int] | None = None,
    stride: Sequence[int] | None = None,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
) -> Tensor:
    """Class scores ``(N, C, H, W)`` for a normalised batch.

    With one scale and no flip these are the raw logits (the paper's single-scale protocol);
    with test-time augmentation they are the mean of the softmax probabilities over scales
    (bilinear resize of the input, result resized back) and horizontal flips.
    """
    if mode not in ("whole", "slide"):
        raise ValueError(f"inference mode must be 'whole' or 'slide', got {mode!r}")
    if mode == "slide" and crop is None:
        raise ValueError("sliding-window inference needs a crop size")
    if mode == "slide" and stride is None:
        stride = [max(1, int(c) * 2 // 3) for c in crop]  # type: ignore[union-attr]
    h, w = image.shape[-2:]
    views = [(s, f) for s in scales for f in ((False, True) if flip else (False,))]

    def run(x: Tensor) -> Tensor:
        if mode == "slide":
            return slide_logits(model, x, crop, stride)  # type: ignore[arg-type]
        return whole_logits(model, x)

    if len(views) == 1 and views[0][0] == 1.0:
        return run(image)
    acc: Tensor | None = None
    for scale, flipped in views:
        x = image
        if scale != 1.0:
            size = (max(8, round(h * scale)), max(8, round(w * scale)))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        if flipped:
            x = x.flip(-1)
        out = run(x)
        if flipped:
            out = out.flip(-1)
        if out.shape[-2:] != (h, w):
            out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
        prob = out.float().softmax(dim=1)
        acc = prob if acc is None else acc + prob
    assert acc is not None
    return acc / len(views)
