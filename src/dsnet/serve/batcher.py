"""Requests that arrive together share a forward pass: a bounded queue and a short batching window.

One worker thread owns the model. It takes the oldest waiting request, waits up to ``window_s`` for
more (up to ``max_batch``), drops those whose client has gone (their future was cancelled while they
waited), and runs the rest, one forward pass per image size. A full queue refuses at once
(:class:`QueueFull`, which the server answers with 503 and ``Retry-After``) instead of growing memory.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import DSNetError

__all__ = ["BatchStats", "Batcher", "QueueFull"]


class QueueFull(DSNetError):
    """The batcher's queue holds ``queue_size`` requests already."""


@dataclass
class _Job:
    image: np.ndarray
    future: Future = field(default_factory=Future)
    #: what to compute, when the caller asks for something other than the default (None)
    variant: str | None = None


@dataclass
class BatchStats:
    """Counters since start: forward passes, images computed, requests dropped because their client left."""

    batches: int = 0
    computed: int = 0
    skipped_gone: int = 0
    refused_full: int = 0
    largest_batch: int = 0


@dataclass(frozen=True)
class BatchResult:
    """One request's result and the forward pass it shared."""

    value: Any
    batch_size: int
    inference_ms: float


_STOP = object()


class Batcher:
    """Runs ``run_batch(images) -> results`` (same-size RGB images, one result each) on one thread; a job
    submitted with a ``variant`` is batched with its own kind only and run as ``run_batch(images, variant)``
    (the live stream's class scores, for smoothing, beside the label maps of everything else)."""

    def __init__(
        self,
        run_batch: Callable[..., Sequence[Any]],
        *,
        max_batch: int = 4,
        window_s: float = 0.005,
        queue_size: int = 32,
    ) -> None:
        if max_batch < 1 or queue_size < 1 or window_s < 0:
            raise ValueError("max_batch and queue_size must be >= 1 and window_s >= 0")
        self.run_batch = run_batch
        self.max_batch, self.window_s = int(max_batch), float(window_s)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=int(queue_size))
        self._thread = threading.Thread(target=self._loop, name="dsnet-serve-batcher", daemon=True)
        self.stats = BatchStats()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)  # blocks only while full; the worker is draining it
            self._thread.join(timeout)

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    def submit(self, image: np.ndarray, variant: str | None = None) -> Future:
        """Queue one image; its future gets a :class:`BatchResult`. Cancel the future to drop the request."""
        job = _Job(image, variant=variant)
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self.stats.refused_full += 1
            raise QueueFull(f"{self._queue.maxsize} requests are waiting already") from None
        return job.future

    def _collect(self, first: _Job) -> tuple[list[_Job], bool]:
        jobs, stop = [first], False
        deadline = time.monotonic() + self.window_s
        while len(jobs) < self.max_batch:
            left = deadline - time.monotonic()
            try:
                job = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is _STOP:
                stop = True
                break
            jobs.append(job)
        return jobs, stop

    def _loop(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is _STOP:
                break
            jobs, stop = self._collect(first)
            live = []
            for job in jobs:
                if job.future.set_running_or_notify_cancel():
                    live.append(job)
                else:
                    self.stats.skipped_gone += 1
            by_size: dict[tuple[object, ...], list[_Job]] = {}
            for job in live:
                by_size.setdefault((job.variant, *job.image.shape), []).append(job)
            for group in by_size.values():
                self._run(group)

    def _run(self, group: list[_Job]) -> None:
        start = time.perf_counter()
        try:
            images = [job.image for job in group]
            variant = group[0].variant
            results = self.run_batch(images) if variant is None else self.run_batch(images, variant)
        except Exception as e:  # the request gets the error; the worker lives on
            for job in group:
                job.future.set_exception(e)
            return
        elapsed_ms = 1e3 * (time.perf_counter() - start)
        self.stats.batches += 1
        self.stats.computed += len(group)
        self.stats.largest_batch = max(self.stats.largest_batch, len(group))
        for job, value in zip(group, results):
            job.future.set_result(BatchResult(value, len(group), elapsed_ms))
