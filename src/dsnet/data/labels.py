"""Label decoding: raw values -> training ids through lookup tables, RGB colours -> ids, and back to colours.

Training ids are ``0..num_classes-1``; 255 (:data:`~dsnet.constants.IGNORE_INDEX`) marks ignored pixels.
:func:`decode_color_label` is the one path every dataset with colour-coded labels goes through, so that
an index label saved as RGB grey is recognised the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from ..constants import IGNORE_INDEX
from ..errors import DataError
from .io import PathLike

__all__ = [
    "Color",
    "ColorCodec",
    "colorize",
    "decode_color_label",
    "decode_index_label",
    "generate_palette",
    "make_lut",
]

Color = tuple[int, int, int]


def _preview(items: Sequence[Any], n: int = 10) -> str:
    """``[a, b, c, ...]``: the first ``n`` items, so an error message stays one readable line."""
    items = list(items)
    text = ", ".join(str(v) for v in items[:n])
    return f"[{text}{', ...' if len(items) > n else ''}]"


def _describe_values(values: Sequence[int]) -> str:
    """Sorted ints as ranges (``0..10, 255``): the valid values of a lookup table, compactly."""
    values = sorted(values)
    parts: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        parts.append(str(values[i]) if i == j else f"{values[i]}..{values[j]}")
        i = j + 1
    return ", ".join(parts) if parts else "(none)"


# --------------------------------------------------------------------------------------------------
# index labels


def make_lut(mapping: Mapping[int, int]) -> np.ndarray:
    """A 256-entry int16 lookup table raw value -> training id; values absent from ``mapping`` are -1 (invalid)."""
    lut = np.full(256, -1, np.int16)
    for raw, train_id in mapping.items():
        if not 0 <= raw <= 255 or not 0 <= train_id <= 255:
            raise ValueError(f"lookup table entries must be in 0..255, got {raw} -> {train_id}")
        lut[raw] = train_id
    return lut


def _present_values(raw: np.ndarray) -> np.ndarray:
    """Distinct values of a uint8 array (a histogram: much faster than np.unique on an image)."""
    return np.flatnonzero(cv2.calcHist([np.ascontiguousarray(raw)], [0], None, [256], [0, 256]).ravel())


def _bad_values_error(path: PathLike, bad: Sequence[int], lut: np.ndarray) -> DataError:
    valid = np.flatnonzero(lut >= 0)
    return DataError(
        f"{path}: label values {_preview(list(bad))} are outside the valid values {_describe_values(valid.tolist())}"
    )


def decode_index_label(raw: np.ndarray, lut: np.ndarray, path: PathLike) -> np.ndarray:
    """Check that every raw label value is valid for ``lut`` (see :func:`make_lut`) and map it.

    Raises :class:`DataError` naming the file and the offending values.
    """
    if raw.ndim != 2:
        raise DataError(f"{path}: expected a single-channel (index) label image, got an array of shape {raw.shape}")
    if raw.dtype != np.uint8:
        if raw.dtype.kind not in "biu":
            raise DataError(f"{path}: label image has non-integer dtype {raw.dtype}")
        if raw.size and (raw.min() < 0 or raw.max() > 255):
            values = np.unique(raw)
            raise _bad_values_error(path, values[(values < 0) | (values > 255)].tolist(), lut)
        raw = raw.astype(np.uint8)
    raw = np.ascontiguousarray(raw)
    present = _present_values(raw)
    bad = present[lut[present] < 0]
    if bad.size:
        raise _bad_values_error(path, bad.tolist(), lut)
    if np.array_equal(lut[present], present):
        return raw  # identity on the values present: no copy needed
    return cv2.LUT(raw, lut.clip(0, 255).astype(np.uint8))


# --------------------------------------------------------------------------------------------------
# colour labels


def _pack_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.uint32, copy=False)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _unpack(code: int) -> Color:
    return ((code >> 16) & 255, (code >> 8) & 255, code & 255)


class ColorCodec:
    """Exact RGB colour -> id decoding (unknown colours -> ``ignore_index``), fast for a few dozen colours."""

    def __init__(self, colors: Sequence[Color], ids: Sequence[int], ignore_index: int = IGNORE_INDEX) -> None:
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

    def decode(self, rgb: np.ndarray, return_unmatched: bool = False) -> np.ndarray | tuple[np.ndarray, list[Color]]:
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
        unmatched = [] if hit.all() else [_unpack(c) for c in np.unique(packed[~hit]).tolist()]
        return out, unmatched


def _grey_values(rgb: np.ndarray) -> np.ndarray | None:
    """The single channel of an (H, W, 3) image whose pixels all have R == G == B, else None."""
    grey = rgb[..., 0]
    if np.array_equal(grey, rgb[..., 1]) and np.array_equal(grey, rgb[..., 2]):
        return np.ascontiguousarray(grey)
    return None


def _is_grey_index(grey: np.ndarray, lut: np.ndarray, codec: ColorCodec | None) -> bool:
    """A grey RGB label holds index values when they are all valid ids and not all known colours."""
    present = _present_values(grey)
    if (lut[present] < 0).any():
        return False
    return codec is None or not codec.contains(np.repeat(present[:, None], 3, axis=1)).all()


def decode_color_label(
    raw: np.ndarray,
    lut: np.ndarray,
    path: PathLike,
    codec: ColorCodec | None,
    *,
    grey_as_index: bool = True,
    no_codec: str = "colour label but no colours are defined to decode it",
    known_colors: str | None = None,
) -> np.ndarray:
    """Decode a 3-channel label to training ids (255 = ignore).

    * ``grey_as_index``: an image with R == G == B everywhere whose grey values are valid for ``lut`` and
      are not all colours of ``codec`` is an index label saved as RGB (e.g. SegNet CamVid ids written by
      an image editor): decoded through ``lut`` like a single-channel label.
    * ``codec=None``: colour decoding is impossible; anything but such a grey index label raises
      ``DataError("<path>: <no_codec>")``.
    * ``known_colors`` (the description of where the colours come from): colours outside ``codec`` are
      an error naming them; ``None``: they become 255.
    * A label where no pixel decodes to a class is an error (every pixel ignored means the encoding was
      misread, and training on it would silently learn nothing); it shows up to 5 colours of the file.
    """
    if raw.ndim != 3 or raw.shape[2] < 3:
        raise DataError(f"{path}: expected a colour (H, W, 3) label image, got an array of shape {raw.shape}")
    rgb = raw[..., :3]
    if rgb.dtype != np.uint8:
        raise DataError(f"{path}: colour label image has dtype {rgb.dtype}; 8-bit RGB expected")
    grey = _grey_values(rgb) if grey_as_index else None
    if grey is not None and _is_grey_index(grey, lut, codec):
        return decode_index_label(grey, lut, path)
    if codec is None:
        raise DataError(f"{path}: {no_codec}")
    label, unmatched = codec.decode(rgb, return_unmatched=True)
    if unmatched and known_colors is not None:
        raise DataError(f"{path}: label colours {_preview(unmatched, 5)} are not in {known_colors}")
    if not (label != codec.ignore_index).any():
        found = [_unpack(c) for c in np.unique(_pack_rgb(rgb)).tolist()]
        grey = _grey_values(rgb)
        looks_index = grey is not None and bool((lut[_present_values(grey)] >= 0).all())
        hint = " (R = G = B everywhere, with valid label values: an index label saved as RGB?)" if looks_index else ""
        raise DataError(
            f"{path}: no pixel has a class colour; colours found: {_preview(found, 5)}{hint}"
            + ("" if known_colors is None else f"; class colours are in {known_colors}")
        )
    return label


# --------------------------------------------------------------------------------------------------
# palettes and visualisation


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


def colorize(label: np.ndarray, palette: Sequence[Color], ignore_color: Color = (0, 0, 0)) -> np.ndarray:
    """Label map (H, W) of training ids -> RGB uint8 (H, W, 3); ids outside the palette get ``ignore_color``."""
    lut = np.empty((256, 3), np.uint8)
    lut[:] = ignore_color
    lut[: len(palette)] = np.asarray(palette, np.uint8).reshape(-1, 3)
    label = np.asarray(label)
    if label.dtype != np.uint8:
        label = np.where((label >= 0) & (label < 256), label, 255).astype(np.uint8)
    return lut[label]
