"""The ImageNet pre-training loop, on the segmentation engine's parts: the same work-dir rules (lock, no
silent overwrite, resume), checkpoint format, resumable sampler, signal handling, DDP set-up and logs.

Resumable bit for bit on CPU: the batch order depends on ``(seed, epoch)``, each sample's augmentation
on ``(seed, epoch, index)``, mixup/cutmix on ``(seed, iteration)``, and the model, optimiser, EMA,
scaler, iteration and RNG states are checkpointed.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ...errors import ConfigError
from ...models import save_weights
from ..config import config_to_dict
from ..distributed import DistEnv, cleanup, init_distributed, param_divergence
from ..observe import RunRecorder
from ..run_files import resolve_work_dir, write_config, write_json
from ..sampler import ResumableBatchSampler, resumable_train_loader
from ..state import capture_rng_state, load_training_state, restore_rng_state, save_training_state
from ..stopping import SignalStop
from ..trainer import TrainingInterrupted
from ..workdir import RunDir
from .build import ClsSchedule, build_classifier, build_cls_datasets, build_cls_optimizer, scaled_lr
from .config import PretrainConfig, validate_pretrain_config
from .evaluate import ClsMetrics, evaluate_classifier
from .mixing import mix_batch, soft_targets
from .plots import plot_pretrain_curves

__all__ = ["PretrainTrainer", "pretrain"]

logger = logging.getLogger("dsnet")


class PretrainTrainer:
    """One pre-training run (``resume``/``overwrite`` as for :class:`dsnet.engine.Trainer`)."""

    def __init__(
        self,
        cfg: PretrainConfig,
        *,
        resume: str | os.PathLike | bool | None = None,
        overwrite: bool = False,
        device: str | None = None,
    ) -> None:
        validate_pretrain_config(cfg)
        self.cfg = cfg
        self.env: DistEnv = init_distributed(device)
        if cfg.optim.amp == "fp16" and self.env.device.type != "cuda":
            raise ConfigError("optim.amp=fp16 needs a CUDA device; use bf16 or none on CPU")
        self.work_dir = resolve_work_dir(cfg)
        self.run_dir = RunDir(self.work_dir)
        self._stop_signal: int | None = None
        self.signals = SignalStop(self._request_stop)
        restarted = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") not in ("", "0")
        if resume is None and restarted and self.run_dir.last_checkpoint.is_file():
            resume = True
        self.run_dir.claim(self.env, resuming=resume not in (None, False), overwrite=overwrite)
        try:
            self._setup(resume)
        except BaseException:
            self.run_dir.unlock()
            raise

    def _setup(self, resume: str | os.PathLike | bool | None) -> None:
        cfg, env = self.cfg, self.env
        torch.manual_seed(cfg.train.seed)
        np.random.seed(cfg.train.seed % 2**32)
        if cfg.train.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        elif env.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        data = build_cls_datasets(cfg)
        self.train_set, self.val_set = data["train"], data["val"]
        model = build_classifier(cfg).to(env.device)
        if cfg.model.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if env.distributed and cfg.model.sync_bn and env.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model
        self.ddp: nn.Module = (
            DDP(model, device_ids=[env.local_rank] if env.device.type == "cuda" else None) if env.distributed else model
        )
        self.optimizer = build_cls_optimizer(cfg, model)
        self.amp_dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[cfg.optim.amp]
        self.scaler = torch.amp.GradScaler(env.device.type, enabled=cfg.optim.amp == "fp16")
        self.ema = (
            AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.optim.ema_decay), use_buffers=True)
            if cfg.optim.ema_decay
            else None
        )
        accum = cfg.optim.grad_accum
        self.batches_per_epoch = ResumableBatchSampler(
            len(self.train_set), cfg.data.batch_size, 0, env.world_size
        ).batches_per_epoch
        iters_per_epoch = self.batches_per_epoch / accum
        t = cfg.train
        self.total_iters = int(t.iters) if t.iters else max(1, math.ceil(float(t.epochs or 0) * iters_per_epoch))
        self.base_lr = scaled_lr(cfg, env.world_size)
        self.schedule = ClsSchedule(cfg, self.base_lr, iters_per_epoch, self.total_iters)
        self.val_interval = t.val_interval or max(1, round(iters_per_epoch))
        self.iteration, self.best_top1, self.best_iteration = 0, -1.0, -1
        if resume not in (None, False):
            self._resume(self.run_dir.resolve_resume(resume))  # type: ignore[arg-type]

    # ---------------------------------------------------------------------------------------------
    def _resume(self, path: Path) -> None:
        state = load_training_state(path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state.get("ema"):
            self.ema.load_state_dict(state["ema"])
        self.iteration = int(state["iteration"])
        self.best_top1, self.best_iteration = float(state["best_top1"]), int(state["best_iteration"])
        restore_rng_state(state["rng"])
        if self.env.is_main:
            self.run_dir.truncate_metrics(self.iteration)
        logger.info("resumed from %s at iteration %d", path, self.iteration)

    def save_checkpoint(self, name: str = "last.pth") -> Path | None:
        if not self.env.is_main:
            return None
        return save_training_state(
            self.work_dir / name,
            model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            scaler=self.scaler.state_dict() if self.scaler.is_enabled() else {},
            ema=self.ema.state_dict() if self.ema is not None else {},
            iteration=self.iteration,
            best_top1=self.best_top1,
            best_iteration=self.best_iteration,
            rng=capture_rng_state(),
            config=config_to_dict(self.cfg),
            model_name=self.cfg.model.name,
            num_classes=self.cfg.model.num_classes,
        )

    def _request_stop(self, signum: int) -> None:
        self._stop_signal = signum

    def _should_stop(self) -> bool:
        flag = torch.tensor([1 if self._stop_signal is not None else 0], device=self.env.device)
        if self.env.distributed:
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            if flag.item() and self._stop_signal is None:
                self._stop_signal = signal.SIGTERM
        return bool(flag.item())

    def _loader(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        d, env = self.cfg.data, self.env
        batches, _ = resumable_train_loader(
            self.train_set,
            d.batch_size,
            d.num_workers,
            rank=env.rank,
            world_size=env.world_size,
            seed=self.cfg.train.seed,
            start_iter=self.iteration * self.cfg.optim.grad_accum,
            pin_memory=env.device.type == "cuda",
        )
        return batches

    def _step(self, batches: Iterator[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
        cfg, o = self.cfg, self.cfg.optim
        lr = self.schedule(self.iteration)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.ddp.train()
        loss_sum = correct = seen = 0.0
        for micro in range(o.grad_accum):
            images, labels = next(batches)
            images, labels = images.to(self.env.device, non_blocking=True), labels.to(self.env.device)
            if cfg.model.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            targets = soft_targets(labels, cfg.model.num_classes, o.label_smoothing)
            rng = np.random.default_rng((cfg.train.seed, self.iteration, micro, self.env.rank))
            images, targets = mix_batch(images, targets, rng, o.mixup_alpha, o.cutmix_alpha)
            last = micro == o.grad_accum - 1 or not isinstance(self.ddp, DDP)
            with contextlib.nullcontext() if last else self.ddp.no_sync():  # type: ignore[operator]
                with torch.autocast(self.env.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                    logits = self.ddp(images)
                loss = F.cross_entropy(logits.float(), targets)
                self.scaler.scale(loss / o.grad_accum).backward()
            loss_sum += float(loss.detach()) / o.grad_accum
            correct += float((logits.detach().argmax(1) == labels).sum())
            seen += len(labels)
        if o.clip_grad_norm:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), o.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.iteration += 1
        return {"loss": loss_sum, "train_top1": correct / max(seen, 1), "lr": lr}

    def validate(self) -> ClsMetrics | None:
        model = self.ema.module if self.ema is not None else self.model
        return evaluate_classifier(
            model,
            self.val_set,
            device=self.env.device,
            batch_size=self.cfg.eval.batch_size,
            num_workers=self.cfg.eval.num_workers,
            max_samples=self.cfg.train.max_val_samples,
            channels_last=self.cfg.model.channels_last,
            progress="val" if self.env.is_main and self.cfg.train.progress else False,
            should_stop=self._should_stop,
        )

    def _interrupt(self) -> TrainingInterrupted:
        return TrainingInterrupted(self._stop_signal or 0, self.iteration, self.save_checkpoint(), self.work_dir)

    # ---------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        cfg, main = self.cfg, self.env.is_main
        if self.iteration >= self.total_iters:
            self.run_dir.unlock()
            return {"already_finished": True, "iterations": self.iteration, "best_top1": self.best_top1}
        recorder = RunRecorder(self.work_dir, cfg.train.tensorboard) if main else None
        if main:
            write_config(self.work_dir / "config.yaml", cfg)
            global_batch = cfg.data.batch_size * self.env.world_size * cfg.optim.grad_accum
            logger.info(
                "pre-training %s on %s (%d process(es), %d images/iteration, %d iterations = %.2f epochs of %d "
                "images, lr %.4g) -> %s",
                cfg.model.name,
                self.env.device,
                self.env.world_size,
                global_batch,
                self.total_iters,
                self.total_iters * cfg.optim.grad_accum / self.batches_per_epoch,
                len(self.train_set),
                self.base_lr,
                self.work_dir,
            )
        self.signals.install()
        bar = None
        if main and cfg.train.progress:
            from tqdm import tqdm

            bar = tqdm(total=self.total_iters, initial=self.iteration, desc="pretrain", dynamic_ncols=True)
        try:
            last = self._loop(self._loader(), bar, recorder)
            self.save_checkpoint()
            return self._finish(last)
        finally:
            if bar is not None:
                bar.close()
            self.signals.restore()
            if recorder is not None:
                recorder.close()
            self.run_dir.unlock()

    def _loop(self, batches: Iterator[Any], bar: Any, recorder: RunRecorder | None) -> ClsMetrics | None:
        cfg = self.cfg
        images_per_iter = cfg.data.batch_size * self.env.world_size * cfg.optim.grad_accum
        totals: dict[str, float] = {}
        count, last, t_log = 0, None, time.perf_counter()
        while self.iteration < self.total_iters:
            if self._should_stop():
                raise self._interrupt()
            values = self._step(batches)
            if not math.isfinite(values["loss"]):
                path = self.save_checkpoint("nonfinite.pth")
                raise FloatingPointError(f"non-finite loss at iteration {self.iteration}; state saved to {path}")
            totals = {k: totals.get(k, 0.0) + v for k, v in values.items()}
            count += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{values['loss']:.3f}", lr=f"{values['lr']:.2e}")
            it = self.iteration
            if it % cfg.train.log_interval == 0 or it == self.total_iters:
                elapsed = time.perf_counter() - t_log
                avg = {k: v / count for k, v in totals.items()}
                avg["images_per_s"] = images_per_iter * count / max(elapsed, 1e-9)
                avg["epoch"] = it * cfg.optim.grad_accum / self.batches_per_epoch
                if recorder is not None:
                    recorder.log("train", it, avg)
                    logger.info(
                        "iter %d/%d loss %.4f train top-1 %.2f%% lr %.3e %.1f img/s",
                        it,
                        self.total_iters,
                        avg["loss"],
                        100 * avg["train_top1"],
                        avg["lr"],
                        avg["images_per_s"],
                    )
                totals, count, t_log = {}, 0, time.perf_counter()
            if it % cfg.train.checkpoint_interval == 0 and it != self.total_iters:
                self.save_checkpoint()
            if it % self.val_interval == 0 or it == self.total_iters:
                last = self._validate_and_record(recorder)
                t_log = time.perf_counter()
        return last

    def _validate_and_record(self, recorder: RunRecorder | None) -> ClsMetrics:
        m = self.validate()
        if m is None:
            raise self._interrupt()
        if self.env.is_main:
            if recorder is not None:
                recorder.log("val", self.iteration, m.to_dict())
            logger.info(
                "val iter %d: top-1 %.2f%% top-5 %.2f%% loss %.4f on %d images",
                self.iteration,
                100 * m.top1,
                100 * m.top5,
                m.loss,
                m.num_images,
            )
            if m.top1 > self.best_top1:
                self.best_top1, self.best_iteration = m.top1, self.iteration
                save_weights(self._eval_model(), self.work_dir / "best.safetensors", metadata=self._metadata(m))
                write_json(self.work_dir / "best_metrics.json", {"iteration": self.iteration, **m.to_dict()})
        return m

    def _eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def _metadata(self, m: ClsMetrics | None = None) -> dict[str, str]:
        c = self.cfg
        meta = {"model": c.model.name, "num_classes": str(c.model.num_classes), "dataset": "imagenet"}
        return {**meta, "iteration": str(self.iteration), **({"top1": f"{m.top1:.6f}"} if m else {})}

    def _finish(self, last: ClsMetrics | None) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "iterations": self.iteration,
            "best_top1": self.best_top1,
            "best_iteration": self.best_iteration,
            "world_size": self.env.world_size,
        }
        if self.env.distributed:
            summary["param_max_abs_diff_across_ranks"] = param_divergence(self.model)
        if self.env.is_main:
            save_weights(self._eval_model(), self.work_dir / "final.safetensors", metadata=self._metadata())
            if last is not None:
                summary["final"] = last.to_dict()
            plot_pretrain_curves(self.work_dir / "metrics.jsonl", self.work_dir / "curves.png")
            write_json(self.work_dir / "summary.json", summary)
        return summary

    def close(self) -> None:
        self.run_dir.unlock()
        cleanup(self.env)


def pretrain(
    cfg: PretrainConfig,
    *,
    resume: str | os.PathLike | bool | None = None,
    overwrite: bool = False,
    device: str | None = None,
) -> dict[str, Any]:
    """Run the pre-training job ``cfg`` (resume and overwrite as in :func:`dsnet.engine.train`)."""
    trainer = PretrainTrainer(cfg, resume=resume, overwrite=overwrite, device=device)
    try:
        return trainer.run()
    finally:
        trainer.close()
