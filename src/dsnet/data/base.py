"""The dataset base class (the one constructor, pairing images with labels by name, loading, seeding); a
dataset module adds only its metadata and file rules (the label space is :mod:`dsnet.data.label_space`).

Every dataset yields ``(image, label)``: with a transform, a float32 tensor (3, H, W) and an int64 tensor
(H, W); without one, the RGB uint8 (H, W, 3) image and the uint8 (H, W) label as NumPy arrays. Labels
hold training ids ``0..num_classes-1`` and 255 for ignored pixels.

Augmentation randomness is derived from ``(seed, epoch, index)`` only (see :meth:`SegmentationDataset.rng`),
so a sample is identical whatever the number of DataLoader workers and a resumed run replays exactly the
same augmentations. Call :meth:`~SegmentationDataset.set_epoch` before each epoch, or index the dataset
with ``(index, epoch)`` keys (needed with persistent workers, whose dataset copies never see ``set_epoch``).

Bad data raises :class:`~dsnet.errors.DataError` naming the file. With ``on_bad_sample="skip"``,
``dataset[i]`` logs a warning and deterministically serves the next valid sample (fine for training);
:meth:`~SegmentationDataset.load_sample` never substitutes (evaluation must not count an image twice).
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError
from .io import PathLike, read_image, read_label
from .label_space import LabelSpace
from .labels import decode_index_label

__all__ = [
    "IMAGE_EXTENSIONS",
    "FolderSpec",
    "SegmentationDataset",
    "Transform",
    "check_split",
    "pair_folders",
]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

Transform = Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[torch.Tensor, torch.Tensor]]
Sample = tuple[Any, Any]


# --------------------------------------------------------------------------------------------------
# listing and pairing files


def _require_dir(path: Path, what: str) -> Path:
    """``path`` if it is a folder, else a DataError saying which folder (``what``) is missing."""
    if not path.is_dir():
        raise DataError(f"{path}: {what} folder not found")
    return path


def check_split(split: str, valid: Sequence[str], dataset: str) -> None:
    if split not in valid:
        raise ValueError(f"{dataset}: unknown split {split!r}; valid splits: {', '.join(valid)}")


@dataclass(frozen=True)
class FolderSpec:
    """One side (images or labels) of a pairing: which files of ``folder`` count, and their sample key.

    A file counts when its name ends with one of ``endings`` (case-insensitive); its key is its path
    relative to ``folder`` without that ending and without a trailing ``marker`` (CamVid's ``_L``).
    ``depth=1`` lists the files of the subfolders instead (Cityscapes' cities).
    """

    folder: Path
    what: str
    endings: tuple[str, ...] = IMAGE_EXTENSIONS
    depth: int = 0
    marker: str = ""

    def key(self, path: Path) -> str | None:
        rel = path.relative_to(self.folder).as_posix()
        lower = rel.lower()
        for ending in self.endings:
            if lower.endswith(ending.lower()):
                key = rel[: -len(ending)]
                return key[: -len(self.marker)] if self.marker and key.endswith(self.marker) else key
        return None

    def index(self) -> dict[str, Path]:
        """Key -> file; two files with the same key are a DataError (the pairing would be ambiguous)."""
        _require_dir(self.folder, self.what)
        out: dict[str, Path] = {}
        for path in sorted(self.folder.glob("/".join(["*"] * (self.depth + 1)))):
            key = self.key(path)
            if key is None or not path.is_file():
                continue
            if key in out:
                raise DataError(
                    f"{path}: two files in {self.folder} map to the same sample name {key!r} (other: {out[key]})"
                )
            out[key] = path
        return out

    def expected(self, key: str) -> str:
        """Where the partner of an unpaired file was looked for (exact name when there is one ending)."""
        if len(self.endings) == 1:
            return str(self.folder / f"{key}{self.marker}{self.endings[0]}")
        return f"a file named {key!r} in {self.folder}"


def pair_folders(images: FolderSpec, labels: FolderSpec, on_bad_sample: str) -> list[tuple[Path, Path]]:
    """List both folders, key their files and join them on the key, sorted by key.

    Unpaired files raise DataError (``on_bad_sample="error"``) or are logged and dropped (``"skip"``).
    """
    image_files, label_files = images.index(), labels.index()
    problems = [
        f"{image_files[k]}: image without label (expected {labels.expected(k)})"
        for k in sorted(set(image_files) - set(label_files))
    ]
    problems += [
        f"{label_files[k]}: label without image (expected {images.expected(k)})"
        for k in sorted(set(label_files) - set(image_files))
    ]
    if problems:
        if on_bad_sample == "error":
            more = f" (and {len(problems) - 1} more unpaired files)" if len(problems) > 1 else ""
            raise DataError(problems[0] + more)
        for p in problems:
            log.warning("dropping unpaired file: %s", p)
    return [(image_files[k], label_files[k]) for k in sorted(set(image_files) & set(label_files))]


# --------------------------------------------------------------------------------------------------
# base class


class SegmentationDataset(Dataset):
    """Base class: a dataset is its metadata and file rules; listing, pairing, decoding and seeding live here.

    A subclass declares ``NAME`` (in messages), ``SPLITS`` (and ``SPLIT_ALIASES``, ``DEFAULT_SPLIT``), its
    label space (``LABEL_SPACE``, or :meth:`describe` where options or files change it), ``label_lut``
    (index labels, see :func:`~dsnet.data.labels.make_lut`) or :meth:`decode_label`, and where its files
    are: :meth:`folders` (an image and a label folder paired by name), or :meth:`list_samples` for other
    rules. :meth:`open_root`, :meth:`check_split` and :meth:`check_options` adapt the rest.
    """

    NAME: ClassVar[str] = "dataset"
    SPLITS: ClassVar[tuple[str, ...]] = ()
    SPLIT_ALIASES: ClassVar[Mapping[str, str]] = {}
    DEFAULT_SPLIT: ClassVar[str | None] = "train"
    LABEL_SPACE: ClassVar[LabelSpace | None] = None
    label_lut: np.ndarray | None = None

    @classmethod
    def describe(cls, root: PathLike | None = None, **options: Any) -> LabelSpace | None:
        """The label space of this dataset with these constructor ``options``, without listing its files.

        What inference falls back on for weights that name only their dataset, and what ``--dataset``
        means. ``root`` matters only for datasets described by a file in it (a folder dataset's YAML);
        None where the description cannot be known without it. Options that do not change the label
        space are ignored (the constructor checks them).
        """
        if cls.LABEL_SPACE is None:
            raise NotImplementedError(f"{cls.__name__} must set LABEL_SPACE or implement describe()")
        return cls.LABEL_SPACE

    def __init__(
        self,
        root: PathLike,
        split: str | None = None,
        transform: Transform | None = None,
        seed: int = 0,
        on_bad_sample: str = "error",
    ) -> None:
        if on_bad_sample not in ("error", "skip"):
            raise ValueError(f"on_bad_sample must be 'error' or 'skip', got {on_bad_sample!r}")
        seed = operator.index(seed)
        if seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self.root = self.open_root(Path(root))
        self.split = self.check_split(self.DEFAULT_SPLIT if split is None else split)
        self.check_options()
        samples, source = self.list_samples(on_bad_sample)
        self.samples: list[tuple[Path, Path]] = [(Path(i), Path(t)) for i, t in samples]
        self.label_space = self.own_label_space()
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        self.on_bad_sample = on_bad_sample
        self._bad: dict[int, str] = {}
        if not self.samples:
            raise DataError(f"{source}: empty dataset (no samples found)")

    # ---- the file rules a subclass adapts
    def open_root(self, root: Path) -> Path:
        """The dataset folder for ``root`` as the user gave it (some datasets accept the folder above)."""
        return root

    def check_split(self, split: str | None) -> str | None:
        """The split's canonical name (aliases resolved); a ValueError names the valid ones."""
        split = self.SPLIT_ALIASES.get(split, split) if split is not None else None
        check_split(split, self.SPLITS + tuple(self.SPLIT_ALIASES), self.NAME)  # type: ignore[arg-type]
        return split

    def check_options(self) -> None:
        """Check the subclass's own constructor options (set before ``super().__init__``), after the split."""

    def folders(self) -> tuple[FolderSpec, FolderSpec]:
        """The image and label folders of ``self.split``, paired by name by :meth:`list_samples`."""
        raise NotImplementedError(f"{type(self).__name__} must implement folders() or list_samples()")

    def list_samples(self, on_bad_sample: str) -> tuple[list[tuple[Path, Path]], PathLike]:
        """The ``(image, label)`` pairs of ``self.split``, and where they were found (named in messages)."""
        images, labels = self.folders()
        return pair_folders(images, labels, on_bad_sample), images.folder

    def own_label_space(self) -> LabelSpace:
        """The label space of this instance (its root and options)."""
        space = self.describe(self.root)
        if space is None:
            raise NotImplementedError(f"{type(self).__name__} must implement own_label_space()")
        return space

    # ---- basics
    @property
    def num_classes(self) -> int:
        return self.label_space.num_classes

    def __len__(self) -> int:
        return len(self.samples)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n={len(self)}, classes={self.num_classes}, transform={self.transform!r}, "
            f"seed={self.seed}, epoch={self.epoch}, on_bad_sample={self.on_bad_sample!r})"
        )

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of ``epoch`` (call before iterating over each epoch)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def rng(self, index: int, epoch: int | None = None) -> np.random.Generator:
        """The generator of sample ``index`` at ``epoch``: a pure function of ``(seed, epoch, index)``."""
        epoch = self.epoch if epoch is None else epoch
        return np.random.default_rng(np.random.SeedSequence((self.seed, int(epoch), int(index), 0x5E6)))

    def _check_index(self, index: int) -> int:
        index = operator.index(index)
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for {n} samples")
        return index

    # ---- loading
    def read_label(self, path: Path) -> np.ndarray:
        return read_label(path)  # type: ignore[return-value]

    def decode_label(self, raw: np.ndarray, path: Path) -> np.ndarray:
        if self.label_lut is None:
            raise NotImplementedError(f"{type(self).__name__} must set label_lut or override decode_label")
        return decode_index_label(raw, self.label_lut, path)

    def load_pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Read and validate sample ``index``: (RGB uint8 (H, W, 3), uint8 (H, W) training ids / 255)."""
        image_path, label_path = self.samples[index]
        image = read_image(image_path)
        label = self.decode_label(self.read_label(label_path), label_path)
        if label.shape != image.shape[:2]:
            raise DataError(
                f"{label_path}: label size {label.shape[1]}x{label.shape[0]} (WxH) does not match "
                f"image {image_path} size {image.shape[1]}x{image.shape[0]}"
            )
        return image, label

    def _apply(self, pair: tuple[np.ndarray, np.ndarray], index: int, epoch: int | None) -> Sample:
        if self.transform is None:
            return pair
        return self.transform(*pair, self.rng(index, epoch))

    def load_sample(self, index: int, epoch: int | None = None) -> Sample:
        """Sample ``index`` (transformed with its ``(seed, epoch, index)`` stream), or DataError if it is bad.

        Never serves another sample in its place, whatever ``on_bad_sample`` says: an evaluator calls this
        and drops the bad ones, so no image counts twice.
        """
        index = self._check_index(index)
        return self._apply(self.load_pair(index), index, epoch)

    def _substitute(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The next valid pair after bad sample ``index`` (skip mode), remembering the bad ones."""
        n = len(self)
        for k in range(1, n):
            j = (index + k) % n
            if j in self._bad:
                continue
            try:
                return self.load_pair(j)
            except DataError as e:
                self._bad[j] = str(e)
                log.warning("skipping bad sample %d of %s: %s", j, type(self).__name__, e)
        raise DataError(f"{type(self).__name__}: no valid sample left (all {n} samples are bad)")

    def __getitem__(self, key: int | tuple[int, int]) -> Sample:
        """``dataset[i]`` or ``dataset[(i, epoch)]``; in skip mode a bad sample is replaced by the next valid
        one, transformed with the stream of ``i`` so the result stays deterministic."""
        index, epoch = (key[0], operator.index(key[1])) if isinstance(key, tuple) else (key, None)
        index = self._check_index(index)
        if self.on_bad_sample == "error":
            return self.load_sample(index, epoch)
        if index not in self._bad:
            try:
                return self.load_sample(index, epoch)
            except DataError as e:
                self._bad[index] = str(e)
                log.warning("skipping bad sample %d of %s: %s", index, type(self).__name__, e)
        return self._apply(self._substitute(index), index, epoch)

    def verify(self) -> list[tuple[int, str]]:
        """Load every sample; return ``[(index, problem)]`` for the bad ones (empty list = all good)."""
        problems = []
        for i in range(len(self)):
            try:
                self.load_pair(i)
            except DataError as e:
                problems.append((i, str(e)))
        return problems
