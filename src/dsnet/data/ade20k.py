"""ADE20K / SceneParsing: the 150 class names, a generated palette, and the dataset (reduce-zero-label)."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

from ..constants import IGNORE_INDEX
from ..errors import DataError
from .base import FolderSpec, SegmentationDataset
from .io import PathLike
from .label_space import LabelSpace
from .labels import Color, generate_palette, make_lut

__all__ = ["ADE20K_CLASSES", "ADE20K_PALETTE", "ADE20KDataset", "ade20k_classes"]

log = logging.getLogger(__name__)

# Short names; objectInfo150.csv lists the synonyms.
ADE20K_CLASSES: tuple[str, ...] = (
    "wall",
    "building",
    "sky",
    "floor",
    "tree",
    "ceiling",
    "road",
    "bed",
    "windowpane",
    "grass",
    "cabinet",
    "sidewalk",
    "person",
    "earth",
    "door",
    "table",
    "mountain",
    "plant",
    "curtain",
    "chair",
    "car",
    "water",
    "painting",
    "sofa",
    "shelf",
    "house",
    "sea",
    "mirror",
    "rug",
    "field",
    "armchair",
    "seat",
    "fence",
    "desk",
    "rock",
    "wardrobe",
    "lamp",
    "bathtub",
    "railing",
    "cushion",
    "base",
    "box",
    "column",
    "signboard",
    "chest of drawers",
    "counter",
    "sand",
    "sink",
    "skyscraper",
    "fireplace",
    "refrigerator",
    "grandstand",
    "path",
    "stairs",
    "runway",
    "case",
    "pool table",
    "pillow",
    "screen door",
    "stairway",
    "river",
    "bridge",
    "bookcase",
    "blind",
    "coffee table",
    "toilet",
    "flower",
    "book",
    "hill",
    "bench",
    "countertop",
    "stove",
    "palm",
    "kitchen island",
    "computer",
    "swivel chair",
    "boat",
    "bar",
    "arcade machine",
    "hovel",
    "bus",
    "towel",
    "light",
    "truck",
    "tower",
    "chandelier",
    "awning",
    "streetlight",
    "booth",
    "television receiver",
    "airplane",
    "dirt track",
    "apparel",
    "pole",
    "land",
    "bannister",
    "escalator",
    "ottoman",
    "bottle",
    "buffet",
    "poster",
    "stage",
    "van",
    "ship",
    "fountain",
    "conveyer belt",
    "canopy",
    "washer",
    "plaything",
    "swimming pool",
    "stool",
    "barrel",
    "basket",
    "waterfall",
    "tent",
    "bag",
    "minibike",
    "cradle",
    "oven",
    "ball",
    "food",
    "step",
    "tank",
    "trade name",
    "microwave",
    "pot",
    "animal",
    "bicycle",
    "lake",
    "dishwasher",
    "screen",
    "blanket",
    "sculpture",
    "hood",
    "sconce",
    "vase",
    "traffic light",
    "tray",
    "ashcan",
    "fan",
    "pier",
    "crt screen",
    "plate",
    "monitor",
    "bulletin board",
    "shower",
    "radiator",
    "glass",
    "clock",
    "flag",
)

ADE20K_PALETTE: tuple[Color, ...] = generate_palette(len(ADE20K_CLASSES))

_ADE_LUT = make_lut({0: IGNORE_INDEX, **{k: k - 1 for k in range(1, 151)}})


def ade20k_classes(csv_path: PathLike | None = None) -> tuple[str, ...]:
    """The 150 ADE20K class names; read from ``objectInfo150.csv`` when given (checked against the built-in
    short names, which are kept when the file agrees with them)."""
    if csv_path is None or not Path(csv_path).is_file():
        return ADE20K_CLASSES
    try:
        with open(csv_path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        ids = [int(r["Idx"]) for r in rows]
        names = [r["Name"].strip() for r in rows]
    except (OSError, KeyError, ValueError, csv.Error) as e:
        raise DataError(f"{csv_path}: cannot parse class list ({e})") from None
    if ids != list(range(1, 151)):
        raise DataError(f"{csv_path}: expected 150 rows with Idx 1..150, got {len(ids)} rows")
    out = []
    for builtin, name in zip(ADE20K_CLASSES, names, strict=True):
        tokens = name.split(";")
        words = builtin.split()
        if tokens and tokens[0] == words[0] and all(w in tokens for w in words):
            out.append(builtin)
        else:
            out.append(tokens[0])
    if tuple(out) != ADE20K_CLASSES:
        log.warning("%s: class names differ from the built-in ADE20K list; using the file's", csv_path)
    return tuple(out)


class ADE20KDataset(SegmentationDataset):
    """ADE20K / SceneParsing: ``ADEChallengeData2016/images/<split>/*.jpg`` + ``annotations/<split>/*.png``.

    reduce-zero-label: 0 ("other") -> 255, 1..150 -> 0..149. ``root`` may be the folder that contains
    ``ADEChallengeData2016`` or that folder itself. Splits "training"/"validation" (aliases "train"/"val").
    """

    NAME = "ade20k"
    SPLITS = ("training", "validation")
    SPLIT_ALIASES = {"train": "training", "val": "validation"}
    DEFAULT_SPLIT = "training"
    label_lut = _ADE_LUT

    @staticmethod
    def _resolve_root(root: PathLike) -> Path:
        root = Path(root)
        return root / "ADEChallengeData2016" if (root / "ADEChallengeData2016").is_dir() else root

    @classmethod
    def describe(cls, root: PathLike | None = None, **options: Any) -> LabelSpace:
        """The 150 classes (names from ``objectInfo150.csv`` under ``root`` when there is one); the files
        hold 1..150 and 0 for "other" (reduce-zero-label undone)."""
        classes = ade20k_classes(None if root is None else cls._resolve_root(root) / "objectInfo150.csv")
        ids = tuple(range(1, len(classes) + 1))
        return LabelSpace("ade20k", classes, ADE20K_PALETTE, dataset_ids=ids, dataset_ignore_id=0)

    def open_root(self, root: Path) -> Path:
        return self._resolve_root(root)

    def folders(self) -> tuple[FolderSpec, FolderSpec]:
        images = FolderSpec(self.root / "images" / self.split, "ADE20K image")
        labels = FolderSpec(self.root / "annotations" / self.split, "ADE20K annotation", (".png",))
        return images, labels
