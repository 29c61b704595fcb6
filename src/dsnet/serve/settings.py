"""The server's limits and batching options (``dsnet serve`` flags), in one place."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["ServeSettings"]


@dataclass(frozen=True)
class ServeSettings:
    """``max_pixels``: largest image (width x height) accepted; ``max_body_bytes``: largest request body,
    checked while it is read; ``max_batch``/``batch_window_ms``: how many requests share a forward pass
    and how long the first one waits for company; ``queue_size``: requests waiting at most (then 503);
    ``retry_after_s``: what a 503 tells the client to wait; ``max_streams``: live streams (/v1/stream) open at
    once, a further one is refused."""

    max_pixels: int = 4096 * 4096
    max_body_bytes: int = 32 * 1024 * 1024
    max_batch: int = 4
    batch_window_ms: float = 5.0
    queue_size: int = 32
    retry_after_s: int = 1
    max_streams: int = 4

    def __post_init__(self) -> None:
        for name in ("max_pixels", "max_body_bytes", "max_batch", "queue_size", "retry_after_s", "max_streams"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)}: must be at least 1")
        if self.batch_window_ms < 0:
            raise ConfigError(f"batch_window_ms={self.batch_window_ms}: must not be negative")
