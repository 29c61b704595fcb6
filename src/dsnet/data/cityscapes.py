"""Cityscapes: the 19 evaluated classes, their colours, the labelId -> trainId map, and the dataset."""

from __future__ import annotations

from ..constants import IGNORE_INDEX
from .base import FolderSpec, SegmentationDataset
from .label_space import LabelSpace
from .labels import Color, make_lut

__all__ = [
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_LABEL_SPACE",
    "CITYSCAPES_LABEL_TO_TRAIN",
    "CITYSCAPES_PALETTE",
    "CityscapesDataset",
]

CITYSCAPES_CLASSES: tuple[str, ...] = (
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
)

CITYSCAPES_PALETTE: tuple[Color, ...] = (
    (128, 64, 128),
    (244, 35, 232),
    (70, 70, 70),
    (102, 102, 156),
    (190, 153, 153),
    (153, 153, 153),
    (250, 170, 30),
    (220, 220, 0),
    (107, 142, 35),
    (152, 251, 152),
    (70, 130, 180),
    (220, 20, 60),
    (255, 0, 0),
    (0, 0, 142),
    (0, 0, 70),
    (0, 60, 100),
    (0, 80, 100),
    (0, 0, 230),
    (119, 11, 32),
)

# Official Cityscapes labelId -> trainId for the 19 evaluated classes; every other id is ignored.
CITYSCAPES_LABEL_TO_TRAIN: dict[int, int] = {
    7: 0,
    8: 1,
    11: 2,
    12: 3,
    13: 4,
    17: 5,
    19: 6,
    20: 7,
    21: 8,
    22: 9,
    23: 10,
    24: 11,
    25: 12,
    26: 13,
    27: 14,
    28: 15,
    31: 16,
    32: 17,
    33: 18,
}

# the dataset ids are the labelIds (what the benchmark server wants); ignored pixels stay 255 (Cityscapes has
# several void labelIds, none of which is "the" ignore id)
CITYSCAPES_LABEL_SPACE = LabelSpace(
    "cityscapes",
    CITYSCAPES_CLASSES,
    CITYSCAPES_PALETTE,
    dataset_ids=tuple(sorted(CITYSCAPES_LABEL_TO_TRAIN, key=CITYSCAPES_LABEL_TO_TRAIN.__getitem__)),
)
_CITYSCAPES_LUT = make_lut({v: CITYSCAPES_LABEL_TO_TRAIN.get(v, IGNORE_INDEX) for v in range(256)})


class CityscapesDataset(SegmentationDataset):
    """Cityscapes fine annotations: ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` +
    ``gtFine/<split>/<city>/*_gtFine_labelIds.png``; labelIds -> the 19 trainIds, every other id -> 255."""

    NAME = "cityscapes"
    SPLITS = ("train", "val", "test")
    LABEL_SPACE = CITYSCAPES_LABEL_SPACE
    IMAGE_SUFFIX = "_leftImg8bit.png"
    LABEL_SUFFIX = "_gtFine_labelIds.png"
    label_lut = _CITYSCAPES_LUT

    def folders(self) -> tuple[FolderSpec, FolderSpec]:
        images = FolderSpec(self.root / "leftImg8bit" / self.split, "Cityscapes image", (self.IMAGE_SUFFIX,), depth=1)
        labels = FolderSpec(self.root / "gtFine" / self.split, "Cityscapes label", (self.LABEL_SUFFIX,), depth=1)
        return images, labels
