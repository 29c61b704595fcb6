"""Background threads that keep the model busy: one reads ahead, one writes behind.

Decoding (OpenCV) and PNG encoding release the GIL, so they overlap with the forward pass instead of
adding to it. Both queues are bounded, order is kept (one thread each), and nothing is lost silently:
an exception in a thread is raised again in the caller, where the work stops. ``close`` stops a
thread promptly (Ctrl-C in the caller), dropping what is queued; atomic writes leave no partial file.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

__all__ = ["ReadAhead", "WriteBehind"]

T = TypeVar("T")
_POLL_S = 0.1  # how often a blocked thread checks whether it was told to stop
_JOIN_S = 5.0


class ReadAhead(Generic[T]):
    """Iterate ``source`` in a daemon thread, up to ``depth`` items ahead of the consumer.

    Iterating a ``ReadAhead`` yields the items in order; an exception raised by ``source`` is raised
    by the iteration at the point it occurred. Use as a context manager so the thread stops.
    """

    def __init__(self, source: Iterable[T], depth: int, name: str = "dsnet-read") -> None:
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(iter(source),), name=name, daemon=True)
        self._thread.start()

    def _put(self, entry: tuple[str, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, source: Iterator[T]) -> None:
        try:
            for item in source:
                if not self._put(("item", item)):
                    return
            self._put(("done", None))
        except BaseException as e:  # handed to the consumer, which raises it
            self._put(("error", e))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()  # a generator's cleanup (e.g. releasing a video) runs in its own thread

    def __iter__(self) -> Iterator[T]:
        while True:
            kind, value = self._queue.get()
            if kind == "item":
                yield value
            elif kind == "done":
                return
            else:
                raise value

    def close(self) -> None:
        self._stop.set()
        self._thread.join(_JOIN_S)

    def __enter__(self) -> ReadAhead[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WriteBehind:
    """Run submitted jobs in order in one daemon thread, at most ``depth`` waiting.

    The first job that raises stops the worker; its exception is raised by the next ``submit`` or by
    ``finish`` (which waits for the queue to drain). Use as a context manager: leaving the block
    without ``finish`` (an error or Ctrl-C in the caller) drops the queued jobs.
    """

    def __init__(self, depth: int, name: str = "dsnet-write") -> None:
        self._queue: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                job = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if job is None:
                return
            fn, args = job
            try:
                fn(*args)
            except BaseException as e:
                self.error = e
                self._stop.set()
                return

    def _raise_error(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            self._stop.set()
            raise error

    def _put(self, entry: tuple[Callable[..., Any], tuple[Any, ...]] | None) -> None:
        while True:
            self._raise_error()
            if not self._thread.is_alive():
                raise RuntimeError("the writer thread has stopped")
            try:
                self._queue.put(entry, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)``; raises the exception of an earlier job that failed."""
        self._put((fn, args))

    def finish(self) -> None:
        """Wait until every queued job has run; raises the first job's exception, if any."""
        if self._thread.is_alive() and not self._stop.is_set():
            self._put(None)
            while self._thread.is_alive():
                self._thread.join(_POLL_S)
        self._raise_error()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(_JOIN_S)

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
