"""Reading image and label files into NumPy arrays; every failure is a DataError naming the file."""

from __future__ import annotations

import os

import cv2
import numpy as np
from PIL import Image

from ..errors import DataError

__all__ = ["PathLike", "read_image", "read_label"]

PathLike = str | os.PathLike

# PIL modes that hold colours rather than indices: converted to RGB so decoding sees (H, W, 3)
_COLOR_MODES = ("RGBA", "CMYK", "YCbCr", "LAB", "HSV", "PA")


def read_image(path: PathLike, upright: bool = False) -> np.ndarray:
    """Read an image as RGB uint8 (H, W, 3) with OpenCV (grayscale -> RGB, alpha dropped, 16-bit values by
    their high byte).

    EXIF orientation is ignored by default, on purpose: training labels are stored in raw pixel order, so
    rotating the image would misalign it with its label. ``upright=True`` applies it, as a photo viewer
    does: what a prediction needs (a phone photo taken upright is stored sideways with Orientation 6).
    """
    try:
        buf = np.fromfile(os.fspath(path), np.uint8)
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read image file ({e})") from None
    image = None
    if buf.size:
        try:
            flags = cv2.IMREAD_COLOR if upright else cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
            image = cv2.imdecode(buf, flags)
        except cv2.error:
            image = None
    if image is None:
        raise DataError(f"{path}: unreadable or corrupt image (OpenCV could not decode it)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _palette_of(im: Image.Image) -> np.ndarray:
    raw = im.getpalette() or []
    palette = np.zeros((256, 3), np.uint8)
    n = min(len(raw), 768) // 3
    palette[:n] = np.asarray(raw[: 3 * n], np.uint8).reshape(n, 3)
    return palette


def read_label(
    path: PathLike, as_color: bool = False, return_palette: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray | None]:
    """Read a label image with PIL (which, unlike OpenCV, keeps palette indices and 16-bit values).

    Returns a 2-D array for single-channel images ('L', 'I;16', '1') and for palette ('P') images (the
    palette INDICES), or an RGB (H, W, 3) uint8 array for colour images. ``as_color=True`` always returns
    RGB colours (palette images are expanded through their palette). ``return_palette=True`` returns
    ``(array, palette)`` where ``palette`` is the (256, 3) uint8 RGB palette of a 'P' image, else None.
    """
    palette = None
    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode == "P" and return_palette and not as_color:
                palette = _palette_of(im)
            if as_color:
                if mode != "RGB":
                    im = im.convert("RGB")
            elif mode in _COLOR_MODES:
                im = im.convert("RGB")
            elif mode == "LA":
                im = im.getchannel("L")
            elif mode == "1":
                im = im.convert("L")
            elif mode == "F":
                raise DataError(f"{path}: floating-point label images are not supported")
            arr = np.array(im)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: label file not found") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: unreadable or corrupt label image ({e})") from None
    if arr.ndim == 2 and mode == "1":
        arr = (arr > 0).astype(np.uint8)
    return (arr, palette) if return_palette else arr
