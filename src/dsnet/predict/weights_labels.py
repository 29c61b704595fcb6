"""The label space of a set of weights (what a prediction's ids mean), read from the weights' metadata.

The label space is the dataset's own description (:class:`dsnet.data.LabelSpace`), which training
writes whole into the weights' metadata (key ``label_space``, JSON; see :meth:`LabelSpace.to_json`).
Older weights that carry only ``dataset=<name>`` get that dataset's default description from the
dataset registry; a class count alone gets generated names and a generated palette. No dataset's
names or colours are kept here. Reading the metadata touches only the safetensors header, so the
tensors are read once, by the model loader.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open

from ..data.builder import DATASET_ALIASES, describe_dataset, list_datasets
from ..data.label_space import LABEL_SPACE_KEY, LabelSpace
from ..errors import CheckpointError, ConfigError, WeightsNotFoundError
from ..fileio import read_torch_file
from ..models import resolve_weights, weights_num_classes

__all__ = [
    "WeightsSource",
    "known_label_spaces",
    "label_space",
    "label_space_from_metadata",
    "read_weights_source",
]


def known_label_spaces() -> dict[str, LabelSpace]:
    """The default label spaces of the registered datasets (and aliases) that need no files to describe."""
    spaces = {name: describe_dataset(name) for name in [*list_datasets(), *DATASET_ALIASES]}
    return {name: space for name, space in spaces.items() if space is not None}


def _checked(space: LabelSpace, num_classes: int | None, what: str) -> LabelSpace:
    if num_classes is not None and num_classes != space.num_classes:
        raise ConfigError(f"{what} has {space.num_classes} classes, but the model has {num_classes}")
    return space


def label_space(dataset: str | LabelSpace | None, num_classes: int | None) -> LabelSpace:
    """The label space of ``dataset`` (a registered name or a description; checked against ``num_classes``),
    or a generated one where the dataset cannot describe itself without its files."""
    if isinstance(dataset, LabelSpace):
        return _checked(dataset, num_classes, f"label space {dataset.name!r}")
    space = describe_dataset(dataset) if dataset is not None else None
    if space is not None:
        return _checked(space, num_classes, f"dataset {dataset!r}")
    if num_classes is None:
        raise ConfigError(f"dataset {dataset!r}: class names are not built in; the number of classes is needed")
    return LabelSpace.generated(num_classes, dataset)


def label_space_from_metadata(
    metadata: Mapping[str, str], num_classes: int | None, source: str | os.PathLike
) -> LabelSpace | None:
    """The label space the weights' metadata describes (``label_space``, else ``dataset``), None if neither."""
    text = metadata.get(LABEL_SPACE_KEY)
    if text is not None:
        try:
            space = LabelSpace.from_json(text)
        except ValueError as e:
            raise CheckpointError(f"{source}: metadata {LABEL_SPACE_KEY}: {e}") from None
        return _checked(space, num_classes, f"{source}: the label space in the metadata")
    dataset = metadata.get("dataset") or None
    return label_space(dataset, num_classes) if dataset is not None else None


@dataclass(frozen=True)
class WeightsSource:
    """A checkpoint ready for :func:`dsnet.create_model`: the path (safetensors) or the state read once
    (torch files), the string metadata stored with it (empty for the authors' files), and its class
    count (metadata ``num_classes``, else the classifier's shape; None for encoder-only weights)."""

    weights: str | Path | Mapping[str, Any]
    metadata: dict[str, str]
    num_classes: int | None = None


def _meta_int(meta: Mapping[str, str], key: str, source: object) -> int | None:
    value = meta.get(key)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise CheckpointError(f"{source}: metadata {key}={value!r} is not an integer") from None


def _training_state_metadata(obj: Any) -> dict[str, str]:
    """What a resumable training state (``last.pth``) says of itself: its model and, from the config it saved,
    the dataset, so its predictions get the dataset's class names and colours, as its safetensors do."""
    if not isinstance(obj, Mapping) or not isinstance(obj.get("config"), Mapping):
        return {}
    meta: dict[str, str] = {}
    data = obj["config"].get("data")
    if isinstance(data, Mapping) and isinstance(data.get("dataset"), str):
        meta["dataset"] = data["dataset"]
    if isinstance(obj.get("model_name"), str):
        meta["model"] = obj["model_name"]
    return meta


def read_weights_source(path: str | os.PathLike) -> WeightsSource:
    """Metadata and class count of a checkpoint file without reading its tensors twice."""
    path = Path(resolve_weights(path))
    if not path.is_file():
        raise WeightsNotFoundError(f"{path}: weights file not found")
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as f:  # reads the header only
                meta = dict(f.metadata() or {})
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from e
        weights: str | Path | Mapping[str, Any] = path
    else:
        obj = read_torch_file(path, "weights file")
        stored = obj.get("meta") if isinstance(obj, Mapping) else None
        if isinstance(obj, Mapping) and isinstance(stored, Mapping):
            weights, meta = {k: v for k, v in obj.items() if k != "meta"}, {str(k): str(v) for k, v in stored.items()}
        else:
            weights, meta = obj, _training_state_metadata(obj)
    found = weights_num_classes(weights) if isinstance(weights, (Path, Mapping)) else None  # else: the loader says
    stated = _meta_int(meta, "num_classes", path)
    if found is not None and stated is not None and found != stated:
        raise CheckpointError(f"{path}: metadata num_classes={stated} but the classifier has {found} classes")
    return WeightsSource(weights, meta, found if found is not None else stated)
