"""Every refusal in the API's one error shape: the status and ``{"error": "<one line>"}``."""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .errors import RequestRejected

__all__ = ["add_error_handlers"]


async def _rejected(request: Request, exc: RequestRejected) -> JSONResponse:
    return JSONResponse({"error": exc.reason}, status_code=exc.status, headers=exc.headers)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """FastAPI's own answers (unknown path 404, wrong method 405) in the API's one error shape."""
    reason = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
    return JSONResponse({"error": f"{request.method} {request.url.path}: {reason}"}, exc.status_code, exc.headers)


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's own validation (e.g. a non-integer example index), by its first problem."""
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(x) for x in first.get("loc", ()))
    return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid request')}"}, 422)


def add_error_handlers(app: FastAPI) -> None:
    """Registers the handlers on ``app``: this API's refusals, FastAPI's 404/405s and its validation errors."""
    app.add_exception_handler(RequestRejected, _rejected)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
