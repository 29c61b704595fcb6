"""POST /v1/segment: one image in, its segmentation out (a PNG or a JSON summary), through the shared batcher."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Future
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

from ..data.labels import colorize
from ..predict import LabelSpace
from ..predict.writers import blend
from .batcher import BatchResult, QueueFull
from .errors import RequestRejected
from .images import decode_image, encode_png, image_from_body, json_bytes
from .segment_openapi import SEGMENT_DESCRIPTION, SEGMENT_OPENAPI, SEGMENT_SUMMARY
from .segment_query import parse_segment_query
from .state import ServeState

__all__ = ["label_image", "segment_router"]

#: the status of an answer nobody is listening for (the client left); nginx's "client closed request"
_CLIENT_GONE = 499


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


def _submit(state: ServeState, rgb: np.ndarray) -> Future:
    """Queues ``rgb`` on the batcher; a full queue is a 503 that tells the client when to retry."""
    try:
        return state.batcher.submit(rgb)
    except QueueFull as e:
        retry = {"Retry-After": str(state.settings.retry_after_s)}
        raise RequestRejected(503, f"busy: {e}; retry later", retry) from None


async def _wait_unless_gone(request: Request, future: Future) -> BatchResult | None:
    """The batcher's result, or None when the client disconnects first (then the queued job is dropped)."""
    result = asyncio.wrap_future(future)
    while True:
        done, _ = await asyncio.wait({result}, timeout=0.05)
        if done:
            return result.result()
        if await request.is_disconnected():
            future.cancel()  # still queued: never computed; already running: its result is discarded
            return None


def _summary(state: ServeState, label: np.ndarray, result: BatchResult, latency_ms: float) -> dict[str, Any]:
    """The ``format=json`` answer: each class's pixel share, the size, the timings and what computed it."""
    labels = state.predictor.label_space
    counts = np.bincount(label.ravel(), minlength=labels.num_classes)[: labels.num_classes]
    share = counts / max(1, label.size)
    classes = [
        {"id": i, "name": labels.classes[i], "color": list(labels.palette[i]), "share": round(float(s), 6)}
        for i, s in enumerate(share)
    ]
    return {
        "size": [int(label.shape[0]), int(label.shape[1])],
        "classes": classes,
        "latency_ms": round(latency_ms, 2),
        "inference_ms": round(result.inference_ms, 2),
        "batch_size": result.batch_size,
        **state.served_by(),
    }


def label_image(fmt: str, label: np.ndarray, rgb: np.ndarray | None, alpha: float, labels: LabelSpace) -> np.ndarray:
    """The image a PNG format answers with: training ids, dataset ids, the palette colours or the overlay."""
    if fmt == "label":
        return label.astype(np.uint8)
    if fmt == "ids":
        return labels.to_dataset_ids(label.astype(np.uint8))
    color = colorize(label, labels.palette)
    if fmt == "color":
        return color
    assert rgb is not None, "an overlay needs the image"
    return blend(rgb, color, alpha)


async def _segment(request: Request, state: ServeState) -> Response:
    """Query, body, image and size checks first (each a 4xx), then the batched pass, then the answer."""
    start = time.perf_counter()
    predictor, labels = state.predictor, state.predictor.label_space
    fmt, alpha = parse_segment_query(request.query_params)
    if fmt == "ids" and labels.dataset_ids is None:
        raise RequestRejected(400, f"format=ids: the label space {labels.name!r} has no dataset ids")
    try:
        body = await _read_body(request, state.settings.max_body_bytes)
    except ClientDisconnect:
        return Response(status_code=_CLIENT_GONE)  # nothing was computed
    data = image_from_body(body, request.headers.get("content-type", ""))
    rgb = decode_image(data, state.settings.max_pixels)
    problem = predictor.input_problem(*rgb.shape[:2])  # e.g. too thin for an export, or not a static one's size
    if problem is not None:
        raise RequestRejected(400, problem)
    result = await _wait_unless_gone(request, _submit(state, rgb))
    if result is None:
        return Response(status_code=_CLIENT_GONE)
    label = np.asarray(result.value)
    latency_ms = 1e3 * (time.perf_counter() - start)
    headers = {
        "X-DSNet-Backend": predictor.backend,
        "X-DSNet-Precision": predictor.precision,
        "X-DSNet-Latency-Ms": f"{latency_ms:.1f}",
        "X-DSNet-Batch-Size": str(result.batch_size),
    }
    if fmt == "json":
        doc = _summary(state, label, result, latency_ms)
        return Response(json_bytes(doc), media_type="application/json", headers=headers)
    return Response(encode_png(label_image(fmt, label, rgb, alpha, labels)), media_type="image/png", headers=headers)


def segment_router(state: ServeState) -> APIRouter:
    """The /v1/segment route; its OpenAPI text is written by hand in :mod:`.segment_openapi`."""
    router = APIRouter()

    @router.post(
        "/v1/segment",
        summary=SEGMENT_SUMMARY,
        description=SEGMENT_DESCRIPTION,
        openapi_extra=SEGMENT_OPENAPI,
    )
    async def segment(request: Request) -> Response:
        return await _segment(request, state)

    return router
