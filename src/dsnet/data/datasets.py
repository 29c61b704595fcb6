"""Segmentation datasets: Cityscapes, ADE20K, BDD100K, CamVid and user folders, plus a registry.

Every dataset yields ``(image, label)``: with a transform, a float32 tensor (3, H, W) and an int64 tensor
(H, W); without one, the RGB uint8 (H, W, 3) image and the uint8 (H, W) label as NumPy arrays. Labels
hold training ids ``0..num_classes-1`` and 255 for ignored pixels.

Augmentation randomness is derived from ``(seed, epoch, index)`` only (see
:meth:`SegmentationDataset.rng`), so a sample is identical whatever the number of DataLoader workers
and a resumed run replays exactly the same augmentations. Call :meth:`~SegmentationDataset.set_epoch`
before each epoch, or wrap the sampler in :class:`EpochIndexSampler` (required with
``persistent_workers=True``, whose worker copies of the dataset never see ``set_epoch``).

Bad data raises :class:`DataError` naming the file; ``on_bad_sample="skip"`` logs a warning instead and
deterministically serves the next valid sample.
"""

from __future__ import annotations

import csv
import inspect
import logging
import operator
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import yaml
from PIL import Image
from torch.utils.data import Dataset, Sampler

from .palettes import (
    ADE20K_CLASSES,
    ADE20K_PALETTE,
    CAMVID_CLASSES,
    CAMVID_DSNET_ORDER,
    CAMVID_PALETTE,
    CITYSCAPES_CLASSES,
    CITYSCAPES_LABEL_TO_TRAIN,
    CITYSCAPES_PALETTE,
    ColorCodec,
    camvid_color_codec,
    cityscapes_color_codec,
    generate_palette,
)
from .transforms import configure_worker_threads

log = logging.getLogger(__name__)

IGNORE_INDEX = 255
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

Transform = Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[torch.Tensor, torch.Tensor]]
PathLike = str | os.PathLike


class DataError(ValueError):
    """A problem with the data on disk; the message starts with the offending file or folder."""


@dataclass(frozen=True)
class DatasetInfo:
    """Static description of a dataset's label space."""

    name: str
    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    ignore_index: int = IGNORE_INDEX

    def __post_init__(self) -> None:
        if len(self.palette) != len(self.classes):
            raise ValueError(f"{self.name}: {len(self.classes)} classes but {len(self.palette)} palette colours")

    @property
    def num_classes(self) -> int:
        return len(self.classes)


# --------------------------------------------------------------------------------------------------
# file reading and label decoding


def read_image(path: PathLike) -> np.ndarray:
    """Read an image as RGB uint8 (H, W, 3) with OpenCV (grayscale -> RGB, alpha dropped).

    EXIF orientation is ignored on purpose: labels are stored in raw pixel order, so rotating the image
    would misalign it with its label.
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
            image = cv2.imdecode(buf, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        except cv2.error:
            image = None
    if image is None:
        raise DataError(f"{path}: unreadable or corrupt image (OpenCV could not decode it)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_label(path: PathLike, as_color: bool = False, return_palette: bool = False):
    """Read a label PNG with PIL.

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
                raw_palette = im.getpalette() or []
                palette = np.zeros((256, 3), np.uint8)
                n = min(len(raw_palette), 768) // 3
                palette[:n] = np.asarray(raw_palette[: 3 * n], np.uint8).reshape(n, 3)
            if as_color:
                if mode != "RGB":
                    im = im.convert("RGB")
            elif mode in ("RGBA", "CMYK", "YCbCr", "LAB", "HSV", "PA"):
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


def make_lut(mapping: Mapping[int, int]) -> np.ndarray:
    """A 256-entry int16 lookup table raw value -> training id; values absent from ``mapping`` are -1 (invalid)."""
    lut = np.full(256, -1, np.int16)
    for raw, train_id in mapping.items():
        if not 0 <= raw <= 255 or not 0 <= train_id <= 255:
            raise ValueError(f"lookup table entries must be in 0..255, got {raw} -> {train_id}")
        lut[raw] = train_id
    return lut


