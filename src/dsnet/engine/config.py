"""Typed, strict experiment configuration (YAML <-> dataclasses).

Unknown keys and wrongly typed values are errors that name the dotted key; any key can be
overridden from the command line as ``section.key=value`` (values parsed as YAML).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ..errors import ConfigError
from ..typed import from_dict

__all__ = [
    "ConfigError",
    "Config",
    "ModelConfig",
    "DataConfig",
    "LossConfig",
    "OptimConfig",
    "TrainConfig",
    "EvalConfig",
    "load_config",
    "apply_overrides",
    "config_to_dict",
    "config_from_dict",
]


@dataclass
class ModelConfig:
    name: str = "dsnet_head128"
    num_classes: int = 19
    # ImageNet encoder checkpoint or segmentation weights to start from (any accepted layout).
    pretrained: str | None = None
    sync_bn: bool = True  # convert BatchNorm to SyncBatchNorm under DDP
    channels_last: bool = False


@dataclass
class DataConfig:
    dataset: str = "cityscapes"  # cityscapes | ade20k | bdd100k | camvid | folder
    root: str = "data/cityscapes"
    train_split: str = "train"
    val_split: str = "val"
    crop_size: list[int] = field(default_factory=lambda: [1024, 1024])  # H, W
    base_size: int = 2048  # long side at scale 1.0
    scale_range: list[float] = field(default_factory=lambda: [0.4, 1.7])
    scale_step: float | None = 0.1  # discrete scales as the reference; null = continuous
    short_side: int | None = None  # resize the short side first (ADE20K: 512)
    flip: bool = True
    batch_size: int = 6  # per device
    num_workers: int = 4
    class_weights: str | list[float] | None = None  # "cityscapes" or explicit values
    on_bad_sample: Literal["error", "skip"] = "error"
    options: dict[str, Any] = field(default_factory=dict)  # extra dataset arguments


@dataclass
class LossConfig:
    ohem: bool = True
    ohem_thresh: float = 0.9
    ohem_min_kept: int = 131072
    weights: list[float] = field(default_factory=lambda: [0.6, 0.2, 0.2])  # main, aux_p, aux_d


@dataclass
class OptimConfig:
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    poly_power: float = 0.9
    warmup_iters: int = 0
    warmup_ratio: float = 0.1  # LR factor at iteration 0 of the linear warm-up
    grad_accum: int = 1
    amp: Literal["none", "bf16", "fp16"] = "none"
    clip_grad_norm: float | None = None


@dataclass
class TrainConfig:
    iters: int = 120000
    seed: int = 304
    work_dir: str | None = None  # default: runs/<config file stem>
    log_interval: int = 50
    val_interval: int = 4000
    checkpoint_interval: int = 1000
    deterministic: bool = False
    progress: bool = True
    tensorboard: bool = True
    max_val_samples: int | None = None  # evaluate on the first N validation images only


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


def config_from_dict(data: dict[str, Any]) -> Config:
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a mapping of sections, got {type(data).__name__}")
    return from_dict(Config, data)


def config_to_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        if not isinstance(node.get(part, {}), dict):
            raise ConfigError(f"override {dotted!r}: {part!r} is not a section")
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
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
    return config_from_dict(data)


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (defaults fill absent keys), then apply command-line overrides."""
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
        cfg = config_from_dict(data)
        return apply_overrides(cfg, overrides or [])
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from e
