"""GET /v1/model (what is served and the input rules), /healthz (alive) and /readyz (warmed up)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from .images import IMAGE_TYPES
from .segment_query import RESPONSE_FORMATS
from .state import ServeState

__all__ = ["info_router", "model_info"]


def model_info(state: ServeState) -> dict[str, Any]:
    """The body of /v1/model: the model, its label space, the input rules and the batching options."""
    predictor, settings, labels = state.predictor, state.settings, state.predictor.label_space
    return {
        **state.served_by(),
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
            "formats": list(RESPONSE_FORMATS),
        },
        "batching": {
            "max_batch": settings.max_batch,
            "window_ms": settings.batch_window_ms,
            "queue_size": settings.queue_size,
        },
    }


def _readiness(state: ServeState) -> dict[str, Any]:
    stats = state.batcher.stats
    return {
        "ready": state.ready,
        "waiting": state.batcher.waiting,
        "batches": stats.batches,
        "computed": stats.computed,
        "skipped_gone": stats.skipped_gone,
        "refused_full": stats.refused_full,
    }


def info_router(state: ServeState) -> APIRouter:
    """The routes that describe the server rather than segment (their handlers carry no docstring: FastAPI
    would publish it as the OpenAPI description)."""
    router = APIRouter()

    @router.get("/v1/model", summary="the model, its label space and the input rules")
    async def get_model() -> dict[str, Any]:
        return model_info(state)

    @router.get("/healthz", summary="liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @router.get("/readyz", summary="readiness: the model is loaded and warmed up")
    async def readyz() -> JSONResponse:
        return JSONResponse(_readiness(state), status_code=200 if state.ready else 503)

    return router
