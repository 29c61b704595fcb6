"""What stops a training run early: stop signals, and labels that teach nothing.

* :class:`TrainingInterrupted`: raised once a stopped run has written its checkpoint.
* :class:`SignalStop`: the first SIGINT/SIGTERM asks for a clean stop (the trainer finishes its
  iteration or validation batch and writes a checkpoint); a second one gets Python's default
  behaviour, so it exits at once.
* :class:`EmptyLabelGuard`: batches with no labelled pixel (e.g. labels that all decode to
  ignore) give a loss of 0; warn at once, stop with :class:`~dsnet.errors.DataError` if it goes on.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import DataError

__all__ = ["SignalStop", "EmptyLabelGuard", "TrainingInterrupted"]

logger = logging.getLogger("dsnet")


class TrainingInterrupted(Exception):
    """Raised after a signal stopped training and the checkpoint was written."""

    def __init__(self, signum: int, iteration: int, checkpoint: Path | None, work_dir: Path) -> None:
        super().__init__(f"stopped by signal {signum} at iteration {iteration}; checkpoint: {checkpoint}")
        self.signum = signum
        self.iteration = iteration
        self.checkpoint = checkpoint
        self.work_dir = work_dir


class SignalStop:
    """Installs SIGINT/SIGTERM handlers that call ``on_signal(signum)`` once, then step aside."""

    def __init__(self, on_signal: Callable[[int], None]) -> None:
        self.on_signal = on_signal
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not in the main thread: no handlers
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: Any) -> None:
        logger.warning("signal %d received: stopping soon and saving a checkpoint (again to exit now)", signum)
        self.restore()  # a second signal gets the default behaviour: exit at once
        self.on_signal(signum)

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}


class EmptyLabelGuard:
    """Counts consecutive training steps whose batch had no labelled pixel on any rank."""

    def __init__(self, limit: int, ignore_index: int, data_root: str | None) -> None:
        self.limit = limit
        self.ignore_index = ignore_index
        self.data_root = data_root
        self.streak = 0

    def update(self, empty: bool, iteration: int) -> None:
        if not empty:
            self.streak = 0
            return
        self.streak += 1
        if self.streak == 1:
            logger.warning(
                "iteration %d: the training batch has NO labelled pixel (all %d); the loss is 0 and nothing is "
                "learnt. Check that the labels decode (e.g. index values saved as RGB) and data.dataset/options",
                iteration,
                self.ignore_index,
            )
        if self.streak >= self.limit:
            raise DataError(
                f"{self.data_root}: {self.limit} consecutive training batches had no labelled pixel (every label "
                f"value is the ignore index {self.ignore_index}); stopping. Check the label files and their encoding"
            )
