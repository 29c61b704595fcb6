"""The one check that label (or prediction) values lie in ``[0, num_classes)`` or are the ignore index."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["check_label_values"]


def check_label_values(values: Tensor, num_classes: int, ignore_index: int | None = 255, name: str = "label") -> None:
    """Raise ``ValueError`` naming the offending values; one min/max reduction when all is well."""
    if values.numel() == 0:
        return
    if ignore_index is not None:
        values = values[values != ignore_index]
        if values.numel() == 0:
            return
    lo, hi = torch.stack([values.min(), values.max()]).tolist()
    if lo < 0 or hi >= num_classes:
        bad = torch.unique(values[(values < 0) | (values >= num_classes)]).tolist()
        shown = bad[:20]
        more = f" (and {len(bad) - len(shown)} more)" if len(bad) > len(shown) else ""
        allowed = f"[0, {num_classes})" + (
            "" if ignore_index is None else f" and are not the ignore index {ignore_index}"
        )
        raise ValueError(f"{name} values {shown}{more} are outside {allowed}")
