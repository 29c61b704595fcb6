"""A training set made of one dataset and extra ones in its label space: more streets, cameras and light than
one dataset holds (CamVid has four streets), each extra relabelled by a class map and repeated to weigh it.

The mixture is itself a :class:`~dsnet.data.SegmentationDataset` in the first dataset's label space: one
transform, one ``(seed, epoch, index)`` stream per sample of the whole (so an extra's repeated copies are
augmented differently), class statistics over all of it, and the base class's skip mode and epochs.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import SegmentationDataset, Transform
from .class_maps import ClassMap, class_map_lut
from .io import PathLike
from .label_space import LabelSpace

__all__ = ["ExtraPart", "MixedDataset"]


@dataclass(frozen=True)
class ExtraPart:
    """An extra dataset (built without a transform), the class map into the main label space, and how many
    times its samples appear per epoch."""

    dataset: SegmentationDataset
    class_map: str | ClassMap | None = None
    repeat: int = 1


class MixedDataset(SegmentationDataset):
    """``main`` followed by each extra's samples ``repeat`` times, labels in ``main``'s training ids."""

    NAME = "mixture"

    def __init__(
        self,
        main: SegmentationDataset,
        extras: Sequence[ExtraPart],
        transform: Transform | None = None,
        seed: int = 0,
        on_bad_sample: str = "error",
    ) -> None:
        self.main = main
        self.parts: list[SegmentationDataset] = [main]
        self.luts: list[np.ndarray | None] = [None]
        where: list[tuple[int, int]] = [(0, i) for i in range(len(main))]
        for extra in extras:
            repeat = operator.index(extra.repeat)
            if repeat < 1:
                raise ValueError(f"{extra.dataset.NAME}: repeat must be >= 1, got {repeat}")
            try:
                lut = class_map_lut(extra.dataset.label_space, main.label_space, extra.class_map)
            except ValueError as e:
                raise ValueError(f"{extra.dataset.NAME} at {extra.dataset.root}: {e}") from None
            self.parts.append(extra.dataset)
            self.luts.append(lut)
            where += [(len(self.parts) - 1, i) for _ in range(repeat) for i in range(len(extra.dataset))]
        self._where = where
        self._owner: dict[Path, int] = {}  # label file -> part, for the class statistics (read by path)
        for part, local in where:
            label = self.parts[part].samples[local][1]
            if self._owner.setdefault(label, part) != part:
                raise ValueError(f"{label}: in two parts of the mixture (a dataset given twice?)")
        super().__init__(main.root, main.split, transform, seed, on_bad_sample)

    # ---- the base class's file rules, answered by the parts
    def open_root(self, root: Path) -> Path:
        return root

    def check_split(self, split: str | None) -> str | None:
        return split

    def list_samples(self, on_bad_sample: str) -> tuple[list[tuple[Path, Path]], PathLike]:
        return [self.parts[part].samples[local] for part, local in self._where], self.main.root

    def own_label_space(self) -> LabelSpace:
        return self.main.label_space

    def read_label(self, path: Path) -> np.ndarray:
        return self.parts[self._owner[path]].read_label(path)

    def decode_label(self, raw: np.ndarray, path: Path) -> np.ndarray:
        part = self._owner[path]
        label = self.parts[part].decode_label(raw, path)
        lut = self.luts[part]
        return label if lut is None else lut[label]

    def load_pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        part, local = self._where[index]
        image, label = self.parts[part].load_pair(local)
        lut = self.luts[part]
        return image, (label if lut is None else lut[label])

    def counts(self) -> dict[str, int]:
        """Samples per part per epoch (repeats counted), by dataset name and split: what a log line reports."""
        out: dict[str, int] = {}
        for part, _ in self._where:
            ds = self.parts[part]
            key = f"{ds.NAME}:{ds.split}" if ds.split is not None else ds.NAME
            out[key] = out.get(key, 0) + 1
        return out
