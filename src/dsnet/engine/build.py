"""Build what a config describes: datasets with their transforms, the model, optimiser and loss."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from ..data import (
    EvalTransform,
    SegmentationDataset,
    TrainTransform,
    balanced_class_weights,
    build_dataset,
    class_pixel_counts,
)
from ..data.class_maps import class_map_lut
from ..data.mixture import ExtraPart, MixedDataset
from ..data.photometric import photometric_from
from ..errors import ConfigError
from ..models import create_model, get_model_info, load_weights, weights_part
from .config import Config, StageConfig
from .distributed import DistEnv
from .losses import CITYSCAPES_CLASS_WEIGHTS, DSNetLoss

__all__ = [
    "build_split",
    "train_transform",
    "build_datasets",
    "build_model",
    "build_training_model",
    "place_for_training",
    "build_optimizer",
    "build_criterion",
    "class_weights",
]

logger = logging.getLogger("dsnet")


def train_transform(cfg: Config, stage: StageConfig | None = None) -> TrainTransform:
    """The training augmentation of the ``data`` section, with the sizes of ``stage`` where it sets them."""
    info = get_model_info(cfg.model.name)
    d = cfg.data
    crop = stage.crop_size if stage is not None and stage.crop_size is not None else d.crop_size
    base = stage.base_size if stage is not None and stage.base_size is not None else d.base_size
    scales = stage.scale_range if stage is not None and stage.scale_range is not None else d.scale_range
    return TrainTransform(
        crop_size=(int(crop[0]), int(crop[1])),
        base_size=base,
        scale_range=(float(scales[0]), float(scales[1])),
        scale_step=d.scale_step,
        short_side=d.short_side,
        flip=d.flip,
        mean=info.mean,
        std=info.std,
        color_jitter=d.color_jitter,
        photometric=photometric_from(d.photometric),
    )


def build_split(cfg: Config, split: str, train: bool) -> SegmentationDataset:
    """One split of the config's dataset, with the training or the evaluation transform; for training,
    mixed with the datasets of ``data.extra_train`` where it names any."""
    info = get_model_info(cfg.model.name)
    d = cfg.data
    if train:
        transform: Any = train_transform(cfg)
    else:
        transform = EvalTransform(mean=info.mean, std=info.std, short_side=cfg.eval.short_side)
    mixed = train and bool(d.extra_train)
    assert d.root is not None, "validate_config checks data.root"
    ds = build_dataset(
        d.dataset,
        d.root,
        split,
        transform=None if mixed else transform,
        seed=cfg.train.seed,
        on_bad_sample=d.on_bad_sample,
        **d.options,
    )
    if ds.num_classes != cfg.model.num_classes:
        raise ConfigError(
            f"model.num_classes={cfg.model.num_classes} but the {split!r} split of {d.dataset} at {d.root} "
            f"has {ds.num_classes} classes"
        )
    if not mixed:
        return ds
    mixture = MixedDataset(
        ds, [_extra_part(cfg, i, ds) for i in range(len(d.extra_train))], transform, cfg.train.seed, d.on_bad_sample
    )
    logger.info("training on %s", ", ".join(f"{k} {n}" for k, n in mixture.counts().items()))
    return mixture


def _extra_part(cfg: Config, i: int, main: SegmentationDataset) -> ExtraPart:
    """``data.extra_train[i]`` built (without a transform: the mixture applies the one of the whole), its class
    map checked against ``main``'s classes."""
    extra = cfg.data.extra_train[i]
    assert extra.root is not None, "validate_config checks data.extra_train[].root"
    try:
        ds = build_dataset(
            extra.dataset,
            extra.root,
            extra.split,
            seed=cfg.train.seed,
            on_bad_sample=cfg.data.on_bad_sample,
            **extra.options,
        )
        class_map_lut(ds.label_space, main.label_space, extra.class_map)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"data.extra_train[{i}]: {e}") from None
    return ExtraPart(ds, extra.class_map, extra.repeat)


def build_datasets(cfg: Config) -> dict[str, SegmentationDataset]:
    """The training and validation datasets of a config with their transforms."""
    return {"train": build_split(cfg, cfg.data.train_split, True), "val": build_split(cfg, cfg.data.val_split, False)}


def build_model(cfg: Config, *, aux_heads: bool = True) -> nn.Module:
    """The config's model, with ``model.pretrained`` loaded (classifier reset when asked)."""
    model = create_model(cfg.model.name, num_classes=cfg.model.num_classes, aux_heads=aux_heads)
    if cfg.model.pretrained:
        load_weights(  # logs its report (what loaded, what stayed at initialisation)
            model,
            cfg.model.pretrained,
            part=weights_part(cfg.model.name),  # type: ignore[arg-type]
            reset_classifier=cfg.model.reset_classifier,
        )
    return model


def place_for_training(
    model: nn.Module, env: DistEnv, *, channels_last: bool = False, sync_bn: bool = False
) -> tuple[nn.Module, nn.Module]:
    """``model`` on its device (channels_last, SyncBatchNorm under multi-GPU DDP) and the module to call in
    training: the DDP wrapper when distributed, else the model itself. Both trainers place theirs so."""
    model = model.to(env.device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if env.distributed and sync_bn:
        if env.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        else:
            logger.warning("SyncBatchNorm needs GPUs; on %s each process keeps its own BN statistics", env.device.type)
    if not env.distributed:
        return model, model
    return model, DDP(model, device_ids=[env.local_rank] if env.device.type == "cuda" else None)


def build_training_model(cfg: Config, env: DistEnv) -> tuple[nn.Module, nn.Module]:
    """The config's model placed for training (see :func:`place_for_training`)."""
    return place_for_training(build_model(cfg), env, channels_last=cfg.model.channels_last, sync_bn=cfg.model.sync_bn)


def build_optimizer(cfg: Config, model: nn.Module) -> torch.optim.Optimizer:
    o = cfg.optim
    return torch.optim.SGD(
        model.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, nesterov=o.nesterov
    )


def class_weights(cfg: Config, train_set: SegmentationDataset | None = None) -> list[float] | None:
    """``data.class_weights``: explicit values, the Cityscapes preset, or weights computed from the labels
    of ``train_set`` (``median_frequency``, ``sqrt_median_frequency``)."""
    cw = cfg.data.class_weights
    if cw is None:
        return None
    if cw == "cityscapes":
        return list(CITYSCAPES_CLASS_WEIGHTS)
    if isinstance(cw, str):  # validate_config accepts only the known methods
        if train_set is None:
            raise ConfigError(f"data.class_weights={cw!r} is computed from the training labels: give the train set")
        weights = balanced_class_weights(*class_pixel_counts(train_set), cw)
        logger.info("class weights (%s): %s", cw, " ".join(f"{w:.3f}" for w in weights))
        return weights
    return list(cw)


def build_criterion(cfg: Config, ignore_index: int, train_set: SegmentationDataset | None = None) -> DSNetLoss:
    return DSNetLoss(
        cfg.model.num_classes,
        class_weights=class_weights(cfg, train_set),
        ohem=cfg.loss.ohem,
        ohem_thresh=cfg.loss.ohem_thresh,
        ohem_min_kept=cfg.loss.ohem_min_kept,
        ignore_index=ignore_index,
        loss_weights=tuple(cfg.loss.weights),
        label_smoothing=cfg.loss.label_smoothing,
        boundary_weight=cfg.loss.boundary_weight,
        boundary_width=cfg.loss.boundary_width,
    )
