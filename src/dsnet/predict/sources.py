"""Inputs of a prediction: one image as RGB uint8, and the files a command line names.

Command-line inputs are image files, folders (searched recursively, hidden entries skipped), glob
patterns (``**`` allowed; like folders they yield only image and video suffixes) or video files.
Each file gets a relative name for its outputs: its path relative to the deepest folder that holds
every input (a folder argument counts as that folder, a file as its parent), so a tree is mirrored
and two files with one name in different folders never share an output. A missing path or a glob
that matches nothing is an error before any work starts.
"""

from __future__ import annotations

import glob
import logging
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from ..data.io import PathLike, read_image
from ..errors import DataError

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "InputFile",
    "ImageLike",
    "discover_inputs",
    "read_video",
    "to_rgb",
    "video_frame_count",
]

ImageLike = np.ndarray | PathLike | Image.Image

logger = logging.getLogger("dsnet")

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"})


def to_rgb(image: ImageLike) -> np.ndarray:
    """RGB uint8 ``(H, W, 3)`` from an array of that form, a PIL image or an image file.

    One decoding rule for every input type, so that a file, its PIL image and its array give one
    result: 16-bit values become 8-bit by their high byte (``>> 8``), as OpenCV reads a 16-bit file.
    That covers 16-bit PIL images (modes ``I;16*``, and ``I``, which older Pillow gives for 16-bit
    greyscale files; PIL's own conversion would clip them to 255) and ``uint16`` arrays. Files and PIL
    images are turned upright by their EXIF orientation, as photo viewers show them, so the label map
    has the displayed orientation and size (arrays carry no EXIF: they are taken as they are).
    """
    if isinstance(image, Image.Image):
        image = ImageOps.exif_transpose(image)
        if image.mode.startswith("I"):  # 16-bit greyscale
            grey = (np.clip(np.asarray(image).astype(np.int64), 0, 65535) >> 8).astype(np.uint8)
            return np.repeat(grey[:, :, None], 3, axis=2)
        return np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        if image.dtype not in (np.uint8, np.uint16) or image.ndim != 3 or image.shape[2] != 3:
            raise DataError(f"image array: expected RGB uint8 (or uint16) (H, W, 3), got {image.dtype} {image.shape}")
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise DataError(f"image array: empty image of shape {image.shape}")
        return (image >> 8).astype(np.uint8) if image.dtype == np.uint16 else image
    if isinstance(image, (str, os.PathLike)):
        return read_image(image, upright=True)
    raise DataError(f"image: expected an array, a PIL image or a path, got {type(image).__name__}")


@dataclass(frozen=True)
class InputFile:
    """One input file and the relative path (without suffix) its outputs are named after."""

    path: Path
    rel: Path
    is_video: bool


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _is_media(path: Path) -> bool:
    """An image or video file by its suffix."""
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS


class _Search:
    """Folder and glob searches for inputs, leaving out (and counting) the files under ``exclude``:
    the output folder, whose files are outputs of this or an earlier run."""

    def __init__(self, exclude: Path | None) -> None:
        self.exclude = exclude
        self.left_out = 0

    def wanted(self, path: Path) -> bool:
        if not _is_media(path):
            return False
        if self.exclude is not None and path.resolve().is_relative_to(self.exclude):
            self.left_out += 1
            return False
        return True

    def folder_files(self, folder: Path) -> list[Path]:
        return [p for p in sorted(folder.rglob("*")) if not _is_hidden(p, folder) and self.wanted(p)]


def _expand(arg: str, search: _Search) -> tuple[list[Path], Path]:
    """The files an argument names and the folder its names are relative to."""
    path = Path(arg)
    if path.is_dir():
        return search.folder_files(path), path
    if path.is_file():
        return [path], path.parent
    if glob.has_magic(arg):
        files: list[Path] = []
        for match in sorted(glob.glob(arg, recursive=True)):
            m = Path(match)
            if m.is_dir():
                files += search.folder_files(m)
            elif search.wanted(m):
                files.append(m)
        if not files:
            raise DataError(f"{arg}: the pattern matches no file{_left_out(search)}")
        return files, Path(os.path.commonpath([str(f.resolve().parent) for f in files]))
    raise DataError(f"{arg}: no such file or folder")


