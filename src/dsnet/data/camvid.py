"""CamVid, 11 classes, in SegNet's index release or the colour-coded release the DSNet authors used.

Training ids follow SegNet's order (the order of the SegNet label PNGs) unless ``class_order="dsnet"``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..constants import IGNORE_INDEX
from ..errors import DataError
from .base import FolderSpec, SegmentationDataset, Transform, pair_folders
from .io import PathLike, read_label
from .label_space import LabelSpace
from .labels import Color, ColorCodec, decode_color_label, decode_index_label, make_lut

__all__ = [
    "CAMVID32_COLORS",
    "CAMVID32_TO_11",
    "CAMVID_CLASSES",
    "CAMVID_DSNET_ORDER",
    "CAMVID_PALETTE",
    "CAMVID_VOID_ID",
    "CamVidDataset",
    "camvid_color_codec",
]

log = logging.getLogger(__name__)

CAMVID_CLASSES: tuple[str, ...] = (
    "Sky",
    "Building",
    "Pole",
    "Road",
    "Sidewalk",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
)

# Colour of each class in the colour-coded CamVid release: the CamVid code of the class's
# representative original class (Column_Pole for Pole, Sidewalk for Sidewalk/Pavement, ...).
CAMVID_PALETTE: tuple[Color, ...] = (
    (128, 128, 128),  # Sky
    (128, 0, 0),  # Building
    (192, 192, 128),  # Column_Pole
    (128, 64, 128),  # Road
    (0, 0, 192),  # Sidewalk
    (128, 128, 0),  # Tree
    (192, 128, 128),  # SignSymbol
    (64, 64, 128),  # Fence
    (64, 0, 128),  # Car
    (64, 64, 0),  # Pedestrian
    (0, 128, 192),  # Bicyclist
)

# The 32 original CamVid classes (Brostow et al.) with their colour codes.
CAMVID32_COLORS: dict[str, Color] = {
    "Animal": (64, 128, 64),
    "Archway": (192, 0, 128),
    "Bicyclist": (0, 128, 192),
    "Bridge": (0, 128, 64),
    "Building": (128, 0, 0),
    "Car": (64, 0, 128),
    "CartLuggagePram": (64, 0, 192),
    "Child": (192, 128, 64),
    "Column_Pole": (192, 192, 128),
    "Fence": (64, 64, 128),
    "LaneMkgsDriv": (128, 0, 192),
    "LaneMkgsNonDriv": (192, 0, 64),
    "Misc_Text": (128, 128, 64),
    "MotorcycleScooter": (192, 0, 192),
    "OtherMoving": (128, 64, 64),
    "ParkingBlock": (64, 192, 128),
    "Pedestrian": (64, 64, 0),
    "Road": (128, 64, 128),
    "RoadShoulder": (128, 128, 192),
    "Sidewalk": (0, 0, 192),
    "SignSymbol": (192, 128, 128),
    "Sky": (128, 128, 128),
    "SUVPickupTruck": (64, 128, 192),
    "TrafficCone": (0, 0, 64),
    "TrafficLight": (0, 64, 64),
    "Train": (192, 64, 128),
    "Tree": (128, 128, 0),
    "Truck_Bus": (192, 128, 192),
    "Tunnel": (64, 0, 64),
    "VegetationMisc": (192, 192, 0),
    "Void": (0, 0, 0),
    "Wall": (64, 192, 0),
}

# The usual grouping of the 32 classes into the 11 evaluated ones (Void and anything else -> ignore).
CAMVID32_TO_11: dict[str, str] = {
    "Sky": "Sky",
    "Building": "Building",
    "Wall": "Building",
    "Bridge": "Building",
    "Tunnel": "Building",
    "Archway": "Building",
    "Column_Pole": "Pole",
    "TrafficCone": "Pole",
    "Road": "Road",
    "LaneMkgsDriv": "Road",
    "LaneMkgsNonDriv": "Road",
    "Sidewalk": "Sidewalk",
    "ParkingBlock": "Sidewalk",
    "RoadShoulder": "Sidewalk",
    "Tree": "Tree",
    "VegetationMisc": "Tree",
    "SignSymbol": "SignSymbol",
    "Misc_Text": "SignSymbol",
    "TrafficLight": "SignSymbol",
    "Fence": "Fence",
    "Car": "Car",
    "SUVPickupTruck": "Car",
    "Truck_Bus": "Car",
    "Train": "Car",
    "OtherMoving": "Car",
    "Pedestrian": "Pedestrian",
    "Child": "Pedestrian",
    "CartLuggagePram": "Pedestrian",
    "Animal": "Pedestrian",
    "Bicyclist": "Bicyclist",
    "MotorcycleScooter": "Bicyclist",
}

# The DSNet/PIDNet CamVid code orders the 11 classes alphabetically by their original names
# (Bicyclist, Building, Car, Column_Pole, Fence, Pedestrian, Road, Sidewalk, SignSymbol, Sky, Tree).
# Entry k is the SegNet-order id of the authors' training id k.
CAMVID_DSNET_ORDER: tuple[int, ...] = (10, 1, 8, 2, 7, 9, 3, 4, 6, 0, 5)

#: SegNet's id of void pixels.
CAMVID_VOID_ID = 11


_CAMVID_GROUP_ID = {name: i for i, name in enumerate(CAMVID_CLASSES)}


def camvid_color_codec(merge_32_classes: bool = True, to_train: Sequence[int] = tuple(range(11))) -> ColorCodec:
    """Decoder for colour-coded CamVid labels to training ids (255 for void / unknown).

    ``to_train[k]`` is the training id of SegNet class k (identity: SegNet order).
    ``merge_32_classes=True`` maps all 32 original CamVid colours through :data:`CAMVID32_TO_11`;
    ``False`` accepts only the 11 class colours of :data:`CAMVID_PALETTE` (what the DSNet code does).
    """
    if merge_32_classes:
        names = list(CAMVID32_TO_11)
        colors = [CAMVID32_COLORS[n] for n in names]
        ids = [to_train[_CAMVID_GROUP_ID[CAMVID32_TO_11[n]]] for n in names]
    else:
        colors = list(CAMVID_PALETTE)
        ids = [to_train[k] for k in range(len(CAMVID_PALETTE))]
    # Void (black) is a known CamVid colour too: explicitly ignored
    return ColorCodec([*colors, CAMVID32_COLORS["Void"]], [*ids, IGNORE_INDEX])


class CamVidDataset(SegmentationDataset):
    """CamVid, 11 classes, in either release.

    * SegNet's (480x360): single-channel labels with ids 0..10, 11 = void (-> 255; 255 is also accepted).
      The same ids saved as an RGB image with R = G = B are read as index labels too.
    * The colour-coded release used by the DSNet authors (960x720): RGB labels in CamVid colour codes. All
      32 original CamVid colours are merged into the 11 classes (``merge_32_classes=True``, see
      :data:`CAMVID32_TO_11`), or only the 11 class colours are accepted (``False``, the DSNet code's
      behaviour); unmatched colours -> 255, and a label with no class colour at all is an error.

    ``encoding="auto"`` decides per file: RGB(A) -> colour (or index if grey, see above); single-channel ->
    index; palette ('P') -> colour if every colour the file uses is a CamVid colour, else index.
    Samples come from a list file ("image label" per line, paths relative to ``root``): ``list_file`` or the
    first of ``<split>.txt``, ``<split>.lst``, ``list/<split>.lst`` in ``root``; ``trainval`` falls back to
    train + val. Without lists, folders ``images/<split>`` + ``labels/<split>`` or SegNet's ``<split>`` +
    ``<split>annot`` are paired by name (a ``_L`` label suffix is allowed).

    Sequence-held-out splits, for a validation that predicts unseen streets (CamVid's val is frames of a
    sequence whose other frames are in train; its test is mostly a sequence in neither): ``held-out-SEQ``
    is the frames of train + val whose file name starts with ``SEQ`` (the sequences: ``0001TP``, ``0006R0``,
    ``0016E5``), ``without-SEQ`` is every other frame of train + val. Train on ``without-0006R0``, validate
    on ``held-out-0006R0``. Parts join with ``+``, and ``SEQ-late`` is the later half of a sequence's frames
    (by frame number): ``held-out-0006R0+0001TP-late`` mirrors test's make-up, an unseen street plus the
    continuation of a sequence whose earlier frames are trained on (``without-0006R0+0001TP-late``).

    ``class_order="segnet"`` (default) gives SegNet ids (Sky, Building, Pole, Road, Sidewalk, Tree,
    SignSymbol, Fence, Car, Pedestrian, Bicyclist); ``"dsnet"`` the DSNet/PIDNet code's alphabetical order
    (Bicyclist, Building, Car, Pole, Fence, Pedestrian, Road, Sidewalk, SignSymbol, Sky, Tree), needed to
    use the authors' CamVid weights.
    """

    NAME = "camvid"
    SPLITS = ("train", "val", "test", "trainval")
    #: ``held-out-PARTS`` / ``without-PARTS``: some frames of train + val, or all the others; PARTS joins with
    #: ``+`` sequences (``0006R0``) or the later half of one (``0001TP-late``)
    SEQUENCE_SPLIT = re.compile(r"^(held-out|without)-([A-Za-z0-9]+(?:-late)?(?:\+[A-Za-z0-9]+(?:-late)?)*)$")
    #: the suffix of a part that takes the later half of a sequence's frames
    LATE_HALF = "-late"
    ENCODINGS = ("auto", "index", "color")
    CLASS_ORDERS = ("segnet", "dsnet")

    @classmethod
    def describe(cls, root: PathLike | None = None, *, class_order: str = "segnet", **options: Any) -> LabelSpace:
        """The 11 classes in ``class_order``; the dataset ids are SegNet's (void: 11) in either order."""
        if class_order not in cls.CLASS_ORDERS:
            raise ValueError(f"camvid: class_order must be one of {cls.CLASS_ORDERS}, got {class_order!r}")
        order = tuple(range(11)) if class_order == "segnet" else CAMVID_DSNET_ORDER
        return LabelSpace(
            "camvid" if class_order == "segnet" else "camvid-dsnet",
            tuple(CAMVID_CLASSES[k] for k in order),
            tuple(CAMVID_PALETTE[k] for k in order),
            dataset_ids=order,
            dataset_ignore_id=CAMVID_VOID_ID,
            class_order=class_order,
        )

    def __init__(
        self,
        root: PathLike,
        split: str = "train",
        transform: Transform | None = None,
        seed: int = 0,
        on_bad_sample: str = "error",
        encoding: str = "auto",
        list_file: PathLike | None = None,
        merge_32_classes: bool = True,
        class_order: str = "segnet",
    ) -> None:
        self.encoding, self.class_order, self.list_file = encoding, class_order, list_file
        self.merge_32_classes = merge_32_classes
        super().__init__(root, split, transform, seed, on_bad_sample)
        order = self.label_space.dataset_ids or ()  # SegNet id of each training id
        to_train = [0] * 11  # SegNet id -> training id in the chosen order
        for train_id, segnet_id in enumerate(order):
            to_train[segnet_id] = train_id
        self.label_lut = make_lut(
            {**dict(enumerate(to_train)), CAMVID_VOID_ID: IGNORE_INDEX, IGNORE_INDEX: IGNORE_INDEX}
        )
        self._codec = camvid_color_codec(merge_32_classes, to_train)

    def check_options(self) -> None:
        if self.encoding not in self.ENCODINGS:
            raise ValueError(f"camvid: encoding must be one of {self.ENCODINGS}, got {self.encoding!r}")
        if self.class_order not in self.CLASS_ORDERS:
            raise ValueError(f"camvid: class_order must be one of {self.CLASS_ORDERS}, got {self.class_order!r}")

    def own_label_space(self) -> LabelSpace:
        return self.describe(class_order=self.class_order)

    def check_split(self, split: str | None) -> str | None:
        if split is not None and self.SEQUENCE_SPLIT.match(split):
            return split
        try:
            return super().check_split(split)
        except ValueError as e:
            raise ValueError(
                f"{e}, held-out-SEQ, without-SEQ (SEQ: a sequence, e.g. 0006R0, or several joined by '+'; "
                f"SEQ{self.LATE_HALF}: its later half)"
            ) from None

    # ---- listing
    def list_samples(self, on_bad_sample: str) -> tuple[list[tuple[Path, Path]], PathLike]:
        """The list file's pairs (``list_file``, else one found in ``root``), else the folders' paired by name;
        a sequence split takes train + val's and keeps the named frames, or all but them."""
        match = self.SEQUENCE_SPLIT.match(self.split or "")
        if match is None:
            return self._list_split(self.split, on_bad_sample)
        kind, parts = match.groups()
        samples, source = self._list_split("trainval", on_bad_sample)
        named: set[tuple[Path, Path]] = set()
        for part in parts.split("+"):
            named.update(self._sequence_frames(samples, part, source))
        kept = [pair for pair in samples if (pair in named) == (kind == "held-out")]
        return kept, source

    def _sequence_frames(
        self, samples: list[tuple[Path, Path]], part: str, source: PathLike
    ) -> list[tuple[Path, Path]]:
        """The frames one part names: a sequence's (file names starting with it), or their later half."""
        sequence = part.removesuffix(self.LATE_HALF)
        frames = sorted(
            (pair for pair in samples if Path(pair[0]).name.startswith(sequence)), key=lambda p: Path(p[0]).name
        )
        if not frames:
            found = sorted({Path(image).name.split("_")[0] for image, _ in samples})
            raise DataError(
                f"{source}: no frames of sequence {sequence!r} in train + val (sequences: {', '.join(found)})"
            )
        return frames[len(frames) // 2 :] if part != sequence else frames

    def _list_split(self, split: str, on_bad_sample: str) -> tuple[list[tuple[Path, Path]], PathLike]:
        root = self.root
        if not root.is_dir():
            raise DataError(f"{root}: CamVid root folder not found")
        if self.list_file is not None:
            lists = [Path(self.list_file)]
            if not lists[0].is_file():
                raise DataError(f"{self.list_file}: CamVid list file not found")
        else:
            lists = self._find_lists(root, split)
        if lists:
            samples = []
            for lf in lists:
                samples += self._read_list(lf, root, on_bad_sample)
            return samples, lists[0]
        for image_dir, label_dir in (
            (root / "images" / split, root / "labels" / split),
            (root / split, root / f"{split}annot"),
        ):
            if image_dir.is_dir() and label_dir.is_dir():
                images = FolderSpec(image_dir, "CamVid image")
                labels = FolderSpec(label_dir, "CamVid label", marker="_L")
                return pair_folders(images, labels, on_bad_sample), image_dir
        raise DataError(
            f"{root}: no CamVid list file for split {split!r} ({split}.txt, {split}.lst or list/{split}.lst) "
            f"and no images/{split} + labels/{split} folders"
        )

    @staticmethod
    def _find_lists(root: Path, split: str) -> list[Path]:
        def find(s: str) -> Path | None:
            for cand in (root / f"{s}.txt", root / f"{s}.lst", root / "list" / f"{s}.lst"):
                if cand.is_file():
                    return cand
            return None

        found = find(split)
        if found is not None:
            return [found]
        if split == "trainval":
            parts = [find("train"), find("val")]
            if all(p is not None for p in parts):
                return parts  # type: ignore[return-value]
        return []

    @staticmethod
    def _read_list(list_path: Path, root: Path, on_bad_sample: str) -> list[tuple[Path, Path]]:
        samples = []
        try:
            lines = list_path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"{list_path}: cannot read list file ({e})") from None
        for lineno, line in enumerate(lines, 1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            if len(parts) != 2:
                raise DataError(f"{list_path}:{lineno}: expected 'image label', got {line.strip()!r}")
            image, label = (root / p for p in parts)
            missing = [p for p in (image, label) if not p.is_file()]
            if missing:
                kind = "image" if missing[0] == image else "label"
                other = label if kind == "image" else image
                msg = f"{missing[0]}: {kind} file not found (listed in {list_path}:{lineno} with {other})"
                if on_bad_sample == "error":
                    raise DataError(msg)
                log.warning("dropping unpaired file: %s", msg)
                continue
            samples.append((image, label))
        return samples

    # ---- decoding
    def read_label(self, path: Path) -> np.ndarray:
        if self.encoding != "auto":
            return read_label(path, as_color=self.encoding == "color")  # type: ignore[return-value]
        arr, palette = read_label(path, return_palette=True)
        if palette is not None:
            # A palette image is colour-coded when every colour it uses is a CamVid colour (a palette index
            # that is a SegNet id, with SegNet's LUT as palette, decodes to the same class either way).
            used = np.flatnonzero(cv2.calcHist([arr], [0], None, [256], [0, 256]).ravel())
            if self._codec.contains(palette[used]).all():
                return palette[arr]
        return arr

    def decode_label(self, raw: np.ndarray, path: Path) -> np.ndarray:
        if raw.ndim == 3:
            return decode_color_label(
                raw,
                self.label_lut,
                path,
                None if self.encoding == "index" else self._codec,
                grey_as_index=self.encoding != "color",
                no_codec="encoding='index' but the label is a colour image",
            )
        return decode_index_label(raw, self.label_lut, path)
