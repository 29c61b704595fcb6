"""User data: ``images/`` + ``masks/`` folders paired by file name, described by a ``dataset.yaml``.

The YAML is parsed by :func:`dsnet.typed.from_dict` into :class:`FolderConfig`, like every other config
(unknown keys and wrong types name the key); this module adds only the checks types cannot express.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from ..constants import IGNORE_INDEX
from ..errors import ConfigError, DataError
from ..typed import from_dict
from .base import FolderSpec, SegmentationDataset, pair_folders
from .io import PathLike, read_label
from .label_space import LabelSpace
from .labels import Color, ColorCodec, decode_color_label, decode_index_label, generate_palette, make_lut

__all__ = ["FOLDER_CONFIG_NAME", "FolderConfig", "FolderDataset", "load_folder_config"]

FOLDER_CONFIG_NAME = "dataset.yaml"


@dataclass(frozen=True)
class FolderConfig:
    """The contents of a ``dataset.yaml`` (see :class:`FolderDataset` for the meaning of each key).

    ``classes`` is required; ``name`` defaults to the dataset folder's name (filled in on loading).
    """

    classes: tuple[str, ...] = ()
    name: str | None = None
    palette: tuple[Color, ...] | None = None
    ignore_index: int = IGNORE_INDEX
    image_dir: str = "images"
    mask_dir: str = "masks"
    splits: tuple[str, ...] | None = None
    mask_encoding: Literal["auto", "index", "color"] = "auto"
    ignore_colors: tuple[Color, ...] = ()


def _colors(value: tuple[Color, ...] | None, key: str, path: Path) -> tuple[Color, ...] | None:
    """Typed parsing checked that entries are lists of ints; here: exactly three, each 0..255."""
    if value is None:
        return None
    for i, c in enumerate(value):
        if len(c) != 3 or not all(0 <= v <= 255 for v in c):
            raise DataError(f"{path}: {key}[{i}]: expected [r, g, b] with integers 0..255, got {list(c)!r}")
    return tuple((int(c[0]), int(c[1]), int(c[2])) for c in value)


def _names(value: tuple[str, ...], key: str, path: Path) -> None:
    for i, name in enumerate(value):
        if not name.strip():
            raise DataError(f"{path}: {key}[{i}]: expected a non-empty name, got {name!r}")
    if len(set(value)) != len(value):
        raise DataError(f"{path}: {key}: duplicate names {sorted({n for n in value if value.count(n) > 1})}")


def _check(cfg: FolderConfig, path: Path) -> FolderConfig:
    """The checks types cannot express; returns the config with tuples and the default name filled in."""
    classes = tuple(cfg.classes)
    if not classes:
        raise DataError(f"{path}: classes: required, a non-empty list of class names")
    _names(classes, "classes", path)
    if len(classes) > 255:
        raise DataError(f"{path}: classes: {len(classes)} entries; at most 255 are supported")
    if not 0 <= cfg.ignore_index <= 255:
        raise DataError(f"{path}: ignore_index: expected an integer 0..255, got {cfg.ignore_index}")
    if cfg.ignore_index < len(classes):
        raise DataError(
            f"{path}: ignore_index: {cfg.ignore_index} collides with class id {cfg.ignore_index} "
            f"({classes[cfg.ignore_index]!r}); use a value >= {len(classes)}"
        )
    palette = _colors(cfg.palette, "palette", path)
    ignore_colors = _colors(cfg.ignore_colors, "ignore_colors", path) or ()
    if palette is not None and len(palette) != len(classes):
        raise DataError(f"{path}: palette: {len(palette)} colours but there are {len(classes)} classes")
    if cfg.mask_encoding == "color" and palette is None:
        raise DataError(f"{path}: mask_encoding: 'color' needs a 'palette' to decode the masks")
    if palette is not None and len(set(palette)) != len(palette) and cfg.mask_encoding != "index":
        raise DataError(f"{path}: palette: duplicate colours (colour masks would be ambiguous)")
    if palette is not None and set(palette) & set(ignore_colors):
        raise DataError(f"{path}: ignore_colors: contains a class colour from 'palette'")
    for key in ("image_dir", "mask_dir"):
        if not getattr(cfg, key).strip():
            raise DataError(f"{path}: {key}: expected a non-empty folder name, got {getattr(cfg, key)!r}")
    splits = None if cfg.splits is None else tuple(cfg.splits)
    if splits is not None:
        if not splits:
            raise DataError(f"{path}: splits: expected a non-empty list of split folder names")
        _names(splits, "splits", path)
    name = (path.parent.name or "folder") if cfg.name is None else cfg.name
    if not name.strip():
        raise DataError(f"{path}: name: expected a non-empty string, got {name!r}")
    return dataclasses.replace(
        cfg, classes=classes, name=name, palette=palette, splits=splits, ignore_colors=ignore_colors
    )


def load_folder_config(path: PathLike) -> FolderConfig:
    """Read and validate a ``dataset.yaml``; every error is a DataError "<path>: <key>: <problem>"."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: dataset config not found") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise DataError(f"{path}: cannot parse YAML ({e})") from None
    try:
        cfg = from_dict(FolderConfig, data)
    except ConfigError as e:
        raise DataError(f"{path}: {e}") from None
    return _check(cfg, path)


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
      ``images/x`` and ``masks/x``.
    - ``mask_encoding``: ``auto`` (default: RGB masks are colour-coded, others index), ``index`` or ``color``.
      Colour masks are decoded with ``palette``; colours in ``ignore_colors`` become 255 and any other
      colour is an error. Except with ``color``, an RGB mask with R = G = B holding valid mask values (not
      all palette colours) is read as an index mask.
    - ``name``: dataset name (default: the folder name).
    Unknown keys are errors.
    """

    @staticmethod
    def _config_path(root: PathLike) -> tuple[Path, Path]:
        """(the YAML file, the folder its paths are relative to) of ``root`` (a folder or the YAML itself)."""
        root = Path(root)
        if root.is_file() or root.suffix.lower() in (".yaml", ".yml"):
            return root, root.parent
        return root / FOLDER_CONFIG_NAME, root

    @classmethod
    def describe(cls, root: PathLike | None = None, **options: Any) -> LabelSpace | None:
        """The label space its ``dataset.yaml`` declares (None without ``root``: the names live there)."""
        if root is None:
            return None
        return cls._label_space(load_folder_config(cls._config_path(root)[0]))

    @staticmethod
    def _label_space(cfg: FolderConfig) -> LabelSpace:
        """Mask value k is class k, so the dataset ids are the training ids; ``ignore_index`` is the masks'."""
        n = len(cfg.classes)
        palette = cfg.palette if cfg.palette is not None else generate_palette(n)
        ignore = None if cfg.ignore_index == IGNORE_INDEX else cfg.ignore_index
        return LabelSpace(str(cfg.name), cfg.classes, palette, dataset_ids=tuple(range(n)), dataset_ignore_id=ignore)

    DEFAULT_SPLIT = None

    def open_root(self, root: Path) -> Path:
        """The folder the YAML's paths are relative to; reads and checks the YAML (``self.config``) and sets
        the decoding it implies (mask value k is class k; ``palette`` and ``ignore_colors`` decode colours)."""
        self.config_path, base = self._config_path(root)
        cfg = self.config = load_folder_config(self.config_path)
        self.label_lut = make_lut({**{k: k for k in range(len(cfg.classes))}, cfg.ignore_index: IGNORE_INDEX})
        self._codec = None
        if cfg.palette is not None and cfg.mask_encoding != "index":
            colors = list(cfg.palette) + list(cfg.ignore_colors)
            ids = list(range(len(cfg.palette))) + [IGNORE_INDEX] * len(cfg.ignore_colors)
            self._codec = ColorCodec(colors, ids)
        return base

    def check_split(self, split: str | None) -> str | None:
        """The YAML's ``splits`` (when it has them) name the valid splits, and one is then required."""
        splits = self.config.splits
        if splits is not None:
            if split is None:
                raise ValueError(f"{self.config_path}: a split is required; valid splits: {', '.join(splits)}")
            if split not in splits:
                raise ValueError(f"{self.config_path}: unknown split {split!r}; valid splits: {', '.join(splits)}")
        return split

    def list_samples(self, on_bad_sample: str) -> tuple[list[tuple[Path, Path]], PathLike]:
        image_dir, mask_dir = self.root / self.config.image_dir, self.root / self.config.mask_dir
        if self.split is not None:
            image_dir, mask_dir = image_dir / self.split, mask_dir / self.split
        return pair_folders(FolderSpec(image_dir, "image"), FolderSpec(mask_dir, "mask"), on_bad_sample), image_dir

    def own_label_space(self) -> LabelSpace:
        return self._label_space(self.config)

    def read_label(self, path: Path) -> np.ndarray:
        return read_label(path, as_color=self.config.mask_encoding == "color")  # type: ignore[return-value]

    def decode_label(self, raw: np.ndarray, path: Path) -> np.ndarray:
        if raw.ndim != 3:
            return decode_index_label(raw, self.label_lut, path)
        if self.config.mask_encoding == "index":
            no_codec = "mask_encoding is 'index' but the mask is a colour image"
        else:
            no_codec = f"colour mask but {self.config_path} has no 'palette' to decode it"
        return decode_color_label(
            raw,
            self.label_lut,
            path,
            self._codec,
            grey_as_index=self.config.mask_encoding != "color",
            no_codec=no_codec,
            known_colors=f"'palette' or 'ignore_colors' of {self.config_path}",
        )
