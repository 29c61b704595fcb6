"""What a prediction's ids mean: class names, colours and the dataset's own label ids.

Taken from the weights' metadata (``dataset``, ``num_classes``, ``model``, written by training and
:func:`dsnet.save_weights`) or from a dataset name; a class count alone gets generated names and a
generated palette. Reading the metadata touches only the safetensors header, so the tensors are
read once, by the model loader.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open

from ..constants import IGNORE_INDEX
from ..data.ade20k import ADE20K_CLASSES, ADE20K_PALETTE
from ..data.builder import DATASETS
from ..data.camvid import CAMVID_CLASSES, CAMVID_DSNET_ORDER, CAMVID_PALETTE
from ..data.cityscapes import CITYSCAPES_CLASSES, CITYSCAPES_LABEL_TO_TRAIN, CITYSCAPES_PALETTE
from ..data.labels import Color, generate_palette
from ..errors import CheckpointError, ConfigError
from ..fileio import read_torch_file

__all__ = ["LabelSpace", "WeightsSource", "label_space", "known_label_spaces", "read_weights_source"]


@dataclass(frozen=True)
class LabelSpace:
    """Class names and colours of the training ids ``0..num_classes-1``; ``dataset_ids[train_id]`` is the
    id the dataset itself uses (what benchmark servers want), or None where it has no other ids."""

    name: str | None
    classes: tuple[str, ...]
    palette: tuple[Color, ...]
    dataset_ids: np.ndarray | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_dataset_ids(self, label: np.ndarray) -> np.ndarray:
        """Train ids (uint8) -> the dataset's own ids; ignored pixels stay 255."""
        if self.dataset_ids is None:
            raise ConfigError(f"dataset {self.name!r}: no dataset label ids are known beyond the training ids")
        return self.dataset_ids[np.asarray(label, np.uint8)]


def _lut(train_to_dataset: Mapping[int, int]) -> np.ndarray:
    lut = np.full(256, IGNORE_INDEX, np.uint8)
    for train_id, dataset_id in train_to_dataset.items():
        lut[train_id] = dataset_id
    return lut


def known_label_spaces() -> dict[str, LabelSpace]:
    """The label spaces of the built-in datasets, by the names configs use (``data.dataset``)."""
    cityscapes_ids = _lut({t: raw for raw, t in CITYSCAPES_LABEL_TO_TRAIN.items()})
    order = CAMVID_DSNET_ORDER
    return {
        "cityscapes": LabelSpace("cityscapes", CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, cityscapes_ids),
        "bdd100k": LabelSpace("bdd100k", CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, _lut({k: k for k in range(19)})),
        # ADE20K files hold 1..150 (0 = other): reduce-zero-label undone
        "ade20k": LabelSpace("ade20k", ADE20K_CLASSES, ADE20K_PALETTE, _lut({k: k + 1 for k in range(150)})),
        "camvid": LabelSpace("camvid", CAMVID_CLASSES, CAMVID_PALETTE, _lut({k: k for k in range(11)})),
        # the DSNet/PIDNet alphabetical order; the dataset ids are SegNet's
        "camvid-dsnet": LabelSpace(
            "camvid-dsnet",
            tuple(CAMVID_CLASSES[k] for k in order),
            tuple(CAMVID_PALETTE[k] for k in order),
            _lut(dict(enumerate(order))),
        ),
    }


def label_space(dataset: str | None, num_classes: int | None) -> LabelSpace:
    """The label space of ``dataset`` (checked against ``num_classes``), or a generated one."""
    known = known_label_spaces()
    if dataset is not None and dataset.lower() in known:
        space = known[dataset.lower()]
        if num_classes is not None and num_classes != space.num_classes:
            raise ConfigError(f"dataset {dataset!r} has {space.num_classes} classes, but the model has {num_classes}")
        return space
    if dataset is not None and dataset.lower() not in DATASETS:
        valid = ", ".join(sorted(known))
        raise ConfigError(f"unknown dataset {dataset!r} for class names; known: {valid} (or give only num_classes)")
    if num_classes is None:
        raise ConfigError(f"dataset {dataset!r}: class names are not built in; the number of classes is needed")
    if not 1 <= num_classes <= 255:
        raise ConfigError(f"num_classes must be in 1..255 for label images, got {num_classes}")
    classes = tuple(f"class_{k}" for k in range(num_classes))
    return LabelSpace(dataset, classes, generate_palette(num_classes))


@dataclass(frozen=True)
class WeightsSource:
    """A checkpoint ready for :func:`dsnet.create_model`: the path (safetensors) or the state read once
    (torch files), and the string metadata stored with it (empty for the authors' files)."""

    weights: str | Path | Mapping[str, Any]
    metadata: dict[str, str]


def read_weights_source(path: str | os.PathLike) -> WeightsSource:
    """Metadata of a checkpoint file without reading its tensors twice."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found")
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as f:  # reads the header only
                meta = dict(f.metadata() or {})
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from e
        return WeightsSource(path, meta)
    obj = read_torch_file(path, "weights file")
    meta = obj.get("meta") if isinstance(obj, Mapping) else None
    if isinstance(obj, Mapping) and isinstance(meta, Mapping):
        state = {k: v for k, v in obj.items() if k != "meta"}
        return WeightsSource(state, {str(k): str(v) for k, v in meta.items()})
    return WeightsSource(obj, {})
