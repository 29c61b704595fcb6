"""The HTTP API and the web page of ``dsnet serve`` (FastAPI), around one :class:`~dsnet.predict.Predictor`.

Routes (the OpenAPI page is ``/docs``):

* ``POST /v1/segment?format=label|ids|color|overlay|json&alpha=0.5``: an image as the raw body
  (``image/png``, ``image/jpeg``, ``image/webp``) or a ``multipart/form-data`` upload (field ``file``).
  ``label`` (default): 8-bit PNG of training ids at the input's size; ``ids``: the dataset's own ids;
  ``color``: the palette image; ``overlay``: image and colours blended by ``alpha``; ``json``: class
  names, colours and pixel shares, size, latency, model, backend and precision.
* ``WebSocket /v1/stream?format=label|ids|color|overlay&alpha=0.5``: live video: frames in as binary
  messages, per frame a JSON header (frame id, dropped frames, latency) and the PNG; the latest frame wins
  while the model is busy (see :mod:`.routes_stream`).
* ``GET /v1/model``: the model, its label space and the input rules; ``GET /healthz`` (alive) and
  ``GET /readyz`` (model loaded and warmed up); ``GET /`` the page, ``GET /v1/examples/{i}`` its images.

Every refusal is a status and ``{"error": "<one line>"}``: 400 bad image or query, 413 too large, 415
wrong content type, 503 queue full (with ``Retry-After``). No request path reaches the file system:
the page and the example images are read once at start-up.

Each concern has its module: ``routes_info``, ``routes_page``, ``routes_segment`` (with ``segment_query`` and
``segment_openapi``), ``routes_stream``, ``error_handlers``; ``state`` holds what they share, and
:func:`create_app` assembles them.
"""

from __future__ import annotations

from fastapi import FastAPI

from ..predict import Predictor
from .error_handlers import add_error_handlers
from .routes_info import info_router
from .routes_page import page_router
from .routes_segment import segment_router
from .routes_stream import stream_router
from .segment_query import RESPONSE_FORMATS
from .settings import ServeSettings
from .state import ServeState

__all__ = ["RESPONSE_FORMATS", "create_app"]


def create_app(predictor: Predictor, settings: ServeSettings | None = None, title: str = "dsnet") -> FastAPI:
    """The app serving ``predictor``; its batcher thread starts and stops with the app's lifespan."""
    state = ServeState.for_predictor(predictor, settings or ServeSettings())
    app = FastAPI(title=title, summary="DSNet semantic segmentation", lifespan=state.lifespan)
    add_error_handlers(app)
    for router in (
        info_router(state),
        page_router(),
        segment_router(state),
        stream_router(state),
    ):  # this order is the OpenAPI's
        app.include_router(router)
    return app
