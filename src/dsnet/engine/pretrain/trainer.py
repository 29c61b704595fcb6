"""The ImageNet pre-training loop, on the segmentation engine's parts: the same run life
(:class:`~dsnet.engine.training_run.TrainingRun`: work-dir rules, checkpoints, resume, signal handling,
DDP set-up and logs), resumable sampler and checkpoint format.

Resumable bit for bit on CPU: the batch order depends on ``(seed, epoch)``, each sample's augmentation
on ``(seed, epoch, index)``, mixup/cutmix on ``(seed, iteration)``, and the model, optimiser, EMA,
scaler, iteration and RNG states are checkpointed.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import ConfigError
from ..build import place_for_training
from ..sampler import ResumableBatchSampler
from ..training_run import TrainingRun, run_to_end
from .build import ClsSchedule, build_classifier, build_cls_datasets, build_cls_optimizer, scaled_lr
from .config import PretrainConfig, validate_pretrain_config
from .evaluate import ClsMetrics, evaluate_classifier
from .mixing import mix_batch, soft_targets
from .plots import plot_pretrain_curves

__all__ = ["PretrainTrainer", "pretrain"]

logger = logging.getLogger("dsnet")


class PretrainTrainer(TrainingRun):
    """One pre-training run (``resume``/``overwrite`` as for :class:`dsnet.engine.Trainer`)."""

    command = "pretrain"
    score_name = "top1"
    score_label = "top-1"
    dataset_name = "imagenet"

    def _check_config(self, cfg: PretrainConfig) -> None:
        validate_pretrain_config(cfg)

    def _check_device(self) -> None:
        if self.cfg.optim.amp == "fp16" and self.env.device.type != "cuda":
            raise ConfigError("optim.amp=fp16 needs a CUDA device; use bf16 or none on CPU")

    def _setup(self) -> None:
        cfg, env = self.cfg, self.env
        data = build_cls_datasets(cfg)
        self.train_set, self.val_set = data["train"], data["val"]
        self.model, self.ddp = place_for_training(
            build_classifier(cfg), env, channels_last=cfg.model.channels_last, sync_bn=cfg.model.sync_bn
        )
        self.optimizer = build_cls_optimizer(cfg, self.model)
        self._setup_ema(cfg.optim.ema_decay)
        self.batches_per_epoch = ResumableBatchSampler(
            len(self.train_set), cfg.data.batch_size, 0, env.world_size
        ).batches_per_epoch
        iters_per_epoch = self.batches_per_epoch / cfg.optim.grad_accum
        t = cfg.train
        self.total_iters = int(t.iters) if t.iters else max(1, math.ceil(float(t.epochs or 0) * iters_per_epoch))
        self.base_lr = scaled_lr(cfg, env.world_size)
        self.schedule = ClsSchedule(cfg, self.base_lr, iters_per_epoch, self.total_iters)
        self.val_interval = t.val_interval or max(1, round(iters_per_epoch))

    # ---------------------------------------------------------------------------------------------
    def _step(self, batches: Iterator[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
        cfg, o = self.cfg, self.cfg.optim
        lr = self.schedule(self.iteration)
        self._start_step(lr)
        loss_sum = correct = seen = 0.0
        for micro in range(o.grad_accum):
            images, labels = self._to_device(*next(batches))
            targets = soft_targets(labels, cfg.model.num_classes, o.label_smoothing)
            rng = np.random.default_rng((cfg.train.seed, self.iteration, micro, self.env.rank))
            images, targets = mix_batch(images, targets, rng, o.mixup_alpha, o.cutmix_alpha)
            logits, loss = self._forward_backward(images, targets, micro, _soft_cross_entropy)
            loss_sum += float(loss.detach()) / o.grad_accum
            correct += float((logits.detach().argmax(1) == labels).sum())
            seen += len(labels)
        self._optimizer_step()
        self.iteration += 1
        return {"loss": loss_sum, "train_top1": correct / max(seen, 1), "lr": lr}

    def validate(self) -> ClsMetrics | None:
        """Top-1/top-5 of the evaluated (EMA) weights on the val split; ``None`` when a stop signal came."""
        return evaluate_classifier(
            self._eval_model(),
            self.val_set,
            device=self.env.device,
            batch_size=self.cfg.eval.batch_size,
            num_workers=self.cfg.eval.num_workers,
            max_samples=self.cfg.train.max_val_samples,
            channels_last=self.cfg.model.channels_last,
            progress="val" if self.env.is_main and self.cfg.train.progress else False,
            should_stop=self._should_stop,
        )

    def _evaluate(self) -> ClsMetrics | None:
        return self.validate()

    # ---------------------------------------------------------------------------------------------
    def _score(self, metrics: ClsMetrics) -> float:
        return float(metrics.top1)

    def _val_message(self, m: ClsMetrics) -> str:
        return (
            f"val iter {self.iteration}: top-1 {100 * m.top1:.2f}% top-5 {100 * m.top5:.2f}% loss {m.loss:.4f} "
            f"on {m.num_images} images"
        )

    def _train_message(self, avg: dict[str, float], seconds_per_iter: float) -> str:
        return (
            f"iter {self.iteration}/{self.total_iters} loss {avg['loss']:.4f} "
            f"train top-1 {100 * avg['train_top1']:.2f}% lr {avg['lr']:.3e} {avg['images_per_s']:.1f} img/s"
        )

    def _start_message(self) -> str:
        cfg, ws = self.cfg, self.env.world_size
        epochs = self.total_iters * cfg.optim.grad_accum / self.batches_per_epoch
        return (
            f"pre-training {cfg.model.name} on {self.env.device} ({ws} process(es), "
            f"{cfg.data.batch_size * ws * cfg.optim.grad_accum} images/iteration, {self.total_iters} iterations = "
            f"{epochs:.2f} epochs of {len(self.train_set)} images, lr {self.base_lr:.4g}) -> {self.work_dir}"
        )

    def _plot(self, final: dict[str, Any] | None) -> None:
        plot_pretrain_curves(self.work_dir / "metrics.jsonl", self.work_dir / "curves.png")


def _soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float(), targets)


def pretrain(
    cfg: PretrainConfig,
    *,
    resume: str | os.PathLike | bool | None = None,
    overwrite: bool = False,
    device: str | None = None,
) -> dict[str, Any]:
    """Run the pre-training job ``cfg`` (resume and overwrite as in :func:`dsnet.engine.train`)."""
    return run_to_end(PretrainTrainer(cfg, resume=resume, overwrite=overwrite, device=device))
