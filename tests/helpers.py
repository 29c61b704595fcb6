"""Test doubles shared by the training tests."""

from __future__ import annotations

import signal

from dsnet.engine.trainer import Trainer


class StopAt(Trainer):
    """Simulates Ctrl-C / SIGTERM arriving during iteration ``stop_at``."""

    stop_at = 3

    def _step(self, batches):  # type: ignore[no-untyped-def]
        out = super()._step(batches)
        if self.iteration == self.stop_at:
            self._stop_signal = signal.SIGTERM
        return out
