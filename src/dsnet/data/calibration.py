"""Calibration images for post-training quantization: real training images at the deploy size.

INT8 activation ranges are measured on what the network will see, so the images are resized the way
deployment feeds them: scaled (aspect ratio kept) until they cover the export size, then centre-cropped.
Which images: a folder (searched recursively), a glob pattern, or a text file listing image paths; a
seeded random subset of ``count`` of them, so a calibration can be repeated exactly.
"""

from __future__ import annotations

import glob
import os
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from ..constants import IMAGENET_MEAN, IMAGENET_STD
from ..errors import DataError
from .io import read_image
from .transforms import normalize

__all__ = ["IMAGE_SUFFIXES", "find_images", "cover_and_crop", "CalibrationSet"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def find_images(source: str | os.PathLike) -> list[Path]:
    """The image files of ``source`` (folder, glob pattern or list file), sorted; DataError if none."""
    text = os.fspath(source)
    path = Path(text)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and _is_image(p))
    elif path.is_file() and path.suffix.lower() == ".txt":
        lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        files = [p if p.is_absolute() else path.parent / p for p in map(Path, lines)]
        missing = [str(p) for p in files if not p.is_file()]
        if missing:
            raise DataError(f"{path}: {len(missing)} listed image(s) do not exist, e.g. {missing[0]}")
    elif path.is_file():
        files = [path]
    elif glob.has_magic(text):
        files = sorted(Path(p) for p in glob.glob(text, recursive=True) if _is_image(Path(p)))
    else:
        raise DataError(f"{text}: no such file or folder")
    if not files:
        raise DataError(f"{text}: no images found ({', '.join(IMAGE_SUFFIXES)})")
    return files


def cover_and_crop(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize ``image`` (H, W, 3) keeping its aspect ratio until it covers ``size``, then centre-crop."""
    h, w = image.shape[:2]
    th, tw = size
    scale = max(th / h, tw / w)
    nh, nw = max(th, round(h * scale)), max(tw, round(w * scale))
    if (nh, nw) != (h, w):
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, (nw, nh), interpolation=interp)
    top, left = (nh - th) // 2, (nw - tw) // 2
    return image[top : top + th, left : left + tw]


class CalibrationSet:
    """Up to ``count`` images of ``source`` as normalised float32 batches ``(1, 3, H, W)`` at ``size``
    (None: the first image's own size, rounded down to a multiple of ``multiple``).

    ``source`` is a folder, glob or list file (see :func:`find_images`) or a sequence of image paths.
    The subset is drawn with ``seed``. Iterable many times (quantizers make several passes), reading one
    image at a time, so hundreds of full-size calibration images never sit in memory together.
    """

    def __init__(
        self,
        source: str | os.PathLike | Sequence[str | os.PathLike],
        size: tuple[int, int] | None,
        *,
        count: int = 300,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        seed: int = 0,
        multiple: int = 8,
    ) -> None:
        if count < 1:
            raise DataError(f"calibration count {count}: must be at least 1")
        if isinstance(source, (str, os.PathLike)):
            files = find_images(source)
        else:
            files = [Path(p) for p in source]
            if not files:
                raise DataError("no calibration images given")
        if len(files) > count:
            files = sorted(random.Random(seed).sample(files, count))
        self.files = files
        if size is None:
            h, w = read_image(files[0]).shape[:2]
            size = (max(multiple, h // multiple * multiple), max(multiple, w // multiple * multiple))
        self.size = (int(size[0]), int(size[1]))
        self.mean, self.std = tuple(mean), tuple(std)

    def __len__(self) -> int:
        return len(self.files)

    def __iter__(self) -> Iterator[np.ndarray]:
        for path in self.files:
            image = cover_and_crop(read_image(path), self.size)
            yield np.ascontiguousarray(normalize(image, self.mean, self.std).transpose(2, 0, 1)[None])
