"""BDD100K "10k" semantic segmentation: the Cityscapes label space, index masks or colour maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..constants import IGNORE_INDEX
from .base import FolderSpec, SegmentationDataset, Transform
from .cityscapes import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE
from .io import PathLike
from .label_space import LabelSpace
from .labels import ColorCodec, decode_color_label, decode_index_label, make_lut

__all__ = ["BDD100K_LABEL_SPACE", "BDD100KDataset"]

# the masks hold the training ids themselves (255: ignore)
BDD100K_LABEL_SPACE = LabelSpace(
    "bdd100k", CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, dataset_ids=tuple(range(len(CITYSCAPES_CLASSES)))
)
_TRAIN_ID_LUT_19 = make_lut({**{k: k for k in range(19)}, IGNORE_INDEX: IGNORE_INDEX})


class BDD100KDataset(SegmentationDataset):
    """BDD100K "10k" semantic segmentation: ``images/10k/<split>/*.jpg`` + ``labels/sem_seg/<source>/<split>/*.png``.

    ``label_source="masks"``: 8-bit trainIds 0..18, 255 ignore. ``"colormaps"``: palette PNGs whose index is
    the trainId; an RGB colormap is decoded by exact Cityscapes colour (other colours -> 255), and an RGB
    image with R = G = B holding trainIds is read as an index mask. ``root`` may also be the folder
    containing ``bdd100k/``.
    """

    NAME = "bdd100k"
    SPLITS = ("train", "val")
    LABEL_SPACE = BDD100K_LABEL_SPACE
    LABEL_SOURCES = ("masks", "colormaps")
    label_lut = _TRAIN_ID_LUT_19

    def __init__(
        self,
        root: PathLike,
        split: str = "train",
        transform: Transform | None = None,
        seed: int = 0,
        on_bad_sample: str = "error",
        label_source: str = "masks",
    ) -> None:
        self.label_source = label_source
        self._codec = ColorCodec(CITYSCAPES_PALETTE, range(len(CITYSCAPES_PALETTE)))
        super().__init__(root, split, transform, seed, on_bad_sample)

    def check_options(self) -> None:
        if self.label_source not in self.LABEL_SOURCES:
            raise ValueError(f"bdd100k: label_source must be one of {self.LABEL_SOURCES}, got {self.label_source!r}")

    def open_root(self, root: Path) -> Path:
        """``root`` or the ``bdd100k/`` folder in it."""
        return root / "bdd100k" if not (root / "images").is_dir() and (root / "bdd100k" / "images").is_dir() else root

    def folders(self) -> tuple[FolderSpec, FolderSpec]:
        images = FolderSpec(self.root / "images" / "10k" / self.split, "BDD100K image")
        source = self.label_source
        labels = FolderSpec(self.root / "labels" / "sem_seg" / source / self.split, f"BDD100K {source}", (".png",))
        return images, labels

    def decode_label(self, raw: np.ndarray, path: Path) -> np.ndarray:
        if raw.ndim == 3:
            return decode_color_label(raw, self.label_lut, path, self._codec)
        return decode_index_label(raw, self.label_lut, path)
