"""Class names and colour palettes of the supported datasets, plus colour <-> id helpers.

Every palette is a tuple of ``(r, g, b)`` tuples, one per training id. Ignore pixels (255) are drawn
black by :func:`colorize` unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Color = tuple[int, int, int]

# --------------------------------------------------------------------------------------------------
# Cityscapes (also BDD100K, which uses the same 19 training ids)

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

BDD100K_CLASSES = CITYSCAPES_CLASSES
BDD100K_PALETTE = CITYSCAPES_PALETTE

# --------------------------------------------------------------------------------------------------
# CamVid, 11 classes. Training ids follow SegNet's order (the order of the SegNet label PNGs).

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

# --------------------------------------------------------------------------------------------------
# ADE20K / SceneParsing, 150 classes (short names; objectInfo150.csv lists the synonyms).

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


def generate_palette(n: int) -> tuple[Color, ...]:
    """``n`` distinct colours (n <= 255) by spreading the bits of ``k + 1`` over the three channels.

    Deterministic; the map is a bijection on 0..255, so colours never repeat and none is black.
    """
    if not 0 <= n <= 255:
        raise ValueError(f"generate_palette supports up to 255 colours, got {n}")
    colors = []
    for k in range(1, n + 1):
        r = g = b = 0
        c = k
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colors.append((r, g, b))
    return tuple(colors)


ADE20K_PALETTE: tuple[Color, ...] = generate_palette(len(ADE20K_CLASSES))


# --------------------------------------------------------------------------------------------------
# helpers


def colorize(label: np.ndarray, palette: Sequence[Color], ignore_color: Color = (0, 0, 0)) -> np.ndarray:
    """Label map (H, W) of training ids -> RGB uint8 (H, W, 3); ids outside the palette get ``ignore_color``."""
    lut = np.empty((256, 3), np.uint8)
    lut[:] = ignore_color
    lut[: len(palette)] = np.asarray(palette, np.uint8).reshape(-1, 3)
    label = np.asarray(label)
    if label.dtype != np.uint8:
        label = np.where((label >= 0) & (label < 256), label, 255).astype(np.uint8)
    return lut[label]


def _pack_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.uint32, copy=False)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


class ColorCodec:
    """Exact RGB colour -> id decoding (unknown colours -> ``ignore_index``), fast for a few dozen colours."""

    def __init__(self, colors: Sequence[Color], ids: Sequence[int], ignore_index: int = 255) -> None:
        if len(colors) != len(ids):
            raise ValueError("colors and ids must have the same length")
        codes = _pack_rgb(np.asarray(colors, np.int64).reshape(-1, 3))
        if len(np.unique(codes)) != len(codes):
            raise ValueError("duplicate colours in a colour map")
        order = np.argsort(codes)
        self._codes = codes[order].astype(np.uint32)
        self._ids = np.asarray(ids, np.uint8)[order]
        self.ignore_index = ignore_index

    def contains(self, colors: np.ndarray) -> np.ndarray:
        """Boolean mask: which of the (..., 3) ``colors`` are in the colour map."""
        packed = _pack_rgb(np.asarray(colors))
        pos = np.minimum(np.searchsorted(self._codes, packed), len(self._codes) - 1)
        return self._codes[pos] == packed

    def decode(self, rgb: np.ndarray, return_unmatched: bool = False):
        """(H, W, 3) uint8 RGB -> (H, W) uint8 ids.

        With ``return_unmatched=True`` also returns the sorted list of distinct colours that matched no entry.
        """
        if rgb.ndim != 3 or rgb.shape[2] < 3:
            raise ValueError(f"expected an (H, W, 3) colour image, got shape {rgb.shape}")
        packed = _pack_rgb(rgb[..., :3])
        pos = np.searchsorted(self._codes, packed)
        np.minimum(pos, len(self._codes) - 1, out=pos)
        hit = self._codes[pos] == packed
        out = np.full(packed.shape, self.ignore_index, np.uint8)
        out[hit] = self._ids[pos[hit]]
        if not return_unmatched:
            return out
        unmatched: list[Color] = []
        if not hit.all():
            for code in np.unique(packed[~hit]).tolist():
                unmatched.append(((code >> 16) & 255, (code >> 8) & 255, code & 255))
        return out, unmatched


def camvid_color_codec(merge_32_classes: bool = True) -> ColorCodec:
    """Decoder for colour-coded CamVid labels to SegNet-order ids 0..10 (255 for void / unknown).

    ``merge_32_classes=True`` maps all 32 original CamVid colours through :data:`CAMVID32_TO_11`;
    ``False`` accepts only the 11 class colours of :data:`CAMVID_PALETTE` (what the DSNet code does).
    """
    if merge_32_classes:
        names = list(CAMVID32_TO_11)
        colors = [CAMVID32_COLORS[n] for n in names]
        ids = [_CAMVID_GROUP_ID[CAMVID32_TO_11[n]] for n in names]
    else:
        colors = list(CAMVID_PALETTE)
        ids = list(range(len(CAMVID_PALETTE)))
    # Void (black) is a known CamVid colour too: explicitly ignored
    return ColorCodec([*colors, CAMVID32_COLORS["Void"]], [*ids, 255])


_CAMVID_GROUP_ID = {name: i for i, name in enumerate(CAMVID_CLASSES)}


def cityscapes_color_codec() -> ColorCodec:
    """Decoder for Cityscapes-coloured RGB labels (e.g. BDD100K colour labels) to the 19 training ids."""
    return ColorCodec(CITYSCAPES_PALETTE, range(len(CITYSCAPES_PALETTE)))
