"""Build what a pre-training config describes: datasets, classifier, optimiser (with or without weight
decay on norms and biases) and the learning rate at each iteration."""

from __future__ import annotations

import logging

import torch
from torch import nn

from ...data.classify_transforms import ClassifyEvalTransform, ClassifyTrainTransform
from ...data.imagenet import ImageNetFolder
from ...models import create_model, get_model_info, load_weights
from ..schedule import cosine_lr, step_lr
from .config import PretrainConfig

__all__ = ["build_cls_datasets", "build_classifier", "build_cls_optimizer", "scaled_lr", "ClsSchedule"]

logger = logging.getLogger("dsnet")


def build_cls_datasets(cfg: PretrainConfig, *, train: bool = True) -> dict[str, ImageNetFolder]:
    """``{'train': ..., 'val': ...}`` (only ``'val'`` when ``train`` is False)."""
    info = get_model_info(cfg.model.name)
    d = cfg.data
    assert d.root is not None, "validate_pretrain_config checks data.root"
    eval_tf = ClassifyEvalTransform(d.eval_size, d.eval_crop_ratio, d.interpolation, info.mean, info.std)
    resize = int(round(d.eval_size / d.eval_crop_ratio))
    out = {"val": ImageNetFolder(d.root, d.val_split, eval_tf, draft_size=(resize, resize))}
    if train:
        train_tf = ClassifyTrainTransform(
            d.crop_size,
            tuple(d.scale_range),
            flip=d.flip,
            trivial_augment=d.trivial_augment,
            interpolation=d.interpolation,
            mean=info.mean,
            std=info.std,
        )
        out["train"] = ImageNetFolder(
            d.root, d.train_split, train_tf, seed=cfg.train.seed, on_bad_sample=d.on_bad_sample
        )
    return out


def build_classifier(cfg: PretrainConfig) -> nn.Module:
    m = cfg.model
    model = create_model(m.name, num_classes=m.num_classes, head_channels=m.head_channels, dropout=m.dropout)
    if m.pretrained:
        logger.info("%s", load_weights(model, m.pretrained, source=m.pretrained))
    return model


def _is_no_decay(name: str, param: nn.Parameter, norm_params: set[int]) -> bool:
    return param.ndim <= 1 or id(param) in norm_params or name.endswith(".bias")


def build_cls_optimizer(cfg: PretrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD or AdamW; with ``optim.no_decay_norm_bias`` the norm weights and all biases get no weight decay."""
    o = cfg.optim
    if o.no_decay_norm_bias:
        norm_params = {
            id(p)
            for mod in model.modules()
            if isinstance(mod, nn.modules.batchnorm._NormBase)
            for p in mod.parameters()
        }
        named = list(model.named_parameters())
        groups = [
            {"params": [p for n, p in named if not _is_no_decay(n, p, norm_params)], "weight_decay": o.weight_decay},
            {"params": [p for n, p in named if _is_no_decay(n, p, norm_params)], "weight_decay": 0.0},
        ]
    else:
        groups = [{"params": list(model.parameters()), "weight_decay": o.weight_decay}]
    if o.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=o.lr, betas=(o.betas[0], o.betas[1]))
    return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov)


def scaled_lr(cfg: PretrainConfig, world_size: int) -> float:
    """``optim.lr`` scaled linearly from ``optim.lr_batch`` images to the global batch of a step."""
    o = cfg.optim
    global_batch = cfg.data.batch_size * world_size * o.grad_accum
    return o.lr if o.lr_batch is None else o.lr * global_batch / o.lr_batch


class ClsSchedule:
    """The LR of every iteration: warm-up then cosine or steps, with positions given in epochs."""

    def __init__(self, cfg: PretrainConfig, base_lr: float, iters_per_epoch: float, total_iters: int) -> None:
        o = cfg.optim
        self.cfg, self.base_lr, self.total = cfg, base_lr, total_iters
        self.warmup = int(round(o.warmup_epochs * iters_per_epoch))
        self.milestones = [int(round(e * iters_per_epoch)) for e in o.steps]

    def __call__(self, iteration: int) -> float:
        o = self.cfg.optim
        if o.schedule == "step":
            return step_lr(self.base_lr, iteration, self.milestones, o.gamma, self.warmup, o.warmup_ratio)
        return cosine_lr(self.base_lr, iteration, self.total, self.warmup, o.warmup_ratio, o.min_lr_ratio)
