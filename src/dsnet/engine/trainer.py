"""Iteration-based training with the paper's protocol, on one device or under torchrun/DDP.

What makes a run trustworthy here:
* resumable bit for bit: model, optimiser, AMP scaler, iteration, best score, RNG states are
  checkpointed, the batch order depends only on ``(seed, epoch)`` and each sample's augmentation
  only on ``(seed, epoch, index)``;
* SIGINT/SIGTERM write a checkpoint before exiting (all ranks stop at the same iteration);
* logging, checkpoints, TensorBoard and progress bars on rank 0 only.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader

from ..models import create_model, load_weights, save_weights
from .config import Config, config_to_dict
from .distributed import DistEnv, cleanup, init_distributed
from .evaluator import evaluate
from .losses import CITYSCAPES_CLASS_WEIGHTS, DSNetLoss
from .observe import RunRecorder, plot_class_iou, plot_training_curves, setup_logging
from .sampler import ResumableBatchSampler
from .schedule import poly_lr
from .state import capture_rng_state, load_training_state, restore_rng_state, save_training_state

__all__ = ["Trainer", "train", "build_datasets", "build_split", "TrainingInterrupted", "resolve_work_dir"]


class TrainingInterrupted(Exception):
    """Raised after a signal stopped training and the checkpoint was written."""

    def __init__(self, signum: int, iteration: int, checkpoint: Path | None) -> None:
        super().__init__(f"stopped by signal {signum} at iteration {iteration}; checkpoint: {checkpoint}")
        self.signum = signum
        self.iteration = iteration
        self.checkpoint = checkpoint


def _worker_init(_: int) -> None:
    import cv2

    cv2.setNumThreads(0)  # one OpenCV thread per loader worker: no oversubscription
    torch.set_num_threads(1)
    # Ctrl-C / a scheduler's SIGTERM reach the whole process group: workers leave the shutdown to
    # the main process, which finishes its iteration and writes the checkpoint (they exit with it).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def resolve_work_dir(cfg: Config) -> Path:
    return Path(cfg.train.work_dir or Path("runs") / cfg.name)


def build_split(cfg: Config, split: str, train: bool) -> Any:
    """One split of the config's dataset, with the training or the evaluation transform."""
    from ..data import EvalTransform, TrainTransform, build_dataset
    from ..models import get_model_info

    info = get_model_info(cfg.model.name)
    d = cfg.data
    if train:
        transform: Any = TrainTransform(
            crop_size=tuple(d.crop_size),
            base_size=d.base_size,
            scale_range=tuple(d.scale_range),
            scale_step=d.scale_step,
            short_side=d.short_side,
            flip=d.flip,
            mean=info.mean,
            std=info.std,
        )
    else:
        # no padding here: inference pads to the model's multiple itself (with the mean colour)
        transform = EvalTransform(mean=info.mean, std=info.std, short_side=cfg.eval.short_side, size_divisor=1)
    ds = build_dataset(
        d.dataset, d.root, split, transform=transform, seed=cfg.train.seed, on_bad_sample=d.on_bad_sample, **d.options
    )
    if ds.num_classes != cfg.model.num_classes:
        raise ValueError(
            f"model.num_classes={cfg.model.num_classes} but the {split!r} split of {d.dataset} at {d.root} "
            f"has {ds.num_classes} classes"
        )
    return ds


def build_datasets(cfg: Config) -> dict[str, Any]:
    """The training and validation datasets of a config with their transforms."""
    return {"train": build_split(cfg, cfg.data.train_split, True), "val": build_split(cfg, cfg.data.val_split, False)}


def _class_weights(cfg: Config) -> list[float] | None:
    cw = cfg.data.class_weights
    if cw is None:
        return None
    if isinstance(cw, str):
        if cw != "cityscapes":
            raise ValueError(f"data.class_weights: unknown preset {cw!r} (known: 'cityscapes')")
        return list(CITYSCAPES_CLASS_WEIGHTS)
    if len(cw) != cfg.model.num_classes:
        raise ValueError(f"data.class_weights has {len(cw)} values for {cfg.model.num_classes} classes")
    return list(cw)


@dataclass
class _Meter:
    total: dict[str, float]
    count: int = 0

    def add(self, values: dict[str, float]) -> None:
        for k, v in values.items():
            self.total[k] = self.total.get(k, 0.0) + v
        self.count += 1

    def mean(self) -> dict[str, float]:
        return {k: v / max(self.count, 1) for k, v in self.total.items()}


