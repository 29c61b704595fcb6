"""What the routes of one app share: the predictor, the limits, the batcher, and whether the model is warm."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import numpy as np
from fastapi import FastAPI

from ..predict import Predictor
from .batcher import Batcher
from .settings import ServeSettings

__all__ = ["SCORES", "ServeState"]

#: the batcher variant that answers class probabilities instead of label maps
SCORES = "scores"


@dataclass
class ServeState:
    """One object the route builders close over, so no route reaches for globals. ``ready`` turns true once
    the first (warm-up) pass is done, and false again on shutdown: /readyz reports it."""

    predictor: Predictor
    settings: ServeSettings
    batcher: Batcher
    ready: bool = False
    #: live streams open now (/v1/stream), at most ``settings.max_streams``
    streams: int = 0

    @classmethod
    def for_predictor(cls, predictor: Predictor, settings: ServeSettings) -> ServeState:
        """The state around ``predictor``, its batcher built but not started (the lifespan starts it)."""

        def run(images: list[np.ndarray], variant: str | None = None) -> list[np.ndarray]:
            if variant == SCORES:  # class probabilities (C, H, W), for a stream that smooths them over frames
                return [p.probs for p in predictor.predict_batch(images, return_probs=True)]
            return [p.label for p in predictor.predict_batch(images)]

        batcher = Batcher(
            run,
            max_batch=settings.max_batch,
            window_s=settings.batch_window_ms / 1e3,
            queue_size=settings.queue_size,
        )
        return cls(predictor, settings, batcher)

    def served_by(self) -> dict[str, str]:
        """What computes the answers, as /v1/model and the ``format=json`` answers both name it."""
        return {"model": self.predictor.name, "backend": self.predictor.backend, "precision": self.predictor.precision}

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        """The app's lifespan: the batcher thread runs, and the model is warmed up, while the app serves."""
        self.batcher.start()
        limit = self.predictor.static_size or (64, 64)  # a static export runs its own size
        warm = np.zeros((*limit, 3), np.uint8)
        await asyncio.wrap_future(self.batcher.submit(warm))  # the first pass pays for lazy set-up
        self.ready = True
        yield
        self.ready = False
        self.batcher.stop()
