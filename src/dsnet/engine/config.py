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

from ..data import CLASS_BALANCE_METHODS, list_datasets
from ..data.class_maps import resolve_class_map
from ..data.photometric import photometric_from
from ..errors import ConfigError
from ..inference import InferenceOptions
from ..models.registry import resolve_model_name
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
    "validate_config",
    "validate_device_settings",
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


Check = tuple[bool, str, str]


def common_checks(cfg: Any) -> list[Check]:
    """The checks of the settings every training config has (segmentation and pre-training alike)."""
    m, d, o, t = cfg.model, cfg.data, cfg.optim, cfg.train
    return [
        (m.num_classes >= 1, "model.num_classes", "must be >= 1"),
        (d.root is not None and d.root.strip() != "", "data.root", "is not set: give the dataset folder"),
        (d.num_workers >= 0, "data.num_workers", "must be >= 0"),
        (o.lr > 0, "optim.lr", "must be positive"),
        (o.grad_accum >= 1, "optim.grad_accum", "must be >= 1"),
        (o.clip_grad_norm is None or o.clip_grad_norm > 0, "optim.clip_grad_norm", "must be positive or null"),
        (t.log_interval > 0, "train.log_interval", "must be positive"),
        (t.checkpoint_interval > 0, "train.checkpoint_interval", "must be positive"),
        (t.max_val_samples is None or t.max_val_samples > 0, "train.max_val_samples", "must be positive or null"),
        (t.seed >= 0, "train.seed", "must be >= 0"),
    ]


def check_settings(cfg: Any, checks: list[Check]) -> None:
    """Raise :class:`ConfigError` naming the key and its value for the first failed
    ``(condition that must hold, dotted key, what is wrong)``; ``model.name`` must name a registered model."""
    try:
        resolve_model_name(cfg.model.name)
    except ConfigError as e:
        raise ConfigError(f"model.name: {e}") from None
    for ok, key, problem in checks:
        if not ok:
            raise ConfigError(f"{key}={_value(cfg, key)!r} {problem}")


def _checks(cfg: Config) -> list[Check]:
    """The segmentation config's own checks (besides :func:`common_checks`)."""
    d, lo, o, t, e = cfg.data, cfg.loss, cfg.optim, cfg.train, cfg.eval
    crop_ok = len(d.crop_size) == 2 and all(v > 0 for v in d.crop_size)
    return [
        (d.dataset in list_datasets(), "data.dataset", f"must be one of {', '.join(list_datasets())}"),
        (crop_ok, "data.crop_size", "must be [H, W] with positive values"),
        (not crop_ok or all(v % 8 == 0 for v in d.crop_size), "data.crop_size", "must be multiples of 8"),
        (d.base_size > 0, "data.base_size", "must be positive"),
        (
            len(d.scale_range) == 2 and 0 < d.scale_range[0] <= d.scale_range[-1],
            "data.scale_range",
            "must be [low, high] with 0 < low <= high",
        ),
        (d.scale_step is None or d.scale_step > 0, "data.scale_step", "must be positive or null"),
        (d.short_side is None or d.short_side > 0, "data.short_side", "must be positive or null"),
        (d.batch_size >= 1, "data.batch_size", "must be >= 1"),
        (0 <= d.color_jitter < 1, "data.color_jitter", "must be in [0, 1)"),
        _photometric_check(d.photometric),
        *_stage_checks(d),
        *_extra_train_checks(d),
        (len(lo.weights) == 3, "loss.weights", "needs three values (main, aux_p, aux_d)"),
        (0 < lo.ohem_thresh <= 1, "loss.ohem_thresh", "must be in (0, 1]"),
        (lo.ohem_min_kept >= 0, "loss.ohem_min_kept", "must be >= 0"),
        (0 <= lo.label_smoothing < 1, "loss.label_smoothing", "must be in [0, 1)"),
        (lo.boundary_weight >= 0, "loss.boundary_weight", "must be >= 0"),
        (lo.boundary_width >= 1, "loss.boundary_width", "must be >= 1"),
        (o.warmup_iters >= 0, "optim.warmup_iters", "must be >= 0"),
        (o.ema_decay is None or 0 < o.ema_decay < 1, "optim.ema_decay", "must be in (0, 1) or null"),
        (0 <= o.warmup_ratio <= 1, "optim.warmup_ratio", "must be in [0, 1]"),
        (t.iters > 0, "train.iters", "must be positive"),
        (t.minutes is None or t.minutes > 0, "train.minutes", "must be positive or null"),
        (t.val_interval > 0, "train.val_interval", "must be positive"),
        (t.max_empty_batches > 0, "train.max_empty_batches", "must be positive"),
        (
            len(e.scales) > 0 and all(s > 0 for s in e.scales),
            "eval.scales",
            "must be a non-empty list of positive numbers",
        ),
        (e.mode != "slide" or e.crop_size is not None or crop_ok, "eval.crop_size", "is needed for eval.mode=slide"),
        (
            e.crop_size is None or (len(e.crop_size) == 2 and min(e.crop_size) > 0),
            "eval.crop_size",
            "must be [H, W] with positive values",
        ),
        (
            e.stride is None or (len(e.stride) == 2 and min(e.stride) > 0),
            "eval.stride",
            "must be [H, W] with positive values",
        ),
        (e.short_side is None or e.short_side > 0, "eval.short_side", "must be positive or null"),
        (
            e.random_crop is None or (len(e.random_crop) == 2 and min(e.random_crop) > 0),
            "eval.random_crop",
            "must be [H, W] with positive values",
        ),
        (
            e.random_crop is None or e.batch_size == 1,
            "eval.batch_size",
            "must be 1 with eval.random_crop (the authors' ADE20K protocol)",
        ),
        (e.batch_size >= 1, "eval.batch_size", "must be >= 1"),
        (e.num_workers >= 0, "eval.num_workers", "must be >= 0"),
    ]


