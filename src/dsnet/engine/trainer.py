"""The training loop: iteration-based, the paper's protocol, on one device or under torchrun/DDP.

What makes a run trustworthy here:
* resumable bit for bit: model, optimiser, AMP scaler, iteration, best score and RNG states are
  checkpointed, the batch order depends only on ``(seed, epoch)`` and each sample's augmentation
  only on ``(seed, epoch, index)``; an elastic restart (torchrun ``--max-restarts``) resumes by itself;
* SIGINT/SIGTERM stop within one iteration or one validation batch and write a checkpoint; a
  second signal exits at once;
* one run per work dir (lock file), and a new run never overwrites another run's checkpoints;
* settings are checked before anything starts; broken labels (batches with no labelled pixel)
  warn and then stop the run instead of training on a loss of 0.
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
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from ..models import load_weights, save_weights
from .build import build_criterion, build_datasets, build_optimizer, build_training_model
from .config import Config, config_to_dict, validate_config, validate_device_settings
from .distributed import DistEnv, cleanup, init_distributed, param_divergence
from .evaluator import EvaluationInterrupted, evaluate_with_config
from .metrics import SegMetrics
from .observe import RunRecorder, format_train_log, plot_run
from .run_files import resolve_work_dir, write_config, write_json
from .sampler import resumable_train_loader
from .schedule import poly_lr
from .state import capture_rng_state, load_training_state, restore_rng_state, save_training_state
from .stopping import EmptyLabelGuard, SignalStop
from .workdir import RunDir

__all__ = ["Trainer", "train", "TrainingInterrupted"]

logger = logging.getLogger("dsnet")


class TrainingInterrupted(Exception):
    """Raised after a signal stopped training and the checkpoint was written."""

    def __init__(self, signum: int, iteration: int, checkpoint: Path | None, work_dir: Path) -> None:
        super().__init__(f"stopped by signal {signum} at iteration {iteration}; checkpoint: {checkpoint}")
        self.signum = signum
        self.iteration = iteration
        self.checkpoint = checkpoint
        self.work_dir = work_dir


class Trainer:
    """Owns the model, optimiser, data and bookkeeping of one training run.

    ``resume``: ``None`` (a new run), ``True`` (this work dir's ``last.pth``), or a checkpoint
    file / work dir. ``overwrite``: a new run may replace another run's files in the work dir.
    """

    def __init__(
        self,
        cfg: Config,
        *,
        resume: str | os.PathLike | bool | None = None,
        overwrite: bool = False,
        device: str | None = None,
    ) -> None:
        validate_config(cfg)
        self.cfg = cfg
        self.env: DistEnv = init_distributed(device)
        self.work_dir = resolve_work_dir(cfg)
        self.run_dir = RunDir(self.work_dir)
        self._stop_signal: int | None = None
        self.signals = SignalStop(self._request_stop)
        self.pending_validation = False
        validate_device_settings(cfg, self.env.device.type, self.env.distributed)
        restarted = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") not in ("", "0")
        if resume is None and restarted and self.run_dir.last_checkpoint.is_file():
            logger.warning("elastic restart: resuming from %s", self.run_dir.last_checkpoint)
            resume = True
        self.run_dir.claim(self.env, resuming=resume is not None and resume is not False, overwrite=overwrite)
        if restarted and resume is None and self.env.is_main:
            self.run_dir.truncate_metrics(0)  # restarted before the first checkpoint: start the log afresh

        try:
            self._setup(resume)
        except BaseException:
            self.run_dir.unlock()
            raise

    def _setup(self, resume: str | os.PathLike | bool | None) -> None:
        cfg = self.cfg
        torch.manual_seed(cfg.train.seed)
        np.random.seed(cfg.train.seed % 2**32)
        if cfg.train.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        elif self.env.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

        datasets = build_datasets(cfg)
        self.train_set, self.val_set = datasets["train"], datasets["val"]
        self.class_names = list(self.train_set.info.classes)
        self.ignore_index = int(self.train_set.info.ignore_index)

        self.model, self.ddp = build_training_model(cfg, self.env)
        self.optimizer = build_optimizer(cfg, self.model)
        self.amp_dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[cfg.optim.amp]
        self.scaler = torch.amp.GradScaler(
            self.env.device.type, enabled=(cfg.optim.amp == "fp16" and self.env.device.type == "cuda")
        )
        self.criterion = build_criterion(cfg, self.ignore_index).to(self.env.device)

        self.iteration = 0
        self.best_miou = -1.0
        self.best_iteration = -1
        self.empty_labels = EmptyLabelGuard(cfg.train.max_empty_batches, self.ignore_index, cfg.data.root)
        if resume is not None and resume is not False:
            self._resume(self.run_dir.resolve_resume(resume))

    # -------------------------------------------------------------------------------------------
    def _resume(self, path: Path) -> None:
        state = load_training_state(path)
        load_weights(self.model, state["model"], part="full", source=str(path))
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.iteration = int(state["iteration"])
        self.best_miou = float(state["best_miou"])
        self.best_iteration = int(state.get("best_iteration", -1))
        self.pending_validation = bool(state.get("pending_validation", False))
        restore_rng_state(state["rng"])
        saved_iters = state.get("config", {}).get("train", {}).get("iters")
        if saved_iters is not None and saved_iters != self.cfg.train.iters:
            logger.warning(
                "resuming with train.iters=%s, the checkpoint's run had %s: the LR schedule changes",
                self.cfg.train.iters,
                saved_iters,
            )
        if self.env.is_main:
            self.run_dir.truncate_metrics(self.iteration)
        logger.info("resumed from %s at iteration %d (best mIoU %.4f)", path, self.iteration, self.best_miou)

    def save_checkpoint(self, name: str = "last.pth", pending_validation: bool = False) -> Path | None:
        if not self.env.is_main:
            return None
        return save_training_state(
            self.work_dir / name,
            model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            scaler=self.scaler.state_dict() if self.scaler.is_enabled() else {},
            iteration=self.iteration,
            best_miou=self.best_miou,
            best_iteration=self.best_iteration,
            pending_validation=pending_validation,
            rng=capture_rng_state(),
            config=config_to_dict(self.cfg),
            model_name=self.cfg.model.name,
            num_classes=self.cfg.model.num_classes,
        )

    # -------------------------------------------------------------------------------------------
    def _loader(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        d = self.cfg.data
        batches, self.batches_per_epoch = resumable_train_loader(
            self.train_set,  # indexed by (index, epoch): augmentation seeded per sample
            d.batch_size,
            d.num_workers,
            rank=self.env.rank,
            world_size=self.env.world_size,
            seed=self.cfg.train.seed,
            start_iter=self.iteration * self.cfg.optim.grad_accum,
            pin_memory=self.env.device.type == "cuda",
        )
        return batches

    def _sync_flags(self, empty_batch: bool = False) -> tuple[bool, bool]:
        """(stop requested on any rank, this step's batch had no labelled pixel on every rank)."""
        flags = [1 if self._stop_signal is not None else 0, 0 if empty_batch else 1]
        if self.env.distributed:
            t = torch.tensor(flags, device=self.env.device)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            flags = t.tolist()
            if flags[0] and self._stop_signal is None:
                self._stop_signal = signal.SIGTERM
        return bool(flags[0]), not flags[1]

    def _request_stop(self, signum: int) -> None:
        self._stop_signal = signum

    def _should_stop(self) -> bool:
        return self._sync_flags()[0]

    def _step(self, batches: Iterator[tuple[torch.Tensor, torch.Tensor]]) -> tuple[dict[str, float], bool]:
        """One optimiser step; returns the logged values and whether the batch had no labelled pixel."""
        cfg = self.cfg
        accum = cfg.optim.grad_accum
        o = cfg.optim
        lr = poly_lr(o.lr, self.iteration, cfg.train.iters, o.poly_power, o.warmup_iters, o.warmup_ratio)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.ddp.train()
        totals: dict[str, float] = {}
        labelled = 0
        for micro in range(accum):
            images, labels = next(batches)
            images = images.to(self.env.device, non_blocking=True)
            labels = labels.to(self.env.device, non_blocking=True)
            labelled += int((labels != self.ignore_index).sum())
            if cfg.model.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            last = micro == accum - 1 or not isinstance(self.ddp, DDP)
            with contextlib.nullcontext() if last else self.ddp.no_sync():
                with torch.autocast(self.env.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                    outputs = self.ddp(images)
                loss = self.criterion(outputs, labels)
                self.scaler.scale(loss.total / accum).backward()
            for k, v in loss.as_floats().items():
                key = "loss" if k == "total" else f"loss_{k}"
                totals[key] = totals.get(key, 0.0) + v / accum
        if o.clip_grad_norm:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), o.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.iteration += 1
        totals["lr"] = lr
        return totals, labelled == 0

    def validate(self) -> SegMetrics:
        """Evaluate on the validation set; a stop signal abandons it within one batch."""
        return evaluate_with_config(
            self.model,
            self.val_set,
            self.cfg,
            device=self.env.device,
            progress="val" if self.env.is_main and self.cfg.train.progress else False,
            should_stop=self._should_stop,
        )

    def _interrupt(self, pending_validation: bool) -> TrainingInterrupted:
        path = self.save_checkpoint(pending_validation=pending_validation)
        return TrainingInterrupted(self._stop_signal or 0, self.iteration, path, self.work_dir)

    # -------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        main = self.env.is_main
        if self.iteration >= cfg.train.iters and not self.pending_validation:
            logger.warning(
                "%s: this run already finished at iteration %d; nothing to do", self.work_dir, self.iteration
            )
            self.run_dir.unlock()
            return {
                "already_finished": True,
                "iterations": self.iteration,
                "best_miou": self.best_miou,
                "best_iteration": self.best_iteration,
            }
        recorder = RunRecorder(self.work_dir, cfg.train.tensorboard) if main else None
        if main:
            write_config(self.work_dir / "config.yaml", cfg)
            logger.info(
                "training %s on %s (%d process%s, %d images/iteration) for %d iterations -> %s",
                cfg.model.name,
                self.env.device,
                self.env.world_size,
                "es" if self.env.world_size > 1 else "",
                cfg.data.batch_size * self.env.world_size * cfg.optim.grad_accum,
                cfg.train.iters,
                self.work_dir,
            )
        self.signals.install()
        bar = None
        if main and cfg.train.progress:
            from tqdm import tqdm

            bar = tqdm(total=cfg.train.iters, initial=self.iteration, desc="train", dynamic_ncols=True)
        last_val: SegMetrics | None = None
        try:
            if self.pending_validation:
                last_val = self._validate_and_record(recorder)
            batches = self._loader()
            last_val = self._loop(batches, bar, recorder) or last_val
            self.save_checkpoint()
            return self._finish(last_val)
        finally:
            if bar is not None:
                bar.close()
            self.signals.restore()
            if recorder is not None:
                recorder.close()
            self.run_dir.unlock()  # the work dir is free once the run ends, however it ends

    def _loop(self, batches: Iterator[Any], bar: Any, recorder: RunRecorder | None) -> SegMetrics | None:
        cfg = self.cfg
        images_per_iter = cfg.data.batch_size * self.env.world_size * cfg.optim.grad_accum
        totals: dict[str, float] = {}
        count = 0
        last_val: SegMetrics | None = None
        t_log = time.perf_counter()
        empty = False
        while self.iteration < cfg.train.iters:
            stop, all_empty = self._sync_flags(empty)
            self.empty_labels.update(all_empty, self.iteration)
            if stop:
                raise self._interrupt(pending_validation=False)
            values, empty = self._step(batches)
            if not all(math.isfinite(v) for v in values.values()):
                path = self.save_checkpoint("nonfinite.pth")
                raise FloatingPointError(
                    f"non-finite loss at iteration {self.iteration}: {values}; state saved to {path}"
                )
            for k, v in values.items():
                totals[k] = totals.get(k, 0.0) + v
            count += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{values['loss']:.4f}", lr=f"{values['lr']:.2e}")
            it = self.iteration
            if it % cfg.train.log_interval == 0 or it == cfg.train.iters:
                elapsed = time.perf_counter() - t_log
                avg = {k: v / count for k, v in totals.items()}
                avg["images_per_s"] = images_per_iter * count / max(elapsed, 1e-9)
                avg["epoch"] = (it * cfg.optim.grad_accum) / self.batches_per_epoch
                if recorder is not None:
                    recorder.log("train", it, avg)
                    logger.info("%s", format_train_log(it, cfg.train.iters, avg, elapsed / max(count, 1)))
                totals, count = {}, 0
                t_log = time.perf_counter()
            if it % cfg.train.checkpoint_interval == 0 and it != cfg.train.iters:
                self.save_checkpoint()
            if it % cfg.train.val_interval == 0 or it == cfg.train.iters:
                last_val = self._validate_and_record(recorder)
                t_log = time.perf_counter()
        self.empty_labels.update(self._sync_flags(empty)[1], self.iteration)
        return last_val

    def _validate_and_record(self, recorder: RunRecorder | None) -> SegMetrics:
        try:
            m = self.validate()
        except EvaluationInterrupted:
            raise self._interrupt(pending_validation=True) from None
        self.pending_validation = False
        if self.env.is_main:
            values = {
                "miou": m.miou,
                "miou_reference": m.miou_reference,
                "pixel_accuracy": m.pixel_accuracy,
                "mean_accuracy": m.mean_accuracy,
            }
            if recorder is not None:
                recorder.log("val", self.iteration, values)
            logger.info(
                "val iter %d: mIoU %.2f%% (reference convention %.2f%%), pixel acc %.2f%% on %d images",
                self.iteration,
                100 * m.miou,
                100 * m.miou_reference,
                100 * m.pixel_accuracy,
                m.num_images,
            )
            if m.miou > self.best_miou:
                self.best_miou = m.miou
                self.best_iteration = self.iteration
                save_weights(self.model, self.work_dir / "best.safetensors", metadata=self._weights_metadata(m))
                write_json(self.work_dir / "best_metrics.json", {"iteration": self.iteration, **m.to_dict()})
        # every rank keeps the same best score (for resume and early decisions)
        if self.env.distributed:
            t = torch.tensor([self.best_miou, float(self.best_iteration)], device=self.env.device, dtype=torch.float64)
            dist.broadcast(t, src=0)
            self.best_miou, self.best_iteration = float(t[0]), int(t[1])
        return m

    def _weights_metadata(self, m: SegMetrics | None = None) -> dict[str, str]:
        c = self.cfg
        meta = {"model": c.model.name, "num_classes": str(c.model.num_classes), "dataset": c.data.dataset}
        return {**meta, "iteration": str(self.iteration), **({"miou": f"{m.miou:.6f}"} if m else {})}

    def _finish(self, last_val: SegMetrics | None) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "iterations": self.iteration,
            "best_miou": self.best_miou,
            "best_iteration": self.best_iteration,
            "world_size": self.env.world_size,
        }
        if self.env.distributed:
            summary["param_max_abs_diff_across_ranks"] = param_divergence(self.model)
        if self.env.is_main:
            save_weights(self.model, self.work_dir / "final.safetensors", metadata=self._weights_metadata())
            if last_val is not None:
                summary["final"] = last_val.to_dict()
            title = f"{self.cfg.name}: per-class IoU at iteration {self.iteration}"
            plot_run(self.work_dir, summary.get("final", {}).get("iou"), self.class_names, title)
            write_json(self.work_dir / "summary.json", summary)
            logger.info("done: best mIoU %.2f%% at iteration %d", 100 * self.best_miou, self.best_iteration)
        return summary

    def close(self) -> None:
        """Release the work dir and destroy the process group if this trainer created it."""
        self.run_dir.unlock()
        cleanup(self.env)


def train(
    cfg: Config,
    *,
    resume: str | os.PathLike | bool | None = None,
    overwrite: bool = False,
    device: str | None = None,
) -> dict[str, Any]:
    """Run a training job described by ``cfg`` (see :class:`dsnet.engine.config.Config`).

    ``resume=True`` continues from the work dir's ``last.pth`` (a path names another checkpoint
    or work dir); a new run refuses a work dir holding another run unless ``overwrite``.
    Returns the run's summary (``already_finished`` when there was nothing left to do).
    """
    trainer = Trainer(cfg, resume=resume, overwrite=overwrite, device=device)
    try:
        return trainer.run()
    finally:
        trainer.close()
