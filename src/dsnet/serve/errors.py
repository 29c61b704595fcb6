"""The one error a request can cause: an HTTP status and a one-line reason (never a traceback)."""

from __future__ import annotations

from ..errors import DSNetError

__all__ = ["RequestRejected"]


class RequestRejected(DSNetError):
    """A request the server refuses: ``status`` (4xx, or 503 when full) and a one-line ``reason``."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or {}
