"""An app served by uvicorn on a thread of this process: for notebooks, benchmarks and tests that want the
real HTTP and WebSocket stack around a Predictor they built themselves (``dsnet serve`` runs it in the main
thread instead)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from ..errors import DSNetError

__all__ = ["free_port", "serving_in_thread"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving_in_thread(app: FastAPI, host: str = "127.0.0.1", port: int | None = None) -> Iterator[str]:
    """Serves ``app`` while the block runs and yields its ``host:port``; the server stops after it."""
    port = port or free_port(host)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", ws="auto"))
    thread = threading.Thread(target=server.run, name="dsnet-serve-thread", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise DSNetError(f"the server on {host}:{port} did not start")
        time.sleep(0.02)
    try:
        yield f"{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