def _photometric_check(value: str | dict[str, float] | None) -> Check:
    try:
        photometric_from(value)
    except ValueError as e:
        return (False, "data.photometric", str(e))
    return (True, "data.photometric", "")


def _stage_checks(d: DataConfig) -> list[Check]:
    checks: list[Check] = []
    previous = 0.0
    for i, stage in enumerate(d.stages):
        key = f"data.stages[{i}]"
        crop = stage.crop_size
        checks += [
            (previous < stage.start < 1, f"{key}.start", "must be in (0, 1) and after the previous stage's"),
            (
                crop is None or (len(crop) == 2 and all(v > 0 and v % 8 == 0 for v in crop)),
                f"{key}.crop_size",
                "must be [H, W], positive multiples of 8",
            ),
            (stage.base_size is None or stage.base_size > 0, f"{key}.base_size", "must be positive"),
            (
                stage.scale_range is None
                or (len(stage.scale_range) == 2 and min(stage.scale_range) > 0)
                and stage.scale_range[0] <= stage.scale_range[-1],
                f"{key}.scale_range",
                "must be [low, high] with 0 < low <= high",
            ),
        ]
        previous = max(previous, stage.start)
    return checks


def _extra_train_checks(d: DataConfig) -> list[Check]:
    checks: list[Check] = []
    for i, extra in enumerate(d.extra_train):
        key = f"data.extra_train[{i}]"
        try:
            resolve_class_map(extra.class_map)
            map_problem = ""
        except ValueError as e:
            map_problem = str(e)
        checks += [
            (extra.dataset in list_datasets(), f"{key}.dataset", f"must be one of {', '.join(list_datasets())}"),
            (extra.root is not None and extra.root.strip() != "", f"{key}.root", "is not set: give the dataset folder"),
            (extra.repeat >= 1, f"{key}.repeat", "must be >= 1"),
            (not map_problem, f"{key}.class_map", map_problem),
        ]
    return checks


def validate_config(cfg: Config) -> Config:
    """Check every setting that can be checked before a job starts; the error names the key.

    Device-dependent checks (fp16 needs CUDA, batch 1 needs SyncBatchNorm) are the trainer's.
    """
    check_settings(cfg, common_checks(cfg) + _checks(cfg))
    cw = cfg.data.class_weights
    presets = ("cityscapes", *CLASS_BALANCE_METHODS)
    if isinstance(cw, str) and cw not in presets:
        raise ConfigError(f"data.class_weights={cw!r}: unknown preset (known: {', '.join(presets)})")
    if isinstance(cw, list) and len(cw) != cfg.model.num_classes:
        raise ConfigError(f"data.class_weights has {len(cw)} values for model.num_classes={cfg.model.num_classes}")
    return cfg


def _value(cfg: Any, dotted: str) -> Any:
    """The value at a dotted key such as ``data.stages[0].start``."""
    node = cfg
    for part in dotted.split("."):
        name, _, index = part.partition("[")
        node = getattr(node, name)
        if index:
            node = node[int(index.rstrip("]"))]
    return node


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


def validate_device_settings(cfg: Config, device_type: str, distributed: bool) -> None:
    """The settings that depend on the device: batch 1 needs SyncBatchNorm (GPUs), fp16 needs CUDA."""
    sync_bn = distributed and cfg.model.sync_bn and device_type == "cuda"
    if cfg.data.batch_size == 1 and not sync_bn:
        raise ConfigError(
            "data.batch_size=1 cannot train DSNet (BatchNorm on its 1x1 pooled maps needs >= 2 "
            "samples); use >= 2 per device or SyncBatchNorm across devices"
        )
    if cfg.optim.amp == "fp16" and device_type != "cuda":
        raise ConfigError("optim.amp=fp16 needs a CUDA device; use bf16 or none on CPU")
