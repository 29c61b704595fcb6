"""The ``dsnet pretrain`` config: same file format, override syntax and section names as ``dsnet train``.

Learning-rate scaling rule: ``optim.lr`` is the rate for ``optim.lr_batch`` images per optimiser
step (256 by default, as in Goyal et al. 2017); the run uses ``lr * global_batch / lr_batch`` with
``global_batch = data.batch_size x GPUs x optim.grad_accum``. ``optim.lr_batch: null`` uses
``optim.lr`` as it is. Schedule positions (``optim.steps``, ``optim.warmup_epochs``) are in epochs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ...errors import ConfigError
from ...models.registry import get_model_info, resolve_model_name
from ..config_checks import check_settings, common_checks

__all__ = ["PretrainConfig", "validate_pretrain_config"]


@dataclass
class ClsModelConfig:
    name: str = "dsnet_imagenet"
    num_classes: int = 1000
    head_channels: int = 1024  # width of the head's 1x1 conv (0: pooling + linear only)
    dropout: float = 0.0
    pretrained: str | None = None  # start from these classifier weights (e.g. a low-resolution phase)
    sync_bn: bool = True
    channels_last: bool = False


@dataclass
class ClsDataConfig:
    dataset: Literal["imagenet"] = "imagenet"  # ImageFolder layout, labels from the standard class index
    root: str | None = None  # required
    train_split: str = "train"  # sub-folder of root ("" = root itself)
    val_split: str = "val"
    crop_size: int = 224  # RandomResizedCrop output
    scale_range: list[float] = field(default_factory=lambda: [0.08, 1.0])
    flip: bool = True
    trivial_augment: bool = False
    interpolation: Literal["bilinear", "bicubic"] = "bilinear"
    eval_size: int = 224
    eval_crop_ratio: float = 0.875  # resize the short side to eval_size / ratio, then centre crop
    batch_size: int = 128  # per device
    num_workers: int = 8
    on_bad_sample: Literal["error", "skip"] = "error"


@dataclass
class ClsOptimConfig:
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.1  # for lr_batch images per step (linear scaling rule)
    lr_batch: int | None = 256
    momentum: float = 0.9
    nesterov: bool = False
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 1e-4
    no_decay_norm_bias: bool = True  # no weight decay on BatchNorm weights/biases and conv/linear biases
    schedule: Literal["cosine", "step"] = "cosine"
    steps: list[float] = field(default_factory=lambda: [30.0, 60.0, 90.0])  # epochs (step schedule)
    gamma: float = 0.1
    min_lr_ratio: float = 0.0  # cosine floor
    warmup_epochs: float = 0.0
    warmup_ratio: float = 0.01
    label_smoothing: float = 0.1
    mixup_alpha: float = 0.0  # > 0 enables mixup
    cutmix_alpha: float = 0.0  # > 0 enables cutmix (with both, each step picks one at random)
    grad_accum: int = 1
    amp: Literal["auto", "none", "bf16", "fp16"] = "auto"  # auto: bf16 where computed natively
    clip_grad_norm: float | None = None
    ema_decay: float | None = None  # e.g. 0.9998: keep an exponential moving average of the weights


@dataclass
class ClsTrainConfig:
    epochs: float | None = 100.0  # length of the run; train.iters (optimiser steps) wins when set
    iters: int | None = None
    seed: int = 304
    work_dir: str | None = None
    log_interval: int = 100
    val_interval: int | None = None  # iterations; null = once per epoch
    checkpoint_interval: int = 1000
    deterministic: bool = False
    progress: bool = True
    tensorboard: bool = True
    max_val_samples: int | None = None


@dataclass
class ClsEvalConfig:
    batch_size: int = 100
    num_workers: int = 4


@dataclass
class PretrainConfig:
    model: ClsModelConfig = field(default_factory=ClsModelConfig)
    data: ClsDataConfig = field(default_factory=ClsDataConfig)
    optim: ClsOptimConfig = field(default_factory=ClsOptimConfig)
    train: ClsTrainConfig = field(default_factory=ClsTrainConfig)
    eval: ClsEvalConfig = field(default_factory=ClsEvalConfig)
    name: str = "pretrain"


def validate_pretrain_config(cfg: PretrainConfig) -> PretrainConfig:
    """Every check possible before the run; the error names the key and its value."""
    m, d, o, t = cfg.model, cfg.data, cfg.optim, cfg.train
    try:
        classifier = get_model_info(resolve_model_name(m.name)).task == "classification"
    except ConfigError:
        classifier = True  # check_settings names the unknown model
    checks = [
        (classifier, "model.name", "is not a classifier (dsnet_imagenet, ...)"),
        (d.crop_size >= 16 and d.eval_size >= 16, "data.crop_size", "and data.eval_size must be >= 16"),
        (len(d.scale_range) == 2 and 0 < d.scale_range[0] <= d.scale_range[1] <= 1, "data.scale_range", "bad"),
        (0 < d.eval_crop_ratio <= 1, "data.eval_crop_ratio", "must be in (0, 1]"),
        (d.batch_size >= 2, "data.batch_size", "must be >= 2 (BatchNorm on MSAF's pooled maps)"),
        (o.lr_batch is None or o.lr_batch > 0, "optim.lr_batch", "must be positive or null"),
        (0 <= o.label_smoothing < 1, "optim.label_smoothing", "must be in [0, 1)"),
        (o.mixup_alpha >= 0 and o.cutmix_alpha >= 0, "optim.mixup_alpha", "and cutmix_alpha must be >= 0"),
        (o.warmup_epochs >= 0, "optim.warmup_epochs", "must be >= 0"),
        (o.ema_decay is None or 0 < o.ema_decay < 1, "optim.ema_decay", "must be in (0, 1) or null"),
        (list(o.steps) == sorted(o.steps), "optim.steps", "must be increasing"),
        (t.iters is not None or t.epochs is not None, "train.iters", "or train.epochs must be set"),
        (t.iters is None or t.iters > 0, "train.iters", "must be positive"),
        (t.epochs is None or t.epochs > 0, "train.epochs", "must be positive"),
        (t.val_interval is None or t.val_interval > 0, "train.val_interval", "must be positive or null"),
    ]
    check_settings(cfg, common_checks(cfg) + checks)
    return cfg
