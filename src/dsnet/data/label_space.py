"""A dataset's label space: what each training id means (name, colour) and which id the dataset itself
uses for it, with its ignore values and class order.

Each dataset module builds its own :class:`LabelSpace`; training writes it whole into the weights'
metadata (key :data:`LABEL_SPACE_KEY`, JSON) and inference reads it back from there, so the weights
alone say how to name, colour and re-number a prediction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from ..constants import IGNORE_INDEX
from ..errors import ConfigError
from .labels import Color, generate_palette

__all__ = ["LABEL_SPACE_KEY", "LABEL_SPACE_VERSION", "LabelSpace"]


#: The key of the safetensors metadata that holds a :class:`LabelSpace` as JSON (see :meth:`LabelSpace.to_json`).
LABEL_SPACE_KEY = "label_space"
#: Version of the JSON layout written by :meth:`LabelSpace.to_json`.
LABEL_SPACE_VERSION = 1


@dataclass(frozen=True)
class LabelSpace:
    """A dataset's label space: what each training id means, and which id the dataset itself uses for it.

    The one source of class names, colours and ids: each dataset module builds its own (with
    :meth:`SegmentationDataset.describe`), training writes it whole into the weights' metadata
    (:meth:`to_metadata`), and inference reads it back from there (:meth:`from_json`).

    - ``classes`` / ``palette``: name and RGB colour of training ids ``0..num_classes-1``.
    - ``ignore_index``: value of ignored pixels in the training labels (what loss and metrics skip).
    - ``dataset_ids``: ``dataset_ids[train_id]`` is the id the dataset's own files use (Cityscapes
      labelIds, ADE20K 1..150, CamVid SegNet ids); None where there are no ids beyond the training ids.
    - ``dataset_ignore_id``: the dataset's own id of ignored pixels (CamVid's void 11, ADE20K's 0);
      None keeps ``ignore_index``.
    - ``class_order``: which of the dataset's orders the training ids follow, where it has several.
    """

    name: str
    classes: tuple[str, ...]
    palette: tuple[Color, ...]
    ignore_index: int = IGNORE_INDEX
    dataset_ids: tuple[int, ...] | None = None
    dataset_ignore_id: int | None = None
    class_order: str | None = None

    def __post_init__(self) -> None:
        n = len(self.classes)
        if not n:
            raise ValueError(f"{self.name}: no classes")
        if len(self.palette) != n:
            raise ValueError(f"{self.name}: {n} classes but {len(self.palette)} palette colours")
        if self.dataset_ids is not None and len(self.dataset_ids) != n:
            raise ValueError(f"{self.name}: {n} classes but {len(self.dataset_ids)} dataset ids")
        if not n <= self.ignore_index <= 255:
            raise ValueError(f"{self.name}: ignore_index {self.ignore_index} is not in {n}..255")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_dataset_ids(self, label: np.ndarray) -> np.ndarray:
        """Train ids (uint8) -> the dataset's own ids; ignored pixels get ``dataset_ignore_id`` (or stay)."""
        if self.dataset_ids is None:
            raise ConfigError(f"dataset {self.name!r}: no dataset label ids are known beyond the training ids")
        ignore = self.ignore_index if self.dataset_ignore_id is None else self.dataset_ignore_id
        lut = np.full(256, ignore, np.uint8)
        lut[: self.num_classes] = self.dataset_ids
        return lut[np.asarray(label, np.uint8)]

    # ---- serialisation (the weights' metadata)
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types, with a layout version."""
        out: dict[str, Any] = {"version": LABEL_SPACE_VERSION}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "palette":
                value = [list(c) for c in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)

    def to_metadata(self) -> dict[str, str]:
        """The string metadata that carries this description in a weights file (``dataset``: its name, for
        readers that know only that key)."""
        return {LABEL_SPACE_KEY: self.to_json(), "num_classes": str(self.num_classes), "dataset": self.name}

    @classmethod
    def from_dict(cls, data: Any) -> LabelSpace:
        """Inverse of :meth:`to_dict`; a ValueError names the first bad field."""
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        version = data.get("version", LABEL_SPACE_VERSION)
        if version != LABEL_SPACE_VERSION:
            raise ValueError(f"version {version!r} is not supported (this dsnet reads version {LABEL_SPACE_VERSION})")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known - {"version"})
        if unknown:
            raise ValueError(f"unknown fields {unknown}")
        for key in ("name", "classes", "palette"):
            if key not in data:
                raise ValueError(f"missing field {key!r}")
        name, classes, palette = data["name"], data["classes"], data["palette"]
        if not isinstance(name, str):
            raise ValueError(f"name: expected a string, got {name!r}")
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise ValueError("classes: expected a list of strings")
        if not isinstance(palette, list) or not all(_is_color(c) for c in palette):
            raise ValueError("palette: expected a list of [r, g, b] with integers 0..255")
        ids = data.get("dataset_ids")
        if ids is not None and (not isinstance(ids, list) or not all(_is_byte(v) for v in ids)):
            raise ValueError("dataset_ids: expected a list of integers 0..255 or null")
        for key in ("ignore_index", "dataset_ignore_id"):
            if key in data and not (_is_byte(data[key]) or (key == "dataset_ignore_id" and data[key] is None)):
                raise ValueError(f"{key}: expected an integer 0..255, got {data[key]!r}")
        order = data.get("class_order")
        if order is not None and not isinstance(order, str):
            raise ValueError(f"class_order: expected a string or null, got {order!r}")
        return cls(
            name,
            tuple(classes),
            tuple((c[0], c[1], c[2]) for c in palette),
            ignore_index=data.get("ignore_index", IGNORE_INDEX),
            dataset_ids=None if ids is None else tuple(ids),
            dataset_ignore_id=data.get("dataset_ignore_id"),
            class_order=order,
        )

    @classmethod
    def from_json(cls, text: str) -> LabelSpace:
        """Inverse of :meth:`to_json`; a ValueError says what is wrong."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"not valid JSON ({e})") from None
        return cls.from_dict(data)

    @classmethod
    def generated(cls, num_classes: int, name: str | None = None) -> LabelSpace:
        """Names ``class_k`` and a generated palette, for weights that carry only a class count."""
        if not 1 <= num_classes <= 255:
            raise ConfigError(f"num_classes must be in 1..255 for label images, got {num_classes}")
        return cls(name or "unnamed", generated_names(num_classes), generate_palette(num_classes))

    @property
    def names_generated(self) -> bool:
        """Whether the class names are :meth:`generated` ones (the weights named no dataset)."""
        return self.classes == generated_names(self.num_classes)


def generated_names(num_classes: int) -> tuple[str, ...]:
    """``class_0 .. class_{n-1}``: the names of a label space known only by its class count."""
    return tuple(f"class_{k}" for k in range(num_classes))


def _is_byte(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255


def _is_color(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 3 and all(_is_byte(v) for v in value)