def _describe_values(values: Sequence[int]) -> str:
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
            bad = values[(values < 0) | (values > 255)]
            valid = np.flatnonzero(lut >= 0)
            raise DataError(
                f"{path}: label values {_preview(bad.tolist())} are outside the valid values "
                f"{_describe_values(valid.tolist())}"
            )
        raw = raw.astype(np.uint8)
    raw = np.ascontiguousarray(raw)
    present = np.flatnonzero(cv2.calcHist([raw], [0], None, [256], [0, 256]).ravel())
    bad = present[lut[present] < 0]
    if bad.size:
        valid = np.flatnonzero(lut >= 0)
        raise DataError(
            f"{path}: label values {_preview(bad.tolist())} are outside the valid values "
            f"{_describe_values(valid.tolist())}"
        )
    if np.array_equal(lut[present], present):
        return raw  # identity on the values present: no copy needed
    return cv2.LUT(raw, lut.clip(0, 255).astype(np.uint8))


def _preview(items: Sequence[Any], n: int = 10) -> str:
    items = list(items)
    text = ", ".join(str(v) for v in items[:n])
    return f"[{text}{', ...' if len(items) > n else ''}]"


# --------------------------------------------------------------------------------------------------
# base class


_worker_pid_configured: int | None = None


def _configure_worker_once() -> None:
    global _worker_pid_configured
    pid = os.getpid()
    if _worker_pid_configured != pid and torch.utils.data.get_worker_info() is not None:
        configure_worker_threads()
        _worker_pid_configured = pid


