"""Our weights in the authors' layout: the key order of their model and, optionally, the ``model.``
prefix of their ``FullModel`` training wrapper, so their ``train.py`` can resume or fine-tune from them."""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import torch
from torch import Tensor, nn

from ..fileio import atomic_write

__all__ = ["save_authors_checkpoint", "to_authors_state_dict"]


def to_authors_state_dict(model: nn.Module, *, full_model: bool = False) -> OrderedDict[str, Tensor]:
    """Our weights in the authors' key layout and order.

    ``full_model=True`` prefixes every key with ``model.`` as their ``FullModel`` training
    wrapper does (the form their resume/fine-tune code expects).
    """
    sd = model.state_dict()
    prefix = "model." if full_model else ""
    return OrderedDict((prefix + k, v.detach().cpu()) for k, v in sd.items())


def save_authors_checkpoint(model: nn.Module, path: str | os.PathLike, *, full_model: bool = True) -> Path:
    """Write ``{'state_dict': ...}`` in the authors' layout (loadable by their ``train.py``)."""
    path = Path(path)
    sd = to_authors_state_dict(model, full_model=full_model)
    atomic_write(path, lambda tmp: torch.save({"state_dict": sd}, tmp))
    return path
