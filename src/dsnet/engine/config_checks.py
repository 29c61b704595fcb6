"""The checks of a config's values before a job starts: each failure names the dotted key and its value."""

from __future__ import annotations

from typing import Any

from ..data import CLASS_BALANCE_METHODS, list_datasets
from ..data.class_maps import resolve_class_map
from ..data.photometric import photometric_from
from ..errors import ConfigError
from ..models.registry import resolve_model_name
from .config import Config, DataConfig

__all__ = ["Check", "common_checks", "check_settings", "validate_config", "validate_device_settings"]


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