class SegmentationDataset(Dataset):
    """Base class: a list of ``(image_path, label_path)`` pairs, label decoding, validation and seeding.

    Subclasses set ``self.info`` and either ``self.label_lut`` (index labels, see :func:`make_lut`) or
    override :meth:`decode_label`.
    """

    label_lut: np.ndarray | None = None

    def __init__(
        self,
        samples: Sequence[tuple[PathLike, PathLike]],
        info: DatasetInfo,
        transform: Transform | None = None,
        seed: int = 0,
        on_bad_sample: str = "error",
        source: PathLike | None = None,
    ) -> None:
        if on_bad_sample not in ("error", "skip"):
            raise ValueError(f"on_bad_sample must be 'error' or 'skip', got {on_bad_sample!r}")
        seed = operator.index(seed)
        if seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self.samples: list[tuple[Path, Path]] = [(Path(i), Path(t)) for i, t in samples]
        self.info = info
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        self.on_bad_sample = on_bad_sample
        self._bad: dict[int, str] = {}
        if not self.samples:
            where = source if source is not None else type(self).__name__
            raise DataError(f"{where}: empty dataset (no samples found)")

    # ---- basics
    @property
    def num_classes(self) -> int:
        return self.info.num_classes

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

    # ---- loading
    def read_label(self, path: Path) -> np.ndarray:
        return read_label(path)

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

    def _load_valid(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if self.on_bad_sample == "error":
            return self.load_pair(index)
        n = len(self)
        for k in range(n):
            j = (index + k) % n
            if j in self._bad:
                continue
            try:
                return self.load_pair(j)
            except DataError as e:
                self._bad[j] = str(e)
                log.warning("skipping bad sample %d of %s: %s", j, type(self).__name__, e)
        raise DataError(f"{type(self).__name__}: no valid sample left (all {n} samples are bad)")

    def __getitem__(self, key: int | tuple[int, int]):
        """``dataset[i]`` or ``dataset[(i, epoch)]`` (the form :class:`EpochIndexSampler` yields)."""
        if isinstance(key, tuple):
            index, epoch = operator.index(key[0]), operator.index(key[1])
        else:
            index, epoch = operator.index(key), self.epoch
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for {n} samples")
        _configure_worker_once()
        image, label = self._load_valid(index)
        if self.transform is None:
            return image, label
        return self.transform(image, label, self.rng(index, epoch))

    def verify(self) -> list[tuple[int, str]]:
        """Load every sample; return ``[(index, problem)]`` for the bad ones (empty list = all good)."""
        problems = []
        for i in range(len(self)):
            try:
                self.load_pair(i)
            except DataError as e:
                problems.append((i, str(e)))
        return problems


class EpochIndexSampler(Sampler):
    """Wrap a sampler so that it yields ``(index, epoch)``: the epoch travels with each index.

    Needed with ``persistent_workers=True``, where ``dataset.set_epoch`` in the main process does not
    reach the workers' copies. ``set_epoch`` is forwarded to the wrapped sampler when it has one
    (e.g. ``DistributedSampler``).
    """

    def __init__(self, sampler: Sampler | Sequence[int], epoch: int = 0) -> None:
        self.sampler = sampler
        self.epoch = epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        for i in self.sampler:
            yield int(i), epoch

    def __len__(self) -> int:
        return len(self.sampler)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# listing helpers


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DataError(f"{path}: {what} folder not found")
    return path


def _check_split(split: str, valid: Sequence[str], dataset: str) -> None:
    if split not in valid:
        raise ValueError(f"{dataset}: unknown split {split!r}; valid splits: {', '.join(valid)}")


def _index_by_key(files: Sequence[Path], key: Callable[[Path], str], folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for f in files:
        k = key(f)
        if k in out:
            raise DataError(f"{f}: two files in {folder} map to the same sample name {k!r} (other: {out[k]})")
        out[k] = f
    return out


def _pair_up(
    images: Mapping[str, Path],
    labels: Mapping[str, Path],
    on_bad_sample: str,
    image_dir: Path,
    label_dir: Path,
    expected_label: Callable[[str], Path] | None = None,
    expected_image: Callable[[str], Path] | None = None,
) -> list[tuple[Path, Path]]:
    """Join images and labels on their key; unpaired files raise DataError (or are logged and dropped)."""
    problems: list[str] = []
    for k in sorted(set(images) - set(labels)):
        where = expected_label(k) if expected_label else f"a label named {k!r} in {label_dir}"
        problems.append(f"{images[k]}: image without label (expected {where})")
    for k in sorted(set(labels) - set(images)):
        where = expected_image(k) if expected_image else f"an image named {k!r} in {image_dir}"
        problems.append(f"{labels[k]}: label without image (expected {where})")
    if problems:
        if on_bad_sample == "error":
            more = f" (and {len(problems) - 1} more unpaired files)" if len(problems) > 1 else ""
            raise DataError(problems[0] + more)
        for p in problems:
            log.warning("dropping unpaired file: %s", p)
    return [(images[k], labels[k]) for k in sorted(set(images) & set(labels))]


def _files(folder: Path, exts: Sequence[str], recursive: bool = False) -> list[Path]:
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if p.suffix.lower() in exts and p.is_file())


# --------------------------------------------------------------------------------------------------
# Cityscapes


CITYSCAPES_INFO = DatasetInfo("cityscapes", CITYSCAPES_CLASSES, CITYSCAPES_PALETTE)
_CITYSCAPES_LUT = make_lut({v: CITYSCAPES_LABEL_TO_TRAIN.get(v, IGNORE_INDEX) for v in range(256)})


class CityscapesDataset(SegmentationDataset):
    """Cityscapes fine annotations: ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` +
    ``gtFine/<split>/<city>/*_gtFine_labelIds.png``; labelIds -> the 19 trainIds, every other id -> 255."""

    SPLITS = ("train", "val", "test")
    IMAGE_SUFFIX = "_leftImg8bit.png"
    LABEL_SUFFIX = "_gtFine_labelIds.png"
    label_lut = _CITYSCAPES_LUT

    def __init__(
        self,
        root: PathLike,
        split: str = "train",
        transform: Transform | None = None,
        seed: int = 0,
        on_bad_sample: str = "error",
    ) -> None:
        _check_split(split, self.SPLITS, "cityscapes")
        root = Path(root)
        image_dir = _require_dir(root / "leftImg8bit" / split, "Cityscapes image")
        label_dir = _require_dir(root / "gtFine" / split, "Cityscapes label")
        images = _index_by_key(
            sorted(image_dir.glob(f"*/*{self.IMAGE_SUFFIX}")),
            lambda p: f"{p.parent.name}/{p.name[: -len(self.IMAGE_SUFFIX)]}",
            image_dir,
        )
        labels = _index_by_key(
            sorted(label_dir.glob(f"*/*{self.LABEL_SUFFIX}")),
            lambda p: f"{p.parent.name}/{p.name[: -len(self.LABEL_SUFFIX)]}",
            label_dir,
        )
        samples = _pair_up(
            images,
            labels,
            on_bad_sample,
            image_dir,
            label_dir,
            expected_label=lambda k: label_dir / f"{k}{self.LABEL_SUFFIX}",
            expected_image=lambda k: image_dir / f"{k}{self.IMAGE_SUFFIX}",
        )
        self.root, self.split = root, split
        super().__init__(samples, CITYSCAPES_INFO, transform, seed, on_bad_sample, source=image_dir)


# --------------------------------------------------------------------------------------------------
# ADE20K


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
    for builtin, name in zip(ADE20K_CLASSES, names):
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

    SPLITS = ("training", "validation")
    ALIASES = {"train": "training", "val": "validation"}
    label_lut = _ADE_LUT

    def __init__(
        self,
        root: PathLike,
        split: str = "training",
        transform: Transform | None = None,
        seed: int = 0,
        on_bad_sample: str = "error",
    ) -> None:
        split = self.ALIASES.get(split, split)
        _check_split(split, self.SPLITS + tuple(self.ALIASES), "ade20k")
        root = Path(root)
        if (root / "ADEChallengeData2016").is_dir():
            root = root / "ADEChallengeData2016"
        image_dir = _require_dir(root / "images" / split, "ADE20K image")
        label_dir = _require_dir(root / "annotations" / split, "ADE20K annotation")
        images = _index_by_key(_files(image_dir, IMAGE_EXTENSIONS), lambda p: p.stem, image_dir)
        labels = _index_by_key(_files(label_dir, (".png",)), lambda p: p.stem, label_dir)
        samples = _pair_up(
            images,
            labels,
            on_bad_sample,
            image_dir,
            label_dir,
            expected_label=lambda k: label_dir / f"{k}.png",
        )
        info = DatasetInfo("ade20k", ade20k_classes(root / "objectInfo150.csv"), ADE20K_PALETTE)
        self.root, self.split = root, split
        super().__init__(samples, info, transform, seed, on_bad_sample, source=image_dir)


# --------------------------------------------------------------------------------------------------
# BDD100K


BDD100K_INFO = DatasetInfo("bdd100k", CITYSCAPES_CLASSES, CITYSCAPES_PALETTE)
_TRAIN_ID_LUT_19 = make_lut({**{k: k for k in range(19)}, IGNORE_INDEX: IGNORE_INDEX})


class BDD100KDataset(SegmentationDataset):
    """BDD100K "10k" semantic segmentation: ``images/10k/<split>/*.jpg`` + ``labels/sem_seg/<source>/<split>/*.png``.

    ``label_source="masks"``: 8-bit trainIds 0..18, 255 ignore. ``"colormaps"``: palette PNGs whose index is
    the trainId; an RGB colormap is decoded by exact Cityscapes colour (other colours -> 255).
    ``root`` may also be the folder containing ``bdd100k/``.
    """

    SPLITS = ("train", "val")
    LABEL_SOURCES = ("masks", "colormaps")
    label_lut = _TRAIN_ID_LUT_19

    def __init__(
        self,
        root: PathLike,
        split: str = "train",
        transform: Transform | None = None,
        seed: int = 0,
        on_bad_sample: str = "error",
        label_source: str = "masks",
    ) -> None:
        _check_split(split, self.SPLITS, "bdd100k")
        if label_source not in self.LABEL_SOURCES:
            raise ValueError(f"bdd100k: label_source must be one of {self.LABEL_SOURCES}, got {label_source!r}")
        root = Path(root)
        if not (root / "images").is_dir() and (root / "bdd100k" / "images").is_dir():
            root = root / "bdd100k"
        image_dir = _require_dir(root / "images" / "10k" / split, "BDD100K image")
        label_dir = _require_dir(root / "labels" / "sem_seg" / label_source / split, f"BDD100K {label_source}")
        images = _index_by_key(_files(image_dir, IMAGE_EXTENSIONS), lambda p: p.stem, image_dir)
        labels = _index_by_key(_files(label_dir, (".png",)), lambda p: p.stem, label_dir)
        samples = _pair_up(
            images, labels, on_bad_sample, image_dir, label_dir, expected_label=lambda k: label_dir / f"{k}.png"
        )
        self.root, self.split, self.label_source = root, split, label_source
        self._codec: ColorCodec | None = None
        super().__init__(samples, BDD100K_INFO, transform, seed, on_bad_sample, source=image_dir)

    def decode_label(self, raw: np.ndarray, path: Path) -> np.ndarray:
        if raw.ndim == 3:
            if self._codec is None:
                self._codec = cityscapes_color_codec()
            return self._codec.decode(raw)
        return decode_index_label(raw, self.label_lut, path)


# --------------------------------------------------------------------------------------------------
# CamVid


class CamVidDataset(SegmentationDataset):
    """CamVid, 11 classes, in either release.

    * SegNet's (480x360): single-channel labels with ids 0..10, 11 = void (-> 255; 255 is also accepted).
    * The colour-coded release used by the DSNet authors (960x720): RGB labels in CamVid colour codes. All
      32 original CamVid colours are merged into the 11 classes (``merge_32_classes=True``, see
      ``palettes.CAMVID32_TO_11``), or only the 11 class colours are accepted (``False``, the DSNet code's
      behaviour); unmatched colours -> 255.

    ``encoding="auto"`` decides per file: RGB(A) -> colour; single-channel -> index; palette ('P') -> colour
    if every colour the file uses is a CamVid colour, else index.
    Samples come from a list file ("image label" per line, paths relative to ``root``): ``list_file`` or the
    first of ``<split>.txt``, ``<split>.lst``, ``list/<split>.lst`` in ``root``; ``trainval`` falls back to
    train + val. Without lists, folders ``images/<split>`` + ``labels/<split>`` or SegNet's ``<split>`` +
    ``<split>annot`` are paired by name (a ``_L`` label suffix is allowed).

    ``class_order="segnet"`` (default) gives SegNet ids (Sky, Building, Pole, Road, Sidewalk, Tree,
    SignSymbol, Fence, Car, Pedestrian, Bicyclist); ``"dsnet"`` the DSNet/PIDNet code's alphabetical order
    (Bicyclist, Building, Car, Pole, Fence, Pedestrian, Road, Sidewalk, SignSymbol, Sky, Tree), needed to
    use the authors' CamVid weights.
    """

    SPLITS = ("train", "val", "test", "trainval")
    ENCODINGS = ("auto", "index", "color")
    CLASS_ORDERS = ("segnet", "dsnet")

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
        _check_split(split, self.SPLITS, "camvid")
        if encoding not in self.ENCODINGS:
            raise ValueError(f"camvid: encoding must be one of {self.ENCODINGS}, got {encoding!r}")
        if class_order not in self.CLASS_ORDERS:
            raise ValueError(f"camvid: class_order must be one of {self.CLASS_ORDERS}, got {class_order!r}")
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"{root}: CamVid root folder not found")
        self.root, self.split, self.encoding, self.class_order = root, split, encoding, class_order
        samples, source = self._list_samples(root, split, list_file, on_bad_sample)

        # SegNet index -> training id in the chosen order
        order = tuple(range(11)) if class_order == "segnet" else CAMVID_DSNET_ORDER
        to_order = np.full(256, IGNORE_INDEX, np.uint8)
        for new_id, segnet_id in enumerate(order):
            to_order[segnet_id] = new_id
        self._reorder = None if class_order == "segnet" else to_order
        self.label_lut = make_lut(
            {**{k: int(to_order[k]) for k in range(11)}, 11: IGNORE_INDEX, IGNORE_INDEX: IGNORE_INDEX}
        )
        self._codec = camvid_color_codec(merge_32_classes)
        name = "camvid" if class_order == "segnet" else "camvid-dsnet"
        info = DatasetInfo(name, tuple(CAMVID_CLASSES[k] for k in order), tuple(CAMVID_PALETTE[k] for k in order))
        super().__init__(samples, info, transform, seed, on_bad_sample, source=source)

    # ---- listing
    def _list_samples(
        self, root: Path, split: str, list_file: PathLike | None, on_bad_sample: str
    ) -> tuple[list[tuple[Path, Path]], Path]:
        if list_file is not None:
            lists = [Path(list_file)]
            if not lists[0].is_file():
                raise DataError(f"{list_file}: CamVid list file not found")
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
                images = _index_by_key(_files(image_dir, IMAGE_EXTENSIONS), lambda p: p.stem, image_dir)

                def key(p: Path) -> str:
                    return p.stem[:-2] if p.stem.endswith("_L") else p.stem

                labels = _index_by_key(_files(label_dir, IMAGE_EXTENSIONS), key, label_dir)
                return _pair_up(images, labels, on_bad_sample, image_dir, label_dir), image_dir
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
            return read_label(path, as_color=self.encoding == "color")
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
            if self.encoding == "index":
                raise DataError(f"{path}: encoding='index' but the label is a colour image")
            label = self._codec.decode(raw)
            return label if self._reorder is None else cv2.LUT(label, self._reorder)
        return decode_index_label(raw, self.label_lut, path)


