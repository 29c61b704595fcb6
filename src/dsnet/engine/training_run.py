"""The life of one training run, shared by ``dsnet train`` (:class:`dsnet.engine.Trainer`) and ``dsnet
pretrain`` (:class:`dsnet.engine.pretrain.PretrainTrainer`), so that both keep the same promises:

* start-up: one run per work dir (lock file), no silent overwrite of another run, an elastic restart
  (torchrun ``--max-restarts``) resumes by itself; seeds, AMP;
* checkpoints hold everything needed to resume bit for bit (model, optimiser, scaler, iteration,
  best score, RNG states); resuming truncates ``metrics.jsonl`` to the checkpoint's iteration;
* SIGINT/SIGTERM stop within one iteration or one validation batch and write a checkpoint; a stop
  during validation makes the resumed run validate first; a second signal exits at once;
* a checkpoint written at an iteration that is also validated is written before that validation and
  marked pending: a run killed outright (kill -9) during it redoes it on resume, so a resumed run ends
  with the same best weights, final weights and ``metrics.jsonl`` as an uninterrupted one;
* the loop's bookkeeping: averaged logs every ``train.log_interval``, checkpoints, validation and the
  best weights at their intervals, a stop on a non-finite loss; then final weights, plots, summary.

A subclass builds its data, model and optimiser (:meth:`TrainingRun._setup`) and says how one step
and one validation go and how they read in the log. What a checkpoint holds and how a run resumes from
it is :mod:`dsnet.engine.run_checkpoints`.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ..hardware import cpu_flags
from ..models import save_weights
from ..torchrun import restarted_by_torchrun
from .distributed import DistEnv, cleanup, init_distributed, param_divergence
from .observe import RunRecorder
from .run_checkpoints import RunCheckpoints
from .run_files import resolve_work_dir, write_config, write_json
from .stopping import SignalStop, TrainingInterrupted
from .workdir import RunDir

__all__ = ["TrainingRun", "TrainingInterrupted", "run_to_end"]

logger = logging.getLogger("dsnet")

Resume = str | os.PathLike | bool | None


class TrainingRun(RunCheckpoints):
    """One resumable training run in its work dir (see the module docstring).

    ``resume``: ``None`` (a new run), ``True`` (this work dir's ``last.pth``), or a checkpoint file / work
    dir. ``overwrite``: a new run may replace another run's files in the work dir.
    """

    #: the ``dsnet`` command that runs it (named in messages) and the label of its progress bar
    command = "train"
    #: the validation score that picks ``best.safetensors``; summary and checkpoint key ``best_<score_name>``
    score_name = "miou"
    score_label = "mIoU"
    #: the dataset named in the weights' metadata
    dataset_name = ""
    #: the training data's label space (a :class:`~dsnet.data.LabelSpace`), written whole into the weights'
    #: metadata so inference names and colours the classes as the dataset does; None: only ``dataset_name``
    label_space: Any = None

    # set by the subclass's _setup (with train_set, model, ddp, optimizer: see StepMechanics)
    val_set: Any
    total_iters: int
    val_interval: int

    def __init__(self, cfg: Any, *, resume: Resume = None, overwrite: bool = False, device: str | None = None) -> None:
        self._check_config(cfg)
        self.cfg = cfg
        self.env: DistEnv = init_distributed(device)
        self.work_dir = resolve_work_dir(cfg)
        self.started = time.perf_counter()  # what a time budget (train.minutes) counts from
        self.run_dir = RunDir(self.work_dir, command=self.command)
        self._stop_signal: int | None = None
        self.signals = SignalStop(self._request_stop)
        self.pending_validation = False
        self.iteration = 0
        self.best_score = -1.0
        self.best_iteration = -1
        self._check_device()
        restarted = restarted_by_torchrun()
        if resume is None and restarted and self.run_dir.last_checkpoint.is_file():
            logger.warning("elastic restart: resuming from %s", self.run_dir.last_checkpoint)
            resume = True
        self.run_dir.claim(self.env, resuming=resume is not None and resume is not False, overwrite=overwrite)
        if restarted and resume is None and self.env.is_main:
            self.run_dir.truncate_metrics(0)  # restarted before the first checkpoint: start the log afresh
        try:
            self._seed()
            self._setup_amp()
            self._setup()
            if resume is not None and resume is not False:
                self._resume(self.run_dir.resolve_resume(resume))
        except BaseException:
            self.run_dir.unlock()
            raise

    # --- what a subclass provides --------------------------------------------------------------
    def _check_config(self, cfg: Any) -> None:
        """Refuse bad settings, naming the key, before anything starts."""
        raise NotImplementedError

    def _check_device(self) -> None:
        """Refuse settings the device cannot run (before the work dir is taken)."""

    def _setup(self) -> None:
        """Build the datasets, model (``model`` and the ``ddp`` module to call), optimiser,
        ``total_iters`` and ``val_interval``."""
        raise NotImplementedError

    def _step(self, batches: Iterator[Any]) -> dict[str, float]:
        """One optimiser step (:meth:`_forward_backward` per micro-batch, then :meth:`_optimizer_step`);
        the values to log (``loss`` and ``lr`` at least)."""
        raise NotImplementedError

    def _evaluate(self) -> Any | None:
        """The validation metrics (with ``to_dict()``), or ``None`` when a stop signal abandoned it."""
        raise NotImplementedError

    def _score(self, metrics: Any) -> float:
        raise NotImplementedError

    def _val_record(self, metrics: Any) -> dict[str, Any]:
        """The validation values written to ``metrics.jsonl``."""
        return dict(metrics.to_dict())

    def _val_message(self, metrics: Any) -> str:
        raise NotImplementedError

    def _train_message(self, avg: dict[str, float], seconds_per_iter: float) -> str:
        raise NotImplementedError

    def _start_message(self) -> str:
        raise NotImplementedError

    def _plot(self, final: dict[str, Any] | None) -> None:
        """The end-of-run figures in the work dir."""

    def _poll_stop(self) -> bool:
        """Before each step: whether a stop was asked for on any rank."""
        return self._should_stop()

    def _after_step(self) -> None:
        """After each step, before its logging, checkpoint and validation (``total_iters`` may change here)."""

    def _after_loop(self) -> None:
        """After the last step, before the final checkpoint."""

    def _before_first_step(self) -> None:
        """Before a new run's first step and before ``config.yaml`` is written (not on resume)."""

    # --- start-up ------------------------------------------------------------------------------
    def _seed(self) -> None:
        seed = self.cfg.train.seed
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        if self.cfg.train.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        elif self.env.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

    # --- stopping ------------------------------------------------------------------------------
    def _request_stop(self, signum: int) -> None:
        self._stop_signal = signum

    def _sync_flags(self, empty_batch: bool = False) -> tuple[bool, bool]:
        """(stop requested on any rank, this step's batch was empty on every rank)."""
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

    def _interrupt(self, pending_validation: bool = False) -> TrainingInterrupted:
        path = self.save_checkpoint(pending_validation=pending_validation)
        return TrainingInterrupted(self._stop_signal or 0, self.iteration, path, self.work_dir)

    # --- the run ---------------------------------------------------------------------------------
    def _best(self) -> dict[str, Any]:
        return {f"best_{self.score_name}": self.best_score, "best_iteration": self.best_iteration}

    def run(self) -> dict[str, Any]:
        """Train to ``total_iters``; the run's summary (``already_finished`` when there was nothing to do)."""
        cfg, main = self.cfg, self.env.is_main
        if self.iteration >= self.total_iters and not self.pending_validation:
            logger.warning(
                "%s: this run already finished at iteration %d; nothing to do", self.work_dir, self.iteration
            )
            self.run_dir.unlock()
            return {"already_finished": True, "iterations": self.iteration, **self._best()}
        if self.iteration == 0 and not self.pending_validation:
            self._before_first_step()
        recorder = RunRecorder(self.work_dir, cfg.train.tensorboard) if main else None
        if main:
            write_config(self.work_dir / "config.yaml", cfg)
            logger.info("%s", self._start_message())
            logger.info("hardware: %s", ", ".join(f"{k} {v}" for k, v in self._hardware().items()))
            log = logger.warning if "emulated" in self.amp_reason else logger.info
            log("optim.amp=%s (%s)", cfg.optim.amp, self.amp_reason)
        self.signals.install()
        bar = None
        if main and cfg.train.progress:
            from tqdm import tqdm

            bar = tqdm(total=self.total_iters, initial=self.iteration, desc=self.command, dynamic_ncols=True)
        last_val = None
        try:
            if self.pending_validation:
                last_val = self._validate_and_record(recorder)
            last_val = self._loop(self._loader(), bar, recorder) or last_val
            self.save_checkpoint()
            return self._finish(last_val)
        finally:
            if bar is not None:
                bar.close()
            self.signals.restore()
            if recorder is not None:
                recorder.close()
            self.run_dir.unlock()  # the work dir is free once the run ends, however it ends

    def _loop(self, batches: Iterator[Any], bar: Any, recorder: RunRecorder | None) -> Any | None:
        cfg = self.cfg
        images_per_iter = cfg.data.batch_size * self.env.world_size * cfg.optim.grad_accum
        totals: dict[str, float] = {}
        count, last_val, t_log = 0, None, time.perf_counter()
        while self.iteration < self.total_iters:
            if self._poll_stop():
                raise self._interrupt()
            values = self._step(batches)
            if not all(math.isfinite(v) for v in values.values()):
                path = self.save_checkpoint("nonfinite.pth")
                raise FloatingPointError(
                    f"non-finite loss at iteration {self.iteration}: {values}; state saved to {path}"
                )
            self._after_step()
            totals = {k: totals.get(k, 0.0) + v for k, v in values.items()}
            count += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{values['loss']:.4f}", lr=f"{values['lr']:.2e}")
            it = self.iteration
            if it % cfg.train.log_interval == 0 or it == self.total_iters:
                elapsed = time.perf_counter() - t_log
                avg = {k: v / count for k, v in totals.items()}
                avg["images_per_s"] = images_per_iter * count / max(elapsed, 1e-9)
                avg["epoch"] = it * cfg.optim.grad_accum / self.batches_per_epoch
                if recorder is not None:
                    recorder.log("train", it, avg)
                    logger.info("%s", self._train_message(avg, elapsed / max(count, 1)))
                totals, count, t_log = {}, 0, time.perf_counter()
            validate = it % self.val_interval == 0 or it == self.total_iters
            if it % cfg.train.checkpoint_interval == 0 and it != self.total_iters:
                # written before this iteration's validation: it says so, and a resume (e.g. after a kill -9
                # during that validation) redoes it instead of losing it
                self.save_checkpoint(pending_validation=validate)
            if validate:
                last_val = self._validate_and_record(recorder)
                t_log = time.perf_counter()
        self._after_loop()
        return last_val

    def _validate_and_record(self, recorder: RunRecorder | None) -> Any:
        m = self._evaluate()
        if m is None:
            raise self._interrupt(pending_validation=True)
        self.pending_validation = False
        if self.env.is_main:
            if recorder is not None:
                recorder.log("val", self.iteration, self._val_record(m))
            logger.info("%s", self._val_message(m))
            if self._score(m) > self.best_score:
                self.best_score, self.best_iteration = self._score(m), self.iteration
                save_weights(self._eval_model(), self.work_dir / "best.safetensors", metadata=self._metadata(m))
                write_json(self.work_dir / "best_metrics.json", {"iteration": self.iteration, **m.to_dict()})
        # every rank keeps the same best score (for resume and early decisions)
        if self.env.distributed:
            t = torch.tensor([self.best_score, float(self.best_iteration)], device=self.env.device, dtype=torch.float64)
            dist.broadcast(t, src=0)
            self.best_score, self.best_iteration = float(t[0]), int(t[1])
        return m

    def _metadata(self, m: Any | None = None) -> dict[str, str]:
        c = self.cfg
        meta = {
            "model": c.model.name,
            "num_classes": str(c.model.num_classes),
            "dataset": self.dataset_name,
            "config": str(c.name),
            "amp": str(c.optim.amp),
            "cpu_flags": self._hardware()["cpu_flags"],
        }
        if self.label_space is not None:
            meta = {**self.label_space.to_metadata(), **meta}
        return {**meta, "iteration": str(self.iteration), **({self.score_name: f"{self._score(m):.6f}"} if m else {})}

    def _hardware(self) -> dict[str, str]:
        """What a time-budgeted run's iteration count depends on: the device, the CPU flags, the threads."""
        return {
            "device": str(self.env.device),
            "cpu_flags": " ".join(cpu_flags()) or "(unknown)",
            "threads": str(torch.get_num_threads()),
        }

    def _finish(self, last_val: Any | None) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "iterations": self.iteration,
            **self._best(),
            "world_size": self.env.world_size,
            "hardware": self._hardware(),
        }
        if self.env.distributed:
            summary["param_max_abs_diff_across_ranks"] = param_divergence(self.model)
        if self.env.is_main:
            save_weights(self._eval_model(), self.work_dir / "final.safetensors", metadata=self._metadata())
            if last_val is not None:
                summary["final"] = last_val.to_dict()
            self._plot(summary.get("final"))
            write_json(self.work_dir / "summary.json", summary)
            logger.info(
                "done: best %s %.2f%% at iteration %d", self.score_label, 100 * self.best_score, self.best_iteration
            )
        return summary

    def close(self) -> None:
        """Release the work dir and destroy the process group if this run created it."""
        self.run_dir.unlock()
        cleanup(self.env)


def run_to_end(run: TrainingRun) -> dict[str, Any]:
    """``run.run()``, then release what it holds however it ended."""
    try:
        return run.run()
    finally:
        run.close()
