"""The OpenAPI description of /v1/segment, written out by hand.

The route reads the raw body and its query itself (so that bad input gets this API's own 4xx messages),
and FastAPI cannot see either from its signature.
"""

from __future__ import annotations

from typing import Any

from .images import IMAGE_TYPES
from .segment_query import RESPONSE_FORMATS

__all__ = ["SEGMENT_DESCRIPTION", "SEGMENT_OPENAPI", "SEGMENT_SUMMARY"]

SEGMENT_SUMMARY = "segment one image"
SEGMENT_DESCRIPTION = (
    "Body: the image (image/png, image/jpeg, image/webp) or multipart/form-data with field 'file'. "
    "Query: format=label|ids|color|overlay|json (default label), alpha=0..1 (overlay opacity, default 0.5)."
)
_BINARY = {"type": "string", "format": "binary"}
#: the route's ``openapi_extra``: its query parameters and its request body
SEGMENT_OPENAPI: dict[str, Any] = {
    "parameters": [
        {
            "name": "format",
            "in": "query",
            "schema": {"type": "string", "enum": list(RESPONSE_FORMATS), "default": "label"},
        },
        {"name": "alpha", "in": "query", "schema": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5}},
    ],
    "requestBody": {
        "required": True,
        "content": {
            **{media: {"schema": _BINARY} for media in IMAGE_TYPES},
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"file": _BINARY}, "required": ["file"]},
            },
        },
    },
}