class Trainer:
    """Owns the model, optimiser, data and bookkeeping of one training run."""

    def __init__(self, cfg: Config, *, resume: str | Path | None = None, device: str | None = None) -> None:
        self.cfg = cfg
        self.env: DistEnv = init_distributed(device)
        self.work_dir = resolve_work_dir(cfg)
        self.logger = setup_logging(self.work_dir, self.env.is_main)
        self._stop_signal: int | None = None
        self.use_sync_bn = self.env.distributed and cfg.model.sync_bn and self.env.device.type != "cpu"
        self._validate_config()

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

        model = create_model(cfg.model.name, num_classes=cfg.model.num_classes)
        if cfg.model.pretrained:
            report = load_weights(model, cfg.model.pretrained)
            self.logger.info("%s", report)
        model.to(self.env.device)
        if cfg.model.channels_last:
            model.to(memory_format=torch.channels_last)
        if self.use_sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        elif self.env.distributed and cfg.model.sync_bn:
            self.logger.warning(
                "SyncBatchNorm needs GPUs; on %s each process keeps its own BN statistics", self.env.device.type
            )
        self.model = model
        self.ddp: nn.Module = (
            DDP(model, device_ids=[self.env.local_rank] if self.env.device.type == "cuda" else None)
            if self.env.distributed
            else model
        )
        o = cfg.optim
        self.optimizer = torch.optim.SGD(
            model.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, nesterov=o.nesterov
        )
        self.amp_dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[o.amp]
        self.scaler = torch.amp.GradScaler(
            self.env.device.type, enabled=(o.amp == "fp16" and self.env.device.type == "cuda")
        )
        self.criterion = DSNetLoss(
            cfg.model.num_classes,
            class_weights=_class_weights(cfg),
            ohem=cfg.loss.ohem,
            ohem_thresh=cfg.loss.ohem_thresh,
            ohem_min_kept=cfg.loss.ohem_min_kept,
            ignore_index=self.ignore_index,
            loss_weights=tuple(cfg.loss.weights),
        ).to(self.env.device)

        self.iteration = 0
        self.best_miou = -1.0
        self.best_iteration = -1
        if resume:
            self._resume(Path(resume))

    # -------------------------------------------------------------------------------------------
    def _validate_config(self) -> None:
        c = self.cfg
        checks = [
            (c.train.iters > 0, "train.iters must be positive"),
            (c.optim.grad_accum >= 1, "optim.grad_accum must be >= 1"),
            (c.data.batch_size >= 1, "data.batch_size must be >= 1"),
            (len(c.loss.weights) == 3, "loss.weights needs three values (main, aux_p, aux_d)"),
            (len(c.data.crop_size) == 2, "data.crop_size must be [H, W]"),
            (all(s % 8 == 0 for s in c.data.crop_size), f"data.crop_size {c.data.crop_size} must be multiples of 8"),
            (c.train.val_interval > 0 and c.train.checkpoint_interval > 0, "intervals must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        if c.data.batch_size == 1 and not self.use_sync_bn:
            raise ValueError(
                "data.batch_size=1 cannot train DSNet (BatchNorm on its 1x1 pooled maps needs >= 2 "
                "samples); use >= 2 per device or SyncBatchNorm across devices"
            )
        if c.optim.amp == "fp16" and self.env.device.type != "cuda":
            raise ValueError("optim.amp=fp16 needs a CUDA device; use bf16 or none on CPU")

    def _resume(self, path: Path) -> None:
        state = load_training_state(path)
        load_weights(self.model, state["model"], part="full")  # strict, with a readable mismatch report
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.iteration = int(state["iteration"])
        self.best_miou = float(state["best_miou"])
        self.best_iteration = int(state.get("best_iteration", -1))
        restore_rng_state(state["rng"])
        saved = state.get("config", {})
        if saved and saved.get("train", {}).get("iters") != self.cfg.train.iters:
            self.logger.warning(
                "resuming with train.iters=%s, the checkpoint's run had %s: the LR schedule changes",
                self.cfg.train.iters,
                saved.get("train", {}).get("iters"),
            )
        self.logger.info("resumed from %s at iteration %d (best mIoU %.4f)", path, self.iteration, self.best_miou)

    def save_checkpoint(self, name: str = "last.pth") -> Path | None:
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
            worker_init_fn=_worker_init if d.num_workers > 0 else None,
            persistent_workers=d.num_workers > 0,
            prefetch_factor=4 if d.num_workers > 0 else None,
        )
        return iter(loader)

    def _install_signal_handlers(self) -> dict[int, Any]:
        previous = {}

        def handler(signum: int, _frame: Any) -> None:
            if self._stop_signal is None:
                self.logger.warning("signal %d received: stopping after this iteration", signum)
            self._stop_signal = signum

        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not in the main thread
                previous[sig] = signal.signal(sig, handler)
        return previous

    def _should_stop(self) -> bool:
        flag = 1 if self._stop_signal is not None else 0
        if self.env.distributed:
            t = torch.tensor([flag], device=self.env.device)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            flag = int(t.item())
            if flag and self._stop_signal is None:
                self._stop_signal = signal.SIGTERM
        return bool(flag)

    def _step(self, batches: Iterator[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
        cfg = self.cfg
        accum = cfg.optim.grad_accum
        lr = poly_lr(
            cfg.optim.lr,
            self.iteration,
            cfg.train.iters,
            cfg.optim.poly_power,
            cfg.optim.warmup_iters,
            cfg.optim.warmup_ratio,
        )
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.ddp.train()
        totals: dict[str, float] = {}
        for micro in range(accum):
            images, labels = next(batches)
            images = images.to(self.env.device, non_blocking=True)
            labels = labels.to(self.env.device, non_blocking=True)
            if cfg.model.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            sync = (
                contextlib.nullcontext()
                if (micro == accum - 1 or not isinstance(self.ddp, DDP))
                else self.ddp.no_sync()
            )
            with sync:
                with torch.autocast(self.env.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                    outputs = self.ddp(images)
                loss = self.criterion(outputs, labels)
                self.scaler.scale(loss.total / accum).backward()
            for k, v in loss.as_floats().items():
                key = "loss" if k == "total" else f"loss_{k}"
                totals[key] = totals.get(key, 0.0) + v / accum
        if cfg.optim.clip_grad_norm:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.iteration += 1
        totals["lr"] = lr
        return totals

    def validate(self) -> dict[str, Any]:
        progress = None
        if self.env.is_main and self.cfg.train.progress:
            from tqdm import tqdm

            def progress(it: Any) -> Any:
                return tqdm(it, desc="val", leave=False, dynamic_ncols=True)

        metrics, cm = evaluate(
            self.model,
            self.val_set,
            self.cfg.model.num_classes,
            self.cfg.eval,
            device=self.env.device,
            ignore_index=self.ignore_index,
            max_samples=self.cfg.train.max_val_samples,
            seed=self.cfg.train.seed,
            progress=progress,
        )
        return {"metrics": metrics, "confusion": cm}

    # -------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        main = self.env.is_main
        recorder = RunRecorder(self.work_dir, cfg.train.tensorboard) if main else None
        if main:
            (self.work_dir / "config.yaml").write_text(_dump_yaml(config_to_dict(cfg)))
            self.logger.info(
                "training %s on %s (%d process%s, %d images/iteration) for %d iterations -> %s",
                cfg.model.name,
                self.env.device,
                self.env.world_size,
                "es" if self.env.world_size > 1 else "",
                cfg.data.batch_size * self.env.world_size * cfg.optim.grad_accum,
                cfg.train.iters,
                self.work_dir,
            )
        previous = self._install_signal_handlers()
        batches = self._loader()
        bar = None
        if main and cfg.train.progress:
            from tqdm import tqdm

            bar = tqdm(total=cfg.train.iters, initial=self.iteration, desc="train", dynamic_ncols=True)
        meter = _Meter({})
        images_per_iter = cfg.data.batch_size * self.env.world_size * cfg.optim.grad_accum
        last_val: dict[str, Any] | None = None
        t_log = time.perf_counter()
        try:
            while self.iteration < cfg.train.iters:
                if self._should_stop():
                    path = self.save_checkpoint()
                    raise TrainingInterrupted(self._stop_signal or 0, self.iteration, path)
                values = self._step(batches)
                if not all(math.isfinite(v) for v in values.values()):
                    path = self.save_checkpoint("nonfinite.pth")
                    raise FloatingPointError(
                        f"non-finite loss at iteration {self.iteration}: {values}; state saved to {path}"
                    )
                meter.add(values)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{values['loss']:.4f}", lr=f"{values['lr']:.2e}")
                it = self.iteration
                if it % cfg.train.log_interval == 0 or it == cfg.train.iters:
                    elapsed = time.perf_counter() - t_log
                    avg = meter.mean()
                    avg["images_per_s"] = images_per_iter * meter.count / max(elapsed, 1e-9)
                    avg["epoch"] = (it * cfg.optim.grad_accum) / self.batches_per_epoch
                    if recorder is not None:
                        recorder.log("train", it, avg)
                        eta = (cfg.train.iters - it) * elapsed / max(meter.count, 1)
                        self.logger.info(
                            "iter %d/%d loss %.4f (main %.4f aux_p %.4f aux_d %.4f) lr %.3e %.1f img/s eta %s",
                            it,
                            cfg.train.iters,
                            avg["loss"],
                            avg.get("loss_main", float("nan")),
                            avg.get("loss_aux_p", float("nan")),
                            avg.get("loss_aux_d", float("nan")),
                            avg["lr"],
                            avg["images_per_s"],
                            _fmt_seconds(eta),
                        )
                    meter = _Meter({})
                    t_log = time.perf_counter()
                if it % cfg.train.checkpoint_interval == 0 and it != cfg.train.iters:
                    self.save_checkpoint()
                if it % cfg.train.val_interval == 0 or it == cfg.train.iters:
                    last_val = self._validate_and_record(recorder)
                    t_log = time.perf_counter()
        finally:
            if bar is not None:
                bar.close()
            for sig, prev in previous.items():
                signal.signal(sig, prev)
            if recorder is not None:
                recorder.close()
        self.save_checkpoint()
        summary = self._finish(last_val)
        return summary

    def _validate_and_record(self, recorder: RunRecorder | None) -> dict[str, Any]:
        result = self.validate()
        m = result["metrics"]
        if self.env.is_main:
            values = {
                "miou": m.miou,
                "miou_reference": m.miou_reference,
                "pixel_accuracy": m.pixel_accuracy,
                "mean_accuracy": m.mean_accuracy,
            }
            if recorder is not None:
                recorder.log("val", self.iteration, values)
            self.logger.info(
                "val iter %d: mIoU %.2f%% (reference convention %.2f%%), pixel acc %.2f%%",
                self.iteration,
                100 * m.miou,
                100 * m.miou_reference,
                100 * m.pixel_accuracy,
            )
            if m.miou > self.best_miou:
                self.best_miou = m.miou
                self.best_iteration = self.iteration
                save_weights(
                    self.model,
                    self.work_dir / "best.safetensors",
                    metadata={
                        "model": self.cfg.model.name,
                        "num_classes": str(self.cfg.model.num_classes),
                        "iteration": str(self.iteration),
                        "miou": f"{m.miou:.6f}",
                    },
                )
                _write_json(self.work_dir / "best_metrics.json", {"iteration": self.iteration, **m.to_dict()})
        # every rank keeps the same best score (for resume and early decisions)
        if self.env.distributed:
            t = torch.tensor([self.best_miou, float(self.best_iteration)], device=self.env.device, dtype=torch.float64)
            dist.broadcast(t, src=0)
            self.best_miou, self.best_iteration = float(t[0]), int(t[1])
        return result

    def _finish(self, last_val: dict[str, Any] | None) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "iterations": self.iteration,
            "best_miou": self.best_miou,
            "best_iteration": self.best_iteration,
            "world_size": self.env.world_size,
        }
        if self.env.distributed:
            summary["param_max_abs_diff_across_ranks"] = _param_divergence(self.model)
        if self.env.is_main:
            save_weights(
                self.model,
                self.work_dir / "final.safetensors",
                metadata={"model": self.cfg.model.name, "num_classes": str(self.cfg.model.num_classes)},
            )
            if last_val is not None:
                m = last_val["metrics"]
                summary["final"] = m.to_dict()
                summary["final"]["confusion_matrix"] = last_val["confusion"].matrix.cpu().tolist()
                plot_class_iou(
                    list(summary["final"]["iou"]),
                    self.class_names,
                    self.work_dir / "class_iou.png",
                    title=f"{self.cfg.name}: per-class IoU at iteration {self.iteration}",
                )
            plot_training_curves(self.work_dir / "metrics.jsonl", self.work_dir / "curves.png")
            _write_json(self.work_dir / "summary.json", summary)
            self.logger.info("done: best mIoU %.2f%% at iteration %d", 100 * self.best_miou, self.best_iteration)
        return summary


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


def _fmt_seconds(s: float) -> str:
    s = int(max(s, 0))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, default=_json_default))


def _json_default(x: Any) -> Any:
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(type(x).__name__)


def _dump_yaml(data: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False)


def train(cfg: Config, *, resume: str | Path | None = None, device: str | None = None) -> dict[str, Any]:
    """Run a training job described by ``cfg`` (see :class:`dsnet.engine.config.Config`)."""
    trainer = Trainer(cfg, resume=resume, device=device)
    try:
        return trainer.run()
    finally:
        cleanup()
