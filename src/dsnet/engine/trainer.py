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
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader

from ..data import worker_init_fn
from ..errors import ConfigError, DataError
from ..fileio import atomic_write, check_writable
from ..models import load_weights, save_weights
from .build import build_criterion, build_datasets, build_model, build_optimizer
from .config import Config, config_to_dict, validate_config
from .distributed import DistEnv, all_ranks_agree, cleanup, init_distributed
from .evaluator import EvaluationInterrupted, evaluate_with_config
from .metrics import SegMetrics
from .observe import RunRecorder, plot_class_iou, plot_training_curves
from .run_files import fmt_seconds, resolve_work_dir, write_json
from .sampler import ResumableBatchSampler
from .schedule import poly_lr
from .state import capture_rng_state, load_training_state, restore_rng_state, save_training_state
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
        self._previous_handlers: dict[int, Any] = {}
        self.pending_validation = False
        self.use_sync_bn = self.env.distributed and cfg.model.sync_bn and self.env.device.type != "cpu"
        self._check_device_settings()
        restarted = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") not in ("", "0")
        if resume is None and restarted and self.run_dir.last_checkpoint.is_file():
            logger.warning("elastic restart: resuming from %s", self.run_dir.last_checkpoint)
            resume = True
        self._claim_work_dir(resume is not None and resume is not False, overwrite)
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

        model = build_model(cfg)
        model.to(self.env.device)
        if cfg.model.channels_last:
            model.to(memory_format=torch.channels_last)
        if self.use_sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        elif self.env.distributed and cfg.model.sync_bn:
            logger.warning(
                "SyncBatchNorm needs GPUs; on %s each process keeps its own BN statistics", self.env.device.type
            )
        self.model = model
        self.ddp: nn.Module = (
            DDP(model, device_ids=[self.env.local_rank] if self.env.device.type == "cuda" else None)
            if self.env.distributed
            else model
        )
        self.optimizer = build_optimizer(cfg, model)
        self.amp_dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[cfg.optim.amp]
        self.scaler = torch.amp.GradScaler(
            self.env.device.type, enabled=(cfg.optim.amp == "fp16" and self.env.device.type == "cuda")
        )
        self.criterion = build_criterion(cfg, self.ignore_index).to(self.env.device)

        self.iteration = 0
        self.best_miou = -1.0
        self.best_iteration = -1
        self.empty_streak = 0
        if resume is not None and resume is not False:
            self._resume(self.run_dir.resolve_resume(resume))

    # -------------------------------------------------------------------------------------------
    def _check_device_settings(self) -> None:
        c = self.cfg
        if c.data.batch_size == 1 and not self.use_sync_bn:
            raise ConfigError(
                "data.batch_size=1 cannot train DSNet (BatchNorm on its 1x1 pooled maps needs >= 2 "
                "samples); use >= 2 per device or SyncBatchNorm across devices"
            )
        if c.optim.amp == "fp16" and self.env.device.type != "cuda":
            raise ConfigError("optim.amp=fp16 needs a CUDA device; use bf16 or none on CPU")

    def _claim_work_dir(self, resuming: bool, overwrite: bool) -> None:
        """Rank 0 checks, locks and tidies the work dir; every rank learns whether that worked."""
        error: Exception | None = None
        if self.env.is_main:
            try:
                check_writable(self.work_dir)
                self.run_dir.lock()
                if not resuming:
                    self.run_dir.refuse_foreign_run(overwrite)
                self.run_dir.remove_stale_temp_files()
            except Exception as e:  # reported below, after the other ranks heard of it
                error = e
        if not all_ranks_agree(error is None, self.env):
            self.run_dir.unlock()
            if error is not None:
                raise error
            raise ConfigError(f"{self.work_dir}: rank 0 could not take the work dir (see its error)")

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
        sampler = ResumableBatchSampler(
            len(self.train_set),
            d.batch_size,
            rank=self.env.rank,
            world_size=self.env.world_size,
            seed=self.cfg.train.seed,
            start_iter=self.iteration * self.cfg.optim.grad_accum,
        )
        self.batches_per_epoch = sampler.batches_per_epoch
        loader = DataLoader(
            self.train_set,  # indexed by (index, epoch): augmentation seeded per sample
            batch_sampler=sampler,
            num_workers=d.num_workers,
            pin_memory=self.env.device.type == "cuda",
            worker_init_fn=worker_init_fn if d.num_workers > 0 else None,
            persistent_workers=d.num_workers > 0,
            prefetch_factor=4 if d.num_workers > 0 else None,
        )
        return iter(loader)

    def _install_signal_handlers(self) -> None:
        def handler(signum: int, _frame: Any) -> None:
            if self._stop_signal is None:
                logger.warning("signal %d received: stopping soon and saving a checkpoint (again to exit now)", signum)
            self._stop_signal = signum
            # a second signal gets the default behaviour: exit at once
            for sig, previous in self._previous_handlers.items():
                signal.signal(sig, previous)

        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not in the main thread
                self._previous_handlers[sig] = signal.signal(sig, handler)

    def _restore_signal_handlers(self) -> None:
        for sig, previous in self._previous_handlers.items():
            signal.signal(sig, previous)
        self._previous_handlers = {}

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

    def _check_empty(self, empty: bool) -> None:
        if not empty:
            self.empty_streak = 0
            return
        self.empty_streak += 1
        limit = self.cfg.train.max_empty_batches
        if self.empty_streak == 1:
            logger.warning(
                "iteration %d: the training batch has NO labelled pixel (all %d); the loss is 0 and nothing is "
                "learnt. Check that the labels decode (e.g. index values saved as RGB) and data.dataset/options",
                self.iteration,
                self.ignore_index,
            )
        if self.empty_streak >= limit:
            raise DataError(
                f"{self.cfg.data.root}: {limit} consecutive training batches had no labelled pixel (every label "
                f"value is the ignore index {self.ignore_index}); stopping. Check the label files and their encoding"
            )

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
            atomic_write(self.work_dir / "config.yaml", lambda tmp: Path(tmp).write_text(_yaml(config_to_dict(cfg))))
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
        self._install_signal_handlers()
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
            self._restore_signal_handlers()
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
            self._check_empty(all_empty)
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
                    logger.info(
                        "iter %d/%d loss %.4f (main %.4f aux_p %.4f aux_d %.4f) lr %.3e %.1f img/s eta %s",
                        it,
                        cfg.train.iters,
                        avg["loss"],
                        avg.get("loss_main", float("nan")),
                        avg.get("loss_aux_p", float("nan")),
                        avg.get("loss_aux_d", float("nan")),
                        avg["lr"],
                        avg["images_per_s"],
                        fmt_seconds((cfg.train.iters - it) * elapsed / max(count, 1)),
                    )
                totals, count = {}, 0
                t_log = time.perf_counter()
            if it % cfg.train.checkpoint_interval == 0 and it != cfg.train.iters:
                self.save_checkpoint()
            if it % cfg.train.val_interval == 0 or it == cfg.train.iters:
                last_val = self._validate_and_record(recorder)
                t_log = time.perf_counter()
        self._check_empty(self._sync_flags(empty)[1])
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
        meta = {
            "model": self.cfg.model.name,
            "num_classes": str(self.cfg.model.num_classes),
            "dataset": self.cfg.data.dataset,
            "iteration": str(self.iteration),
        }
        if m is not None:
            meta["miou"] = f"{m.miou:.6f}"
        return meta

    def _finish(self, last_val: SegMetrics | None) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "iterations": self.iteration,
            "best_miou": self.best_miou,
            "best_iteration": self.best_iteration,
            "world_size": self.env.world_size,
        }
        if self.env.distributed:
            summary["param_max_abs_diff_across_ranks"] = _param_divergence(self.model)
        if self.env.is_main:
            save_weights(self.model, self.work_dir / "final.safetensors", metadata=self._weights_metadata())
            if last_val is not None:
                summary["final"] = last_val.to_dict()
                plot_class_iou(
                    list(summary["final"]["iou"]),
                    self.class_names,
                    self.work_dir / "class_iou.png",
                    title=f"{self.cfg.name}: per-class IoU at iteration {self.iteration}",
                )
            plot_training_curves(self.work_dir / "metrics.jsonl", self.work_dir / "curves.png")
            write_json(self.work_dir / "summary.json", summary)
            logger.info("done: best mIoU %.2f%% at iteration %d", 100 * self.best_miou, self.best_iteration)
        return summary

    def close(self) -> None:
        """Release the work dir and destroy the process group if this trainer created it."""
        self.run_dir.unlock()
        cleanup(self.env)


def _param_divergence(model: nn.Module) -> float:
    """Largest absolute difference between this rank's parameters and rank 0's (should be 0).

    Parameters only: without SyncBatchNorm (CPU) each rank's BN running statistics legitimately differ.
    """
    worst = torch.zeros((), dtype=torch.float64, device=next(model.parameters()).device)
    for p in model.parameters():
        ref = p.detach().clone()
        dist.broadcast(ref, src=0)
        worst = torch.maximum(worst, (p.detach() - ref).abs().max().double())
    dist.all_reduce(worst, op=dist.ReduceOp.MAX)
    return float(worst)


def _yaml(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False)


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
