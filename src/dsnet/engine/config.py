"""Typed, strict experiment configuration (YAML <-> dataclasses).

Unknown keys and wrongly typed values are errors that name the dotted key; any key can be
overridden from the command line as ``section.key=value`` (values parsed as YAML). What a value
may be is checked in :mod:`.config_checks`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ..errors import ConfigError
from ..inference import InferenceOptions
from ..typed import from_dict

__all__ = [
    "ConfigError",
    "Config",
    "ModelConfig",
    "DataConfig",
    "StageConfig",
    "ExtraTrainConfig",
    "LossConfig",
    "OptimConfig",
    "TrainConfig",
    "EvalConfig",
    "load_config",
    "apply_overrides",
    "config_to_dict",
    "config_from_dict",
    "inference_options",
]


@dataclass
class ModelConfig:
    name: str = "dsnet_head128"
    num_classes: int = 19
    # ImageNet encoder checkpoint or segmentation weights to start from (any accepted layout).
    pretrained: str | None = None
    # fine-tune from weights with another class count: the classifier layers start fresh
    reset_classifier: bool = False
    sync_bn: bool = True  # convert BatchNorm to SyncBatchNorm under DDP
    channels_last: bool = False


@dataclass
class StageConfig:
    """A later part of a run that trains on other sizes (e.g. full-resolution crops at the end, for thin
    classes); the keys left out keep the ``data`` section's values."""

    start: float = 0.75  # where it begins, as a fraction of train.iters
    crop_size: list[int] | None = None
    base_size: int | None = None
    scale_range: list[float] | None = None


@dataclass
class ExtraTrainConfig:
    """Another dataset trained on beside ``data.train_split`` (more streets, cameras, light), its labels
    relabelled into the main dataset's classes; evaluation stays on the main dataset."""

    dataset: str = ""  # one of the datasets data.dataset accepts
    root: str | None = None  # required
    split: str | None = None  # null: the dataset's default split
    class_map: str | dict[str, str | None] | None = None  # a registered map, inline, or null: same class names
    repeat: int = 1  # its samples appear this many times per epoch
    options: dict[str, Any] = field(default_factory=dict)  # extra dataset arguments


@dataclass
class DataConfig:
    dataset: str = "cityscapes"  # cityscapes | ade20k | bdd100k | camvid | folder
    root: str | None = None  # required
    train_split: str = "train"
    val_split: str = "val"
    crop_size: list[int] = field(default_factory=lambda: [1024, 1024])  # H, W
    base_size: int = 2048  # long side at scale 1.0
    scale_range: list[float] = field(default_factory=lambda: [0.4, 1.7])
    scale_step: float | None = 0.1  # discrete scales as the reference; null = continuous
    short_side: int | None = None  # resize the short side first (ADE20K: 512)
    flip: bool = True
    color_jitter: float = 0.0  # brightness/contrast/saturation factors drawn in [1 - x, 1 + x]
    photometric: str | dict[str, float] | None = None  # light and camera changes: a preset ("streets") or strengths
    batch_size: int = 6  # per device
    num_workers: int = 4
    class_weights: str | list[float] | None = None  # explicit, "cityscapes", or computed: "median_frequency"...
    on_bad_sample: Literal["error", "skip"] = "error"
    options: dict[str, Any] = field(default_factory=dict)  # extra dataset arguments
    stages: list[StageConfig] = field(default_factory=list)  # later parts of the run with other sizes
    extra_train: list[ExtraTrainConfig] = field(default_factory=list)  # more datasets to train on


@dataclass
class LossConfig:
    ohem: bool = True
    ohem_thresh: float = 0.9
    ohem_min_kept: int = 131072
    weights: list[float] = field(default_factory=lambda: [0.6, 0.2, 0.2])  # main, aux_p, aux_d
    label_smoothing: float = 0.0  # share of each pixel's target spread over all classes (all three terms)
    boundary_weight: float = 0.0  # main term of pixels near a label edge scaled by 1 + this
    boundary_width: int = 2  # "near": within this many pixels (a square window)


@dataclass
class OptimConfig:
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    schedule: Literal["poly", "cosine"] = "poly"  # poly: (1 - t)^poly_power (1.0: linear); both reach 0 at the end
    poly_power: float = 0.9
    warmup_iters: int = 0
    warmup_ratio: float = 0.1  # LR factor at iteration 0 of the linear warm-up
    grad_accum: int = 1
    amp: Literal["auto", "none", "bf16", "fp16"] = "auto"  # auto: bf16 where computed natively
    clip_grad_norm: float | None = None
    ema_decay: float | None = None  # e.g. 0.998: validate and save an exponential moving average of the weights


@dataclass
class TrainConfig:
    iters: int = 120000
    # a run length in wall-clock minutes: sets iters from the speed measured before the first step
    minutes: float | None = None
    seed: int = 304
    work_dir: str | None = None  # default: runs/<config file stem>
    log_interval: int = 50
    val_interval: int = 4000
    checkpoint_interval: int = 1000
    deterministic: bool = False
    progress: bool = True
    tensorboard: bool = True
    max_val_samples: int | None = None  # evaluate on the first N validation images only
    # stop when this many consecutive training batches have no labelled pixel (broken labels)
    max_empty_batches: int = 20


@dataclass
class EvalConfig:
    mode: Literal["whole", "slide"] = "whole"
    crop_size: list[int] | None = None  # sliding-window crop (H, W); default: data.crop_size
    stride: list[int] | None = None  # sliding-window stride; default: 2/3 of the crop
    scales: list[float] = field(default_factory=lambda: [1.0])
    flip: bool = False
    short_side: int | None = None  # resize the short side before inference (ADE20K: 512)
    random_crop: list[int] | None = None  # the authors' ADE20K protocol: one seeded random crop per image
    batch_size: int = 1
    num_workers: int = 2


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    name: str = "experiment"


def config_from_dict(data: dict[str, Any], cls: type[Any] = Config) -> Any:
    """A config of dataclass ``cls`` (default: the segmentation :class:`Config`) from nested dicts."""
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a mapping of sections, got {type(data).__name__}")
    return from_dict(cls, data)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        if not isinstance(node.get(part, {}), dict):
            raise ConfigError(f"override {dotted!r}: {part!r} is not a section")
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def apply_overrides(cfg: Any, overrides: list[str]) -> Any:
    """Apply ``key.sub=value`` strings (values are parsed as YAML: ``1e-3``, ``[512, 512]``, ``null``)."""
    data = config_to_dict(cfg)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"override {key!r}: cannot parse value {raw!r} ({e})") from e
        _set_dotted(data, key.strip(), value)
    return config_from_dict(data, type(cfg))


def load_config(path: str | Path, overrides: list[str] | None = None, cls: type[Any] = Config) -> Any:
    """Read a YAML config of dataclass ``cls`` (defaults fill absent keys), then apply command-line overrides."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML ({e})") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections, got {type(data).__name__}")
    try:
        data.setdefault("name", path.stem)
        cfg = config_from_dict(data, cls)
        return apply_overrides(cfg, overrides or [])
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from e


def inference_options(cfg: Config) -> InferenceOptions:
    """The evaluation's inference settings (the sliding-window crop defaults to ``data.crop_size``)."""
    e = cfg.eval
    crop = e.crop_size or (cfg.data.crop_size if e.mode == "slide" else None)
    return InferenceOptions(
        mode=e.mode,
        crop=tuple(crop) if crop is not None else None,  # type: ignore[arg-type]
        stride=tuple(e.stride) if e.stride is not None else None,  # type: ignore[arg-type]
        scales=tuple(e.scales),
        flip=e.flip,
    )
