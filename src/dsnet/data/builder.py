"""The dataset registry: datasets by name, so configs and the CLI can name one without importing it."""

from __future__ import annotations

import inspect
from typing import Any

from ..errors import ConfigError, DSNetError
from .ade20k import ADE20KDataset
from .base import SegmentationDataset, Transform
from .bdd100k import BDD100KDataset
from .camvid import CamVidDataset
from .cityscapes import CityscapesDataset
from .folder import FolderDataset
from .io import PathLike
from .label_space import LabelSpace

__all__ = ["DATASETS", "DATASET_ALIASES", "build_dataset", "describe_dataset", "list_datasets"]

DATASETS: dict[str, type[SegmentationDataset]] = {
    "cityscapes": CityscapesDataset,
    "ade20k": ADE20KDataset,
    "bdd100k": BDD100KDataset,
    "camvid": CamVidDataset,
    "folder": FolderDataset,
}


#: Names of a registered dataset with constructor options that change its label space (the name its
#: :class:`LabelSpace` carries), so a label space can be asked for by that name alone.
DATASET_ALIASES: dict[str, tuple[str, dict[str, Any]]] = {
    "camvid-dsnet": ("camvid", {"class_order": "dsnet"}),
}


def list_datasets() -> list[str]:
    return sorted(DATASETS)


def describe_dataset(name: str, root: PathLike | None = None, **options: Any) -> LabelSpace | None:
    """The label space of a registered dataset (or alias) with these options, without listing its files.

    None where it cannot be known without ``root`` (a folder dataset's classes live in its YAML).
    An unknown name is a ConfigError naming the valid ones.
    """
    key = name.lower()
    if key in DATASET_ALIASES:
        key, preset = DATASET_ALIASES[key]
        options = {**preset, **options}
    if key not in DATASETS:
        valid = ", ".join(sorted([*DATASETS, *DATASET_ALIASES]))
        raise ConfigError(f"unknown dataset {name!r}; valid names: {valid}")
    try:
        return DATASETS[key].describe(root, **options)
    except ValueError as e:
        if isinstance(e, DSNetError):
            raise
        raise ConfigError(str(e)) from None


def build_dataset(
    name: str, root: PathLike, split: str | None = None, transform: Transform | None = None, **kwargs: Any
) -> SegmentationDataset:
    """Create a dataset by name ("cityscapes", "ade20k", "bdd100k", "camvid", "folder").

    ``split=None`` uses the dataset's default split. Other keyword arguments go to the dataset class
    (``seed``, ``on_bad_sample``, and its own options); an unknown one raises ``TypeError`` naming it.
    """
    key = name.lower()
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(list_datasets())}")
    cls = DATASETS[key]
    params = inspect.signature(cls.__init__).parameters
    allowed = [p for p in params if p not in ("self", "root", "split", "transform")]
    for k in kwargs:
        if k not in allowed:
            raise TypeError(f"{key}: unexpected keyword argument {k!r}; valid: {', '.join(allowed)}")
    if split is not None:
        kwargs["split"] = split
    return cls(root, transform=transform, **kwargs)
