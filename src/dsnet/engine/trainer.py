"""The segmentation training loop: iteration-based, the paper's protocol, on one device or under torchrun/DDP.

What makes a run trustworthy here (the run's life is :class:`~dsnet.engine.training_run.TrainingRun`'s):
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

import copy
import itertools
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ..errors import ConfigError
from ..models import load_weights
from .build import build_criterion, build_datasets, build_optimizer, build_training_model, train_transform
from .config import Config, StageConfig
from .config_checks import validate_config, validate_device_settings
from .evaluator import EvaluationInterrupted, evaluate_with_config
from .losses import LossOutput
from .metrics import SegMetrics
from .observe import format_train_log, plot_run
from .run_files import write_config
from .schedule import cosine_lr, poly_lr
from .state import capture_rng_state, restore_rng_state
from .stopping import EmptyLabelGuard, TrainingInterrupted
from .time_budget import BudgetPlan, PaceMonitor, plan_iterations, replan_iterations
from .training_run import TrainingRun, run_to_end

__all__ = ["Trainer", "train", "TrainingInterrupted"]

logger = logging.getLogger("dsnet")


class Trainer(TrainingRun):
    """Owns the model, optimiser, data and bookkeeping of one segmentation training run.

    ``resume``: ``None`` (a new run), ``True`` (this work dir's ``last.pth``), or a checkpoint
    file / work dir. ``overwrite``: a new run may replace another run's files in the work dir.
    """

    command = "train"
    score_name = "miou"
    score_label = "mIoU"

    def _check_config(self, cfg: Config) -> None:
        validate_config(cfg)

    def _check_device(self) -> None:
        validate_device_settings(self.cfg, self.env.device.type, self.env.distributed)

    def _setup(self) -> None:
        cfg = self.cfg
        datasets = build_datasets(cfg)
        self.train_set, self.val_set = datasets["train"], datasets["val"]
        self.class_names = list(self.train_set.label_space.classes)
        self.label_space = self.train_set.label_space
        self.ignore_index = int(self.train_set.label_space.ignore_index)
        self.model, self.ddp = build_training_model(cfg, self.env)
        self.optimizer = build_optimizer(cfg, self.model)
        self._setup_ema(cfg.optim.ema_decay)
        self.criterion = build_criterion(cfg, self.ignore_index, self.train_set).to(self.env.device)
        self.total_iters = cfg.train.iters
        self.val_interval = cfg.train.val_interval
        self.empty_labels = EmptyLabelGuard(cfg.train.max_empty_batches, self.ignore_index, cfg.data.root)
        self._empty_batch = False
        # train.minutes: when the pace is checked, and that pace (None: no checks)
        self._pace: PaceMonitor | None = None

    def stage_starts(self) -> list[int]:
        """The first iteration of each ``data.stages`` entry (after the run's first part at the ``data`` sizes)."""
        return [round(stage.start * self.total_iters) for stage in self.cfg.data.stages]

    def _loader(self) -> Iterator[Any]:
        """The training batches, from each stage's loader in turn (a new loader, with that stage's sizes,
        at each stage's first iteration; resumable anywhere, since batches depend only on the iteration)."""
        stages = self.cfg.data.stages
        if not stages:
            return super()._loader()
        return self._staged_batches([None, *stages])

    def _staged_batches(self, stages: list[Any]) -> Iterator[Any]:
        """``stages[k]`` (None: the ``data`` sizes) until the next stage's first iteration (the last: the end
        of the run). Each end is read when its stage begins: a pace check may have re-set ``total_iters``."""
        accum = self.cfg.optim.grad_accum
        for k, stage in enumerate(stages):
            end = self.stage_starts()[k] if k < len(stages) - 1 else None
            if end is not None and self.iteration >= end:
                continue
            self.train_set.transform = train_transform(self.cfg, stage)
            if stage is not None:
                logger.info("iteration %d: next training stage, %r", self.iteration, self.train_set.transform)
            batches = super()._loader()
            if end is None:
                yield from batches
            else:
                yield from itertools.islice(batches, (end - self.iteration) * accum)
            del batches  # its workers stop before the next stage's start

    def _before_first_step(self) -> None:
        if self.cfg.train.minutes is not None:
            plan = self.fit_to_minutes(self.cfg.train.minutes)
            if plan.iterations >= 20:  # a resumed run keeps its plan: this runs for a new run only
                self._pace = PaceMonitor()

    def _after_step(self) -> None:
        """The pace of a ``train.minutes`` run, checked against the plan a few times
        (:class:`~dsnet.engine.time_budget.PaceMonitor`, :func:`~dsnet.engine.time_budget.replan_iterations`)."""
        if self._pace is None:
            return
        paced = self._pace.after_step(self.iteration, self.total_iters, self.stage_starts())
        if paced is not None:  # every rank reaches the same checks: the windows depend on iterations only
            self._check_pace(*paced, spent_s=time.perf_counter() - self.started)

    def _check_pace(self, pace_s: float, stage: int, spent_s: float) -> None:
        minutes, planned, stage_starts = (
            self.cfg.train.minutes,
            self.total_iters,
            [s.start for s in self.cfg.data.stages],
        )
        iterations = replan_iterations(
            self.plan, self.iteration, pace_s, spent_s, stage_starts, self.val_interval, stage=stage
        )
        if self.env.distributed:  # every rank runs rank 0's plan
            t = torch.tensor([iterations], device=self.env.device)
            dist.broadcast(t, src=0)
            iterations = int(t.item())
        holds = abs(iterations - planned) <= 0.01 * planned
        if not holds:
            self.total_iters = self.cfg.train.iters = iterations
        if self.env.is_main:
            verdict = f"the plan of {planned} holds" if holds else f"{iterations} iterations instead of {planned}"
            logger.info(
                "train.minutes=%g: pace at iteration %d: %.3f s/iteration against the measured %.3f: %s",
                *(minutes, self.iteration, pace_s, self.plan.step_s[stage], verdict),
            )
            if not holds:
                write_config(self.work_dir / "config.yaml", self.cfg)

    def _validate_and_record(self, recorder: Any) -> Any:
        started = time.perf_counter()
        try:
            return super()._validate_and_record(recorder)
        finally:
            if self._pace is not None:
                self._pace.pause(time.perf_counter() - started)  # not part of the training pace

    def fit_to_minutes(
        self, minutes: float, timed_steps: int = 10, warm_steps: int = 3, share: float = 0.05
    ) -> BudgetPlan:
        """Set ``train.iters`` to what fits in ``minutes`` from this run's start: time real steps per stage
        (the median after the warm-up counts) and a validation on a few images, then restore every state the
        steps changed, so the run is the one ``train.iters=N`` would give.

        The measurement is a bounded ``share`` of the budget on any CPU: up to ``warm_steps`` + ``timed_steps``
        steps per stage, fewer (at least one warm-up and two timed steps) once the stage's share is spent, so a
        short budget on a slow CPU (a 75-second demo at 5 s per step) still trains."""
        saved = self._state_to_restore()
        stages = [None, *self.cfg.data.stages]
        stage_share_s = share * minutes * 60 / len(stages)
        if self.env.is_main:
            logger.info(
                "train.minutes=%g: timing the training step (%d stage%s, at most %.0f s or %d steps each)",
                minutes,
                len(stages),
                "" if len(stages) == 1 else "s",
                stage_share_s,
                warm_steps + timed_steps,
            )
        step_s = [self._time_stage(stage, minutes, warm_steps, timed_steps, stage_share_s) for stage in stages]
        validation_s = self._time_validation()
        self._restore(saved)
        try:
            plan = plan_iterations(
                minutes * 60,
                time.perf_counter() - self.started,
                step_s,
                [stage.start for stage in self.cfg.data.stages],
                validation_s,
                self.cfg.train.val_interval,
            )
        except ValueError as e:
            raise ConfigError(f"train.minutes={minutes:g}: {e}") from None
        iterations = plan.iterations
        if self.env.distributed:  # every rank runs rank 0's plan
            t = torch.tensor([iterations], device=self.env.device)
            dist.broadcast(t, src=0)
            iterations = int(t.item())
        self.total_iters = self.cfg.train.iters = iterations
        if self.env.is_main:
            logger.info("%s", plan.describe())
        self.plan = plan
        return plan

    def _state_to_restore(self) -> dict[str, Any]:
        """Copies of every state a measured step changes (fp16 loss scaling moves with each step too)."""
        return {
            "model": copy.deepcopy(self.model.state_dict()),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "ema": copy.deepcopy(self.ema.state_dict()) if self.ema is not None else None,
            "scaler": copy.deepcopy(self.scaler.state_dict()),
            "rng": capture_rng_state(),
        }

    def _restore(self, saved: dict[str, Any]) -> None:
        """Back to the state before the measurement, so the run is the one ``train.iters=N`` would give."""
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        if self.ema is not None:
            self.ema.load_state_dict(saved["ema"])
        if saved["scaler"]:
            self.scaler.load_state_dict(saved["scaler"])
        restore_rng_state(saved["rng"])
        self.iteration, self._empty_batch = 0, False
        self.train_set.transform = train_transform(self.cfg)

    def _time_stage(
        self, stage: StageConfig | None, minutes: float, warm_steps: int, timed_steps: int, stage_share_s: float
    ) -> float:
        """Seconds per training step of ``stage`` (None: the base transform): the median of the timed steps
        after the warm-up, fewer of each once the stage's share of the budget is spent."""
        self.train_set.transform = train_transform(self.cfg, stage)
        batches = super()._loader()
        start = time.perf_counter()

        def spent() -> bool:
            return self._agree(time.perf_counter() - start > stage_share_s)

        warm = 0
        while warm < warm_steps and (warm == 0 or not spent()):
            t0 = time.perf_counter()
            self._step(batches)
            warm += 1
            self._measured(minutes, "warm-up", warm, time.perf_counter() - t0, 2)
        times: list[float] = []
        while len(times) < timed_steps and (len(times) < 2 or not spent()):
            t0 = time.perf_counter()
            self._step(batches)
            times.append(time.perf_counter() - t0)
            self._measured(minutes, "timed", len(times), times[-1], max(0, 2 - len(times)))
        del batches
        return float(np.median(times))  # robust to a step slowed by something else

    def _time_validation(self) -> float:
        """Seconds of one validation, extrapolated from a few images."""
        val_images = min(len(self.val_set), self.cfg.train.max_val_samples or len(self.val_set))
        probe = copy.deepcopy(self.cfg)
        probe.train.max_val_samples = min(4, val_images)
        probe.eval.num_workers = 0
        t0 = time.perf_counter()
        evaluate_with_config(self._eval_model(), self.val_set, probe, device=self.env.device)
        return (time.perf_counter() - t0) / probe.train.max_val_samples * val_images

    def _measured(self, minutes: float, kind: str, count: int, seconds: float, steps_left: int) -> None:
        """Log a measured step, and stop at once when the budget cannot hold the rest of the measurement and one
        step of training: a slow CPU learns it in seconds, not after minutes of measuring."""
        if self.env.is_main:
            logger.info("train.minutes=%g: %s step %d took %.2f s", minutes, kind, count, seconds)
        elapsed = time.perf_counter() - self.started
        if self._agree(elapsed + (steps_left + 1) * seconds > minutes * 60):
            raise ConfigError(
                f"train.minutes={minutes:g}: no time to train: a step takes {seconds:.1f} s on this machine and "
                f"{elapsed:.0f} s of the {minutes * 60:.0f} s are spent; give more minutes or set train.iters"
            )

    def _agree(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank, so that decisions taken by the clock keep the ranks in step."""
        if not self.env.distributed:
            return flag
        t = torch.tensor([int(flag)], device=self.env.device)
        dist.broadcast(t, src=0)
        return bool(t.item())

    def _load_model_weights(self, weights: dict[str, Any], path: Path) -> None:
        load_weights(self.model, weights, part="full", source=str(path))

    @property
    def dataset_name(self) -> str:  # type: ignore[override]
        return str(self.cfg.data.dataset)

    def _loss_tensor(self, loss: LossOutput) -> torch.Tensor:
        return loss.total

    # -------------------------------------------------------------------------------------------
    def _poll_stop(self) -> bool:
        stop, all_empty = self._sync_flags(self._empty_batch)
        self.empty_labels.update(all_empty, self.iteration)
        return stop

    def _after_loop(self) -> None:
        self.empty_labels.update(self._sync_flags(self._empty_batch)[1], self.iteration)

    def _step(self, batches: Iterator[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
        """One optimiser step; the logged values (whether the batch had no labelled pixel: ``_empty_batch``)."""
        o = self.cfg.optim
        if o.schedule == "cosine":
            lr = cosine_lr(o.lr, self.iteration, self.total_iters, o.warmup_iters, o.warmup_ratio)
        else:
            lr = poly_lr(o.lr, self.iteration, self.total_iters, o.poly_power, o.warmup_iters, o.warmup_ratio)
        self._start_step(lr)
        totals: dict[str, float] = {}
        labelled = 0
        for micro in range(o.grad_accum):
            images, labels = self._to_device(*next(batches))
            labelled += int((labels != self.ignore_index).sum())
            _, loss = self._forward_backward(images, labels, micro, self.criterion)
            for k, v in loss.as_floats().items():
                key = "loss" if k == "total" else f"loss_{k}"
                totals[key] = totals.get(key, 0.0) + v / o.grad_accum
        self._optimizer_step()
        self.iteration += 1
        totals["lr"] = lr
        self._empty_batch = labelled == 0
        return totals

    def validate(self) -> SegMetrics:
        """Evaluate on the validation set; a stop signal abandons it within one batch."""
        return evaluate_with_config(
            self._eval_model(),
            self.val_set,
            self.cfg,
            device=self.env.device,
            progress="val" if self.env.is_main and self.cfg.train.progress else False,
            should_stop=self._should_stop,
        )

    def _evaluate(self) -> SegMetrics | None:
        try:
            return self.validate()
        except EvaluationInterrupted:
            return None

    # -------------------------------------------------------------------------------------------
    def _score(self, metrics: SegMetrics) -> float:
        return float(metrics.miou)

    def _val_record(self, m: SegMetrics) -> dict[str, Any]:
        return {
            "miou": m.miou,
            "miou_reference": m.miou_reference,
            "pixel_accuracy": m.pixel_accuracy,
            "mean_accuracy": m.mean_accuracy,
        }

    def _val_message(self, m: SegMetrics) -> str:
        return (
            f"val iter {self.iteration}: mIoU {100 * m.miou:.2f}% (reference convention {100 * m.miou_reference:.2f}%),"
            f" pixel acc {100 * m.pixel_accuracy:.2f}% on {m.num_images} images"
        )

    def _train_message(self, avg: dict[str, float], seconds_per_iter: float) -> str:
        return format_train_log(self.iteration, self.total_iters, avg, seconds_per_iter)

    def _start_message(self) -> str:
        cfg, ws = self.cfg, self.env.world_size
        return (
            f"training {cfg.model.name} on {self.env.device} ({ws} process{'es' if ws > 1 else ''}, "
            f"{cfg.data.batch_size * ws * cfg.optim.grad_accum} images/iteration) for {cfg.train.iters} iterations "
            f"-> {self.work_dir}"
        )

    def _plot(self, final: dict[str, Any] | None) -> None:
        title = f"{self.cfg.name}: per-class IoU at iteration {self.iteration}"
        plot_run(self.work_dir, (final or {}).get("iou"), self.class_names, title)


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
    return run_to_end(Trainer(cfg, resume=resume, overwrite=overwrite, device=device))