def _unique_names(files: list[Path], base: Path) -> list[Path]:
    """Relative output names without suffix, unique by construction.

    A file is named by its stem (``a``); files whose names clash keep their suffix (``a_jpg``); a name
    that still clashes (``a.jpg`` beside ``a_jpg.png``, or ``x.y.png`` beside ``x_y.png``) gets a number
    (``a_jpg-2``) that no other output has.
    """
    rels = [f.relative_to(base) for f in files]
    options = [(r.with_suffix(""), r.with_name(r.name.replace(".", "_"))) for r in rels]
    level = [0] * len(rels)
    while True:  # each pass moves every file of a clash to its longer name, until none clashes or none can
        names = [options[i][level[i]] for i in range(len(rels))]
        counts = Counter(names)
        bump = [i for i, n in enumerate(names) if level[i] == 0 and counts[n] > 1]
        if not bump:
            break
        for i in bump:
            level[i] = 1
    taken = set(names)
    seen: set[Path] = set()
    for i, name in enumerate(names):
        if name in seen:
            k = 2
            while name.with_name(f"{name.name}-{k}") in taken:
                k += 1
            names[i] = name.with_name(f"{name.name}-{k}")
            taken.add(names[i])
        seen.add(names[i])
    return names


def _left_out(search: _Search) -> str:
    if not search.left_out:
        return ""
    return (
        f" outside the output folder {search.exclude} ({search.left_out} image/video file(s) inside it were left out: "
        "files under -o are taken for outputs of this or an earlier run); move them or choose another -o"
    )


def discover_inputs(args: Sequence[str], exclude: PathLike | None = None) -> list[InputFile]:
    """The input files named by ``args`` (files, folders, globs), each once, with unique output names.

    Files under ``exclude`` (the output folder) are left out of folder and glob searches.
    """
    if not args:
        raise DataError("no inputs given")
    search = _Search(Path(exclude).resolve() if exclude is not None else None)
    found: dict[Path, None] = {}
    bases = []
    for arg in args:
        files, base = _expand(arg, search)
        bases.append(base.resolve())
        for f in files:
            found.setdefault(f.resolve(), None)
    if not found:
        raise DataError(f"{', '.join(args)}: no image or video files found{_left_out(search)}")
    if search.left_out:
        logger.warning(
            "%d image/video file(s) inside the output folder %s were left out (taken for earlier outputs)",
            search.left_out,
            search.exclude,
        )
    files = list(found)
    base = Path(os.path.commonpath([str(b) for b in bases] + [str(f.parent) for f in files]))
    rels = _unique_names(files, base)
    return [InputFile(f, r, f.suffix.lower() in VIDEO_EXTENSIONS) for f, r in zip(files, rels)]


def _open_video(path: Path) -> cv2.VideoCapture:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise DataError(f"{path}: unreadable video (OpenCV could not open it)")
    return cap


def video_frame_count(path: PathLike) -> int:
    """The frame count the container reports (0 if unknown or unreadable), for progress bars."""
    cap = cv2.VideoCapture(str(path))
    try:
        return max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
    finally:
        cap.release()


def read_video(path: PathLike) -> tuple[float, Iterator[np.ndarray]]:
    """The frame rate (25 if unknown) and an iterator of RGB uint8 frames of a video file.

    A video from which not a single frame decodes is a DataError naming it.
    """
    path = Path(path)
    cap = _open_video(path)
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = float(fps) if fps and fps > 0 else 25.0

    def frames() -> Iterator[np.ndarray]:
        n = 0
        try:
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                n += 1
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        finally:
            cap.release()
        if n == 0:
            raise DataError(f"{path}: no frame could be decoded from the video")

    return fps, frames()
