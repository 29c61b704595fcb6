"""ImageNet-1k in the ImageFolder layout (``ROOT/<split>/<wnid>/<image>``), labelled by the fixed class index.

Labels come from the standard ILSVRC-2012 index shipped with the package (the 1000 sorted wnids,
``resources/imagenet_classes.tsv``), never from which folders happen to be present: a subset of the
classes keeps the standard ids, so a model trained on it has the same output layout as on the full
set. A folder that is not a wnid of the index is an error naming it.

Images are decoded with PIL and converted to RGB, so grayscale ('L') and CMYK JPEGs (both occur
in ImageNet) load like any other. Like the segmentation datasets, each sample's augmentation is
drawn from a generator that depends only on ``(seed, epoch, index)``, so results do not depend on
the number of workers and a resumed run replays the same augmentations; index with
``dataset[(index, epoch)]``.
"""

from __future__ import annotations

import functools
import logging
import operator
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from ..errors import DataError
from .base import IMAGE_EXTENSIONS

__all__ = ["ImageNetClass", "imagenet_classes", "ImageNetFolder", "read_rgb", "ClassifyTransform"]

log = logging.getLogger(__name__)

#: ``transform(pil_rgb_image, rng) -> tensor``
ClassifyTransform = Callable[[Image.Image, np.random.Generator], Any]


@dataclass(frozen=True)
class ImageNetClass:
    index: int
    wnid: str
    name: str  # short label, e.g. "tench"
    lemmas: str  # WordNet lemmas, e.g. "tench, Tinca tinca"


@functools.lru_cache(maxsize=1)
def imagenet_classes() -> tuple[ImageNetClass, ...]:
    """The 1000 ImageNet-1k classes in the standard order (index = position of the sorted wnid)."""
    text = resources.files("dsnet.data.resources").joinpath("imagenet_classes.tsv").read_text(encoding="utf-8")
    rows = [line.split("\t") for line in text.splitlines()[1:] if line.strip()]
    classes = tuple(ImageNetClass(int(r[0]), r[1], r[2], r[3]) for r in rows)
    if [c.index for c in classes] != list(range(1000)) or [c.wnid for c in classes] != sorted(c.wnid for c in classes):
        raise DataError("the packaged ImageNet class index is damaged (expected 1000 sorted wnids)")
    return classes


def read_rgb(path: str | os.PathLike, draft_size: tuple[int, int] | None = None) -> Image.Image:
    """Decode an image to an RGB PIL image (grayscale, CMYK, palette and alpha images converted).

    ``draft_size`` (W, H) lets the JPEG decoder downscale by a power of two while decoding, never
    below that size (a large speed-up for evaluation, which resizes anyway).
    """
    try:
        with Image.open(path) as im:
            if draft_size is not None and im.format == "JPEG":
                im.draft("RGB", draft_size)
            return im.convert("RGB")  # convert() loads the pixels, so the file can close
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: unreadable or corrupt image ({e})") from None


class ImageNetFolder(Dataset):
    """``ROOT/<split>/<wnid>/*.JPEG`` (``split=''`` or ``'.'``: the class folders are in ROOT itself).

    Yields ``(transform(image, rng), label)`` or, without a transform, ``(PIL RGB image, label)``.
    ``on_bad_sample='skip'`` serves the next readable image in place of an unreadable one (training);
    ``'error'`` raises :class:`DataError` naming the file.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        transform: ClassifyTransform | None = None,
        *,
        seed: int = 0,
        on_bad_sample: str = "error",
        draft_size: tuple[int, int] | None = None,
    ) -> None:
        if on_bad_sample not in ("error", "skip"):
            raise ValueError(f"on_bad_sample must be 'error' or 'skip', got {on_bad_sample!r}")
        self.root = Path(root)
        self.split = split
        self.folder = self.root / split if split not in ("", ".") else self.root
        self.transform = transform
        self.seed = int(seed)
        self.on_bad_sample = on_bad_sample
        self.draft_size = draft_size
        self.classes = imagenet_classes()
        self.samples = self._scan()

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    def _scan(self) -> list[tuple[str, int]]:
        if not self.folder.is_dir():
            raise DataError(f"{self.folder}: ImageNet {self.split or 'root'} folder not found")
        index = {c.wnid: c.index for c in self.classes}
        samples: list[tuple[str, int]] = []
        for sub in sorted(p for p in self.folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if sub.name not in index:
                raise DataError(
                    f"{sub}: folder name is not an ImageNet-1k wnid (expected class folders such as n01440764)"
                )
            files = sorted(f for f in sub.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file())
            samples.extend((str(f), index[sub.name]) for f in files)
        if not samples:
            raise DataError(f"{self.folder}: no images found in <wnid>/ class folders")
        return samples

    def __len__(self) -> int:
        return len(self.samples)

    def rng(self, index: int, epoch: int = 0) -> np.random.Generator:
        """The generator of sample ``index`` at ``epoch``: a pure function of ``(seed, epoch, index)``."""
        return np.random.default_rng(np.random.SeedSequence((self.seed, int(epoch), int(index), 0x1A6E)))

    def load(self, index: int, epoch: int = 0) -> tuple[Any, int]:
        """Sample ``index`` without substitution (evaluation counts every image once)."""
        path, label = self.samples[index]
        image = read_rgb(path, self.draft_size)
        if self.transform is None:
            return image, label
        return self.transform(image, self.rng(index, epoch)), label

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Any, int]:
        index, epoch = (operator.index(key[0]), operator.index(key[1])) if isinstance(key, tuple) else (key, 0)
        if not 0 <= index < len(self.samples):
            raise IndexError(f"index {index} out of range for {len(self.samples)} images")
        if self.on_bad_sample == "error":
            return self.load(index, epoch)
        for step in range(len(self.samples)):
            candidate = (index + step) % len(self.samples)
            try:
                image = read_rgb(self.samples[candidate][0], self.draft_size)
            except DataError as e:
                log.warning("skipping bad sample: %s", e)
                continue
            label = self.samples[candidate][1]
            out = image if self.transform is None else self.transform(image, self.rng(index, epoch))
            return out, label
        raise DataError(f"{self.folder}: no readable image left")

    def __repr__(self) -> str:
        return f"ImageNetFolder({str(self.folder)!r}, {len(self)} images, seed={self.seed})"
