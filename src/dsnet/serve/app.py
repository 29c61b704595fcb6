"""The HTTP API and the web page of ``dsnet serve`` (FastAPI), around one :class:`~dsnet.predict.Predictor`.

Routes (the OpenAPI page is ``/docs``):

* ``POST /v1/segment?format=label|ids|color|overlay|json&alpha=0.5``: an image as the raw body
  (``image/png``, ``image/jpeg``, ``image/webp``) or a ``multipart/form-data`` upload (field ``file``).
  ``label`` (default): 8-bit PNG of training ids at the input's size; ``ids``: the dataset's own ids;
  ``color``: the palette image; ``overlay``: image and colours blended by ``alpha``; ``json``: class
  names, colours and pixel shares, size, latency, model, backend and precision.
* ``GET /v1/model``: the model, its label space and the input rules; ``GET /healthz`` (alive) and
  ``GET /readyz`` (model loaded and warmed up); ``GET /`` the page, ``GET /v1/examples/{i}`` its images.

Every refusal is a status and ``{"error": "<one line>"}``: 400 bad image or query, 413 too large, 415
wrong content type, 503 queue full (with ``Retry-After``). No request path reaches the file system:
the page and the example images are read once at start-up.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ..data.labels import colorize
from ..predict import Predictor
from ..predict.writers import blend
from .batcher import Batcher, BatchResult, QueueFull
from .errors import RequestRejected
from .images import IMAGE_TYPES, decode_image, encode_png, image_from_body, json_bytes
from .settings import ServeSettings

__all__ = ["FORMATS", "create_app"]

#: values of ``format``
FORMATS = ("label", "ids", "color", "overlay", "json")
#: what /v1/segment takes, for the OpenAPI schema: the route reads the raw body and its query itself (so that
#: bad input gets this API's own 4xx messages), and FastAPI cannot see either from its signature
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_SEGMENT_OPENAPI = {
    "parameters": [
        {"name": "format", "in": "query", "schema": {"type": "string", "enum": list(FORMATS), "default": "label"}},
        {"name": "alpha", "in": "query", "schema": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5}},
    ],
    "requestBody": {
        "required": True,
        "content": {
            **{media: _BINARY for media in IMAGE_TYPES},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    },
}
_QUERY_KEYS = ("format", "alpha")
_PAGE_FILES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript", "style.css": "text/css"}


def _read_package_files(folder: str, names: list[str] | None = None) -> dict[str, bytes]:
    root = resources.files("dsnet.serve").joinpath(folder)
    if not root.is_dir():
        return {}
    found = {}
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.is_file() and (names is None or entry.name in names):
            found[entry.name] = entry.read_bytes()
    return found


def _query(request: Request) -> tuple[str, float]:
    params = request.query_params
    unknown = [k for k in params if k not in _QUERY_KEYS]
    if unknown:
        raise RequestRejected(400, f"unknown query parameter {unknown[0]!r} (known: {', '.join(_QUERY_KEYS)})")
    fmt = params.get("format", "label")
    if fmt not in FORMATS:
        raise RequestRejected(400, f"format={fmt!r}: expected one of {', '.join(FORMATS)}")
    try:
        alpha = float(params.get("alpha", "0.5"))
    except ValueError:
        raise RequestRejected(400, f"alpha={params.get('alpha')!r}: expected a number in 0..1") from None
    if not 0.0 <= alpha <= 1.0:
        raise RequestRejected(400, f"alpha={alpha}: expected a number in 0..1")
    return fmt, alpha


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` bytes (announced or while streaming)."""
    announced = request.headers.get("content-length")
    if announced is not None and announced.isdigit() and int(announced) > limit:
        raise RequestRejected(413, f"body of {int(announced):,} bytes is over the limit of {limit:,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestRejected(413, f"body is over the limit of {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _wait_unless_gone(request: Request, future: Any) -> BatchResult | None:
    """The batcher's result, or None when the client disconnects first (then the queued job is dropped)."""
    result = asyncio.wrap_future(future)
    while True:
        done, _ = await asyncio.wait({result}, timeout=0.05)
        if done:
            return result.result()
        if await request.is_disconnected():
            future.cancel()  # still queued: never computed; already running: its result is discarded
            return None


def create_app(predictor: Predictor, settings: ServeSettings | None = None, title: str = "dsnet") -> FastAPI:
    """The app serving ``predictor``; its batcher thread starts and stops with the app's lifespan."""
    settings = settings or ServeSettings()
    labels = predictor.labels
    page = _read_package_files("page", list(_PAGE_FILES))
    examples = list(_read_package_files("examples").items())
    examples = [(n, b) for n, b in examples if n.lower().endswith((".jpg", ".jpeg", ".png", ".webp"))]
    batcher = Batcher(
        lambda images: [p.label for p in predictor.predict_batch(images)],
        max_batch=settings.max_batch,
        window_s=settings.batch_window_ms / 1e3,
        queue_size=settings.queue_size,
    )
    state = {"ready": False}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        warm = np.zeros((*(predictor.static_size or (64, 64)), 3), np.uint8)  # a static export runs its own size
        await asyncio.wrap_future(batcher.submit(warm))  # the first pass pays for lazy set-up
        state["ready"] = True
        yield
        state["ready"] = False
        batcher.stop()

    app = FastAPI(title=title, summary="DSNet semantic segmentation", lifespan=lifespan)

    @app.exception_handler(RequestRejected)
    async def _rejected(request: Request, exc: RequestRejected) -> JSONResponse:
        return JSONResponse({"error": exc.reason}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """FastAPI's own answers (unknown path 404, wrong method 405) in the API's one error shape."""
        reason = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        return JSONResponse({"error": f"{request.method} {request.url.path}: {reason}"}, exc.status_code, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid request')}"}, 422)

    def model_info() -> dict[str, Any]:
        return {
            "model": predictor.name,
            "backend": predictor.backend,
            "precision": predictor.precision,
            "precision_reason": predictor.precision_reason,
            "label_space": {
                "name": labels.name,
                "classes": list(labels.classes),
                "palette": [list(c) for c in labels.palette],
                "dataset_ids": list(labels.dataset_ids) if labels.dataset_ids is not None else None,
            },
            "input": {
                "content_types": [*IMAGE_TYPES, "multipart/form-data"],
                "max_pixels": settings.max_pixels,
                "max_body_bytes": settings.max_body_bytes,
                "formats": list(FORMATS),
            },
            "batching": {
                "max_batch": settings.max_batch,
                "window_ms": settings.batch_window_ms,
                "queue_size": settings.queue_size,
            },
        }

    @app.get("/v1/model", summary="the model, its label space and the input rules")
    async def get_model() -> dict[str, Any]:
        return model_info()

    @app.get("/healthz", summary="liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz", summary="readiness: the model is loaded and warmed up")
    async def readyz() -> JSONResponse:
        stats = batcher.stats
        body = {
            "ready": state["ready"],
            "waiting": batcher.waiting,
            "batches": stats.batches,
            "computed": stats.computed,
        }
        body |= {"skipped_gone": stats.skipped_gone, "refused_full": stats.refused_full}
        return JSONResponse(body, status_code=200 if state["ready"] else 503)

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return Response(page.get("index.html", b"page missing from this install"), media_type=_PAGE_FILES["index.html"])

    @app.get("/page/{name}", include_in_schema=False)
    async def page_file(name: str) -> Response:
        if name not in page:  # a fixed table read at start-up: the request's name never reaches a path
            raise RequestRejected(404, f"no page file {name!r}")
        return Response(page[name], media_type=_PAGE_FILES[name])

    @app.get("/v1/examples", summary="names of the example images shipped with the package")
    async def list_examples() -> list[str]:
        return [name for name, _ in examples]

    @app.get("/v1/examples/{index}", summary="one example image, by its index in /v1/examples")
    async def get_example(index: int) -> Response:
        if not 0 <= index < len(examples):
            raise RequestRejected(404, f"example {index}: there are {len(examples)}")
        name, data = examples[index]
        return Response(data, media_type="image/png" if name.endswith(".png") else "image/jpeg")

    @app.post(
        "/v1/segment",
        summary="segment one image",
        description="Body: the image (image/png, image/jpeg, image/webp) or multipart/form-data with field 'file'. "
        "Query: format=label|ids|color|overlay|json (default label), alpha=0..1 (overlay opacity, default 0.5).",
        openapi_extra=_SEGMENT_OPENAPI,
    )
    async def segment(request: Request) -> Response:
        start = time.perf_counter()
        fmt, alpha = _query(request)
        if fmt == "ids" and labels.dataset_ids is None:
            raise RequestRejected(400, f"format=ids: the label space {labels.name!r} has no dataset ids")
        try:
            body = await _read_body(request, settings.max_body_bytes)
        except ClientDisconnect:
            return Response(status_code=499)  # nobody is listening; nothing was computed
        data = image_from_body(body, request.headers.get("content-type", ""))
        rgb = decode_image(data, settings.max_pixels)
        problem = predictor.input_problem(*rgb.shape[:2])  # e.g. too thin for an export, or not a static one's size
        if problem is not None:
            raise RequestRejected(400, problem)
        try:
            future = batcher.submit(rgb)
        except QueueFull as e:
            raise RequestRejected(
                503, f"busy: {e}; retry later", {"Retry-After": str(settings.retry_after_s)}
            ) from None
        result = await _wait_unless_gone(request, future)
        if result is None:
            return Response(status_code=499)
        label = np.asarray(result.value)
        latency_ms = 1e3 * (time.perf_counter() - start)
        headers = {
            "X-DSNet-Backend": predictor.backend,
            "X-DSNet-Precision": predictor.precision,
            "X-DSNet-Latency-Ms": f"{latency_ms:.1f}",
            "X-DSNet-Batch-Size": str(result.batch_size),
        }
        if fmt == "json":
            counts = np.bincount(label.ravel(), minlength=labels.num_classes)[: labels.num_classes]
            share = counts / max(1, label.size)
            classes = [
                {"id": i, "name": labels.classes[i], "color": list(labels.palette[i]), "share": round(float(s), 6)}
                for i, s in enumerate(share)
            ]
            doc = {
                "size": [int(label.shape[0]), int(label.shape[1])],
                "classes": classes,
                "latency_ms": round(latency_ms, 2),
                "inference_ms": round(result.inference_ms, 2),
                "batch_size": result.batch_size,
                "model": predictor.name,
                "backend": predictor.backend,
                "precision": predictor.precision,
            }
            return Response(json_bytes(doc), media_type="application/json", headers=headers)
        if fmt == "label":
            out = label.astype(np.uint8)
        elif fmt == "ids":
            out = labels.to_dataset_ids(label.astype(np.uint8))
        else:
            color = colorize(label, labels.palette)
            out = color if fmt == "color" else blend(rgb, color, alpha)
        return Response(encode_png(out), media_type="image/png", headers=headers)

    return app
