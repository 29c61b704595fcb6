"""Writing our weights: safetensors (or a weights-only torch file) with string metadata, including the
label space the model was trained on, so the file alone says how to name and colour its classes."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from ..errors import ConfigError
from ..fileio import atomic_write
from .weights_reading import checkpoint_num_classes, normalize_state_dict

__all__ = ["LabelSpaceLike", "save_weights"]


class LabelSpaceLike(Protocol):
    """What :func:`save_weights` needs of a label space (:class:`dsnet.data.LabelSpace` is one)."""

    @property
    def num_classes(self) -> int: ...

    def to_metadata(self) -> dict[str, str]: ...


def _with_label_space(
    meta: dict[str, str], label_space: LabelSpaceLike, sd: Mapping[str, Tensor], path: Path
) -> dict[str, str]:
    """``meta`` plus the label space's description; a class count that contradicts the classifier's or
    the metadata's is a ConfigError. A ``dataset`` named in ``meta`` wins over the label space's name."""
    described = dict(label_space.to_metadata())
    n = label_space.num_classes
    found = checkpoint_num_classes(normalize_state_dict(sd, str(path)))
    if found is not None and found != n:
        raise ConfigError(f"{path}: the label space has {n} classes but the model's classifier {found}")
    if meta.get("num_classes", str(n)) != str(n):
        raise ConfigError(f"{path}: metadata num_classes={meta['num_classes']} but the label space has {n} classes")
    dataset = meta.get("dataset", described.get("dataset"))
    return {**meta, **described, **({"dataset": dataset} if dataset else {})}


def save_weights(
    model: nn.Module | Mapping[str, Tensor],
    path: str | os.PathLike,
    metadata: Mapping[str, str] | None = None,
    *,
    label_space: LabelSpaceLike | None = None,
) -> Path:
    """Write weights atomically: safetensors for ``*.safetensors``, else a weights-only torch file.

    ``metadata`` (string pairs) is stored in the safetensors header or as ``{'meta': ...}`` beside
    ``{'state_dict': ...}`` in a torch file. ``label_space`` (a dataset's
    :class:`~dsnet.data.LabelSpace`) adds its description (keys ``label_space``, ``num_classes``,
    and ``dataset`` unless ``metadata`` names one), so inference names and colours the classes as
    the dataset does; a class count that contradicts the classifier's is a ConfigError.
    """
    path = Path(path)
    sd = model.state_dict() if isinstance(model, nn.Module) else dict(model)
    sd = OrderedDict((k, v.detach().cpu().contiguous()) for k, v in sd.items())
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    if label_space is not None:
        meta = _with_label_space(meta, label_space, sd, path)
    if path.suffix == ".safetensors":
        atomic_write(path, lambda tmp: save_file(sd, tmp, metadata=meta))
    else:
        atomic_write(path, lambda tmp: torch.save({"state_dict": sd, "meta": meta}, tmp))
    return path