# --------------------------------------------------------------------------------------------------
# user folders


FOLDER_CONFIG_NAME = "dataset.yaml"
_FOLDER_KEYS = (
    "name",
    "classes",
    "palette",
    "ignore_index",
    "image_dir",
    "mask_dir",
    "splits",
    "mask_encoding",
    "ignore_colors",
)


@dataclass(frozen=True)
class FolderConfig:
    """Validated contents of a ``dataset.yaml``."""

    name: str
    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...] | None
    ignore_index: int
    image_dir: str
    mask_dir: str
    splits: tuple[str, ...] | None
    mask_encoding: str
    ignore_colors: tuple[tuple[int, int, int], ...]


def _color_list(value: Any, path: Path, key: str) -> tuple[tuple[int, int, int], ...]:
    if not isinstance(value, list):
        raise DataError(f"{path}: key '{key}' must be a list of [r, g, b] colours")
    out = []
    for i, c in enumerate(value):
        if (
            not isinstance(c, (list, tuple))
            or len(c) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in c)
        ):
            raise DataError(f"{path}: key '{key}' entry {i} must be [r, g, b] with integers 0..255, got {c!r}")
        out.append((int(c[0]), int(c[1]), int(c[2])))
    return tuple(out)


def load_folder_config(path: PathLike) -> FolderConfig:
    """Read and validate a ``dataset.yaml``; errors name the file and the bad key."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: dataset config not found") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise DataError(f"{path}: cannot parse YAML ({e})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a mapping with at least the key 'classes'")
    for key in data:
        if key not in _FOLDER_KEYS:
            raise DataError(f"{path}: unknown key '{key}' (allowed: {', '.join(_FOLDER_KEYS)})")

    classes = data.get("classes")
    if classes is None:
        raise DataError(f"{path}: missing required key 'classes'")
    if not isinstance(classes, list) or not classes:
        raise DataError(f"{path}: key 'classes' must be a non-empty list of names")
    for i, c in enumerate(classes):
        if not isinstance(c, str) or not c.strip():
            raise DataError(f"{path}: key 'classes' entry {i} must be a non-empty string, got {c!r}")
    if len(set(classes)) != len(classes):
        dup = sorted({c for c in classes if classes.count(c) > 1})
        raise DataError(f"{path}: key 'classes' has duplicate names {dup}")
    if len(classes) > 255:
        raise DataError(f"{path}: key 'classes' has {len(classes)} entries; at most 255 are supported")

    ignore_index = data.get("ignore_index", IGNORE_INDEX)
    if not isinstance(ignore_index, int) or isinstance(ignore_index, bool) or not 0 <= ignore_index <= 255:
        raise DataError(f"{path}: key 'ignore_index' must be an integer 0..255, got {ignore_index!r}")
    if ignore_index < len(classes):
        raise DataError(
            f"{path}: key 'ignore_index' = {ignore_index} collides with class id {ignore_index} "
            f"({classes[ignore_index]!r}); use a value >= {len(classes)}"
        )

    palette = None
    if data.get("palette") is not None:
        palette = _color_list(data["palette"], path, "palette")
        if len(palette) != len(classes):
            raise DataError(f"{path}: key 'palette' has {len(palette)} colours but there are {len(classes)} classes")

    ignore_colors = _color_list(data.get("ignore_colors", []), path, "ignore_colors")

    encoding = data.get("mask_encoding", "auto")
    if encoding not in ("auto", "index", "color"):
        raise DataError(f"{path}: key 'mask_encoding' must be 'auto', 'index' or 'color', got {encoding!r}")
    if encoding == "color" and palette is None:
        raise DataError(f"{path}: key 'mask_encoding' is 'color' but no 'palette' is given")
    if palette is not None and len(set(palette)) != len(palette) and encoding != "index":
        raise DataError(f"{path}: key 'palette' has duplicate colours (colour masks would be ambiguous)")
    if palette is not None and set(palette) & set(ignore_colors):
        raise DataError(f"{path}: key 'ignore_colors' contains a class colour from 'palette'")

    dirs = {}
    for key, default in (("image_dir", "images"), ("mask_dir", "masks")):
        value = data.get(key, default)
        if not isinstance(value, str) or not value.strip():
            raise DataError(f"{path}: key '{key}' must be a non-empty folder name, got {value!r}")
        dirs[key] = value

    splits = data.get("splits")
    if splits is not None:
        if not isinstance(splits, list) or not splits or not all(isinstance(s, str) and s.strip() for s in splits):
            raise DataError(f"{path}: key 'splits' must be a non-empty list of split folder names")
        if len(set(splits)) != len(splits):
            raise DataError(f"{path}: key 'splits' has duplicate names")
        splits = tuple(splits)

    name = data.get("name", path.parent.name or "folder")
    if not isinstance(name, str) or not name.strip():
        raise DataError(f"{path}: key 'name' must be a non-empty string, got {name!r}")

    return FolderConfig(
        name=name,
        classes=tuple(classes),
        palette=palette,
        ignore_index=ignore_index,
        image_dir=dirs["image_dir"],
        mask_dir=dirs["mask_dir"],
        splits=splits,
        mask_encoding=encoding,
        ignore_colors=ignore_colors,
    )


class FolderDataset(SegmentationDataset):
    """User data: ``images/`` and ``masks/`` paired by file stem, described by a ``dataset.yaml``.

    ``root`` is the dataset folder (holding ``dataset.yaml``) or the path of the YAML file itself (folders
    are then relative to its directory). YAML keys:

    - ``classes`` (required): list of class names; mask value k is class k.
    - ``palette``: ``[[r, g, b], ...]`` per class (default: generated distinct colours).
    - ``ignore_index`` (default 255): the mask value meaning "ignore" (>= number of classes); it becomes 255.
    - ``image_dir`` / ``mask_dir`` (default ``images`` / ``masks``).
    - ``splits``: list of split names, i.e. subfolders ``images/<split>`` and ``masks/<split>``; ``split`` must
      then be one of them. Without it, ``split=None`` uses the folders themselves and ``split="x"`` uses
      ``images/x`` when it exists.
    - ``mask_encoding``: ``auto`` (default: RGB masks are colour-coded, others index), ``index`` or ``color``.
      Colour masks are decoded with ``palette``; colours in ``ignore_colors`` become 255 and any other
      colour is an error.
    - ``name``: dataset name (default: the folder name).
    Unknown keys are errors.
    """

    def __init__(
        self,
        root: PathLike,
        split: str | None = None,
        transform: Transform | None = None,
        seed: int = 0,
        on_bad_sample: str = "error",
    ) -> None:
        root = Path(root)
        if root.is_file() or root.suffix.lower() in (".yaml", ".yml"):
            config_path, base = root, root.parent
        else:
            config_path, base = root / FOLDER_CONFIG_NAME, root
        cfg = load_folder_config(config_path)
        self.config, self.config_path, self.root, self.split = cfg, config_path, base, split

        image_dir, mask_dir = base / cfg.image_dir, base / cfg.mask_dir
        if cfg.splits is not None:
            if split is None:
                raise ValueError(f"{config_path}: a split is required; valid splits: {', '.join(cfg.splits)}")
            if split not in cfg.splits:
                raise ValueError(f"{config_path}: unknown split {split!r}; valid splits: {', '.join(cfg.splits)}")
            image_dir, mask_dir = image_dir / split, mask_dir / split
        elif split is not None:
            image_dir, mask_dir = image_dir / split, mask_dir / split
        _require_dir(image_dir, "image")
        _require_dir(mask_dir, "mask")

        images = _index_by_key(_files(image_dir, IMAGE_EXTENSIONS), lambda p: p.stem, image_dir)
        masks = _index_by_key(_files(mask_dir, IMAGE_EXTENSIONS), lambda p: p.stem, mask_dir)
        samples = _pair_up(images, masks, on_bad_sample, image_dir, mask_dir)

        palette = cfg.palette if cfg.palette is not None else generate_palette(len(cfg.classes))
        info = DatasetInfo(cfg.name, cfg.classes, palette)
        self.label_lut = make_lut({**{k: k for k in range(len(cfg.classes))}, cfg.ignore_index: IGNORE_INDEX})
        self._codec = None
        if cfg.palette is not None and cfg.mask_encoding != "index":
            colors = list(cfg.palette) + list(cfg.ignore_colors)
            ids = list(range(len(cfg.palette))) + [IGNORE_INDEX] * len(cfg.ignore_colors)
            self._codec = ColorCodec(colors, ids)
        super().__init__(samples, info, transform, seed, on_bad_sample, source=image_dir)

    def read_label(self, path: Path) -> np.ndarray:
        return read_label(path, as_color=self.config.mask_encoding == "color")

    def decode_label(self, raw: np.ndarray, path: Path) -> np.ndarray:
        if raw.ndim == 3:
            if self.config.mask_encoding == "index":
                raise DataError(f"{path}: mask_encoding is 'index' but the mask is a colour image")
            if self._codec is None:
                raise DataError(f"{path}: colour mask but {self.config_path} has no 'palette' to decode it")
            label, unmatched = self._codec.decode(raw, return_unmatched=True)
            if unmatched:
                raise DataError(
                    f"{path}: mask colours {_preview(unmatched, 5)} are neither class colours of the palette nor "
                    f"listed in 'ignore_colors' of {self.config_path}"
                )
            return label
        return decode_index_label(raw, self.label_lut, path)


# --------------------------------------------------------------------------------------------------
# registry


DATASETS: dict[str, type[SegmentationDataset]] = {
    "cityscapes": CityscapesDataset,
    "ade20k": ADE20KDataset,
    "bdd100k": BDD100KDataset,
    "camvid": CamVidDataset,
    "folder": FolderDataset,
}


def list_datasets() -> list[str]:
    return sorted(DATASETS)


def build_dataset(
    name: str, root: PathLike, split: str | None = None, transform: Transform | None = None, **kwargs: Any
) -> SegmentationDataset:
    """Create a dataset by name ("cityscapes", "ade20k", "bdd100k", "camvid", "folder").

    ``split=None`` uses the dataset's default split. Other keyword arguments go to the dataset class
    (``seed``, ``on_bad_sample``, and its own options); an unknown one raises ``TypeError`` naming it.
    """
    key = name.lower()
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(list_datasets())}")
    cls = DATASETS[key]
    params = inspect.signature(cls.__init__).parameters
    allowed = [p for p in params if p not in ("self", "root", "split", "transform")]
    for k in kwargs:
        if k not in allowed:
            raise TypeError(f"{key}: unexpected keyword argument {k!r}; valid: {', '.join(allowed)}")
    if split is not None:
        kwargs["split"] = split
    return cls(root, transform=transform, **kwargs)
