"""A training run's resumable state: what a checkpoint holds (model, EMA, optimiser, scaler, iteration,
best score, RNG states, config) and how a run resumes from one, bit for bit."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..errors import ConfigError
from .config import config_to_dict
from .distributed import DistEnv
from .state import capture_rng_state, load_training_state, restore_rng_state, save_training_state
from .steps import StepMechanics
from .workdir import RunDir

__all__ = ["RunCheckpoints"]

logger = logging.getLogger("dsnet")


class RunCheckpoints(StepMechanics):
    """Checkpoint writing and resuming for a :class:`~dsnet.engine.training_run.TrainingRun`, with the EMA of
    the weights (what is validated and saved when there is one)."""

    cfg: Any
    env: DistEnv
    work_dir: Path
    run_dir: RunDir
    score_name: str
    score_label: str
    best_score: float
    best_iteration: int
    pending_validation: bool

    def _setup_ema(self, decay: float | None) -> None:
        """Keep an exponential moving average of the weights (and BN statistics) when ``decay`` is set: it is
        what gets validated and saved, updated after every optimiser step, and checkpointed."""
        self.ema = (
            AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True) if decay else None
        )

    def _eval_model(self) -> nn.Module:
        """The weights that are validated and saved: the EMA when there is one."""
        return self.ema.module if self.ema is not None else self.model

    def _model_state(self) -> dict[str, Any]:
        """The model's part of a checkpoint (with the EMA's state)."""
        return {"model": self.model.state_dict(), "ema": self.ema.state_dict() if self.ema is not None else {}}

    def _load_model_state(self, state: dict[str, Any], path: Path) -> None:
        self._load_model_weights(state["model"], path)
        if self.ema is not None:
            if not state.get("ema"):
                raise ConfigError(f"{path}: the checkpoint has no EMA state, but the config asks for one")
            self.ema.load_state_dict(state["ema"])

    def _load_model_weights(self, weights: dict[str, Any], path: Path) -> None:
        self.model.load_state_dict(weights)

    def save_checkpoint(self, name: str = "last.pth", pending_validation: bool = False) -> Path | None:
        if not self.env.is_main:
            return None
        return save_training_state(
            self.work_dir / name,
            **self._model_state(),
            optimizer=self.optimizer.state_dict(),
            scaler=self.scaler.state_dict() if self.scaler.is_enabled() else {},
            iteration=self.iteration,
            **{f"best_{self.score_name}": self.best_score},
            best_iteration=self.best_iteration,
            pending_validation=pending_validation,
            rng=capture_rng_state(),
            config=config_to_dict(self.cfg),
            model_name=self.cfg.model.name,
            num_classes=self.cfg.model.num_classes,
        )

    def _resume(self, path: Path) -> None:
        state = load_training_state(path)
        self._load_model_state(state, path)
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.iteration = int(state["iteration"])
        self.best_score = float(state[f"best_{self.score_name}"])
        self.best_iteration = int(state.get("best_iteration", -1))
        self.pending_validation = bool(state.get("pending_validation", False))
        restore_rng_state(state["rng"])
        saved_iters = (state.get("config") or {}).get("train", {}).get("iters")
        if saved_iters is not None and saved_iters != self.cfg.train.iters:
            logger.warning(
                "resuming with train.iters=%s, the checkpoint's run had %s: the LR schedule changes",
                self.cfg.train.iters,
                saved_iters,
            )
        if self.env.is_main:
            # a validation still to do at this iteration is redone: drop any record it left, so none is repeated
            self.run_dir.truncate_metrics(self.iteration, drop_val_at_iteration=self.pending_validation)
        logger.info(
            "resumed from %s at iteration %d (best %s %.4f)", path, self.iteration, self.score_label, self.best_score
        )
