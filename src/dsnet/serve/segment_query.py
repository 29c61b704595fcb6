"""The query of /v1/segment (``format`` and ``alpha``), checked by this API's own rules and messages."""

from __future__ import annotations

from starlette.datastructures import QueryParams

from .errors import RequestRejected

__all__ = ["RESPONSE_FORMATS", "QUERY_KEYS", "parse_segment_query"]

#: values of ``format``
RESPONSE_FORMATS = ("label", "ids", "color", "overlay", "json")
#: the query parameters /v1/segment knows; any other is refused rather than ignored
QUERY_KEYS = ("format", "alpha")


def parse_segment_query(params: QueryParams) -> tuple[str, float]:
    """``(format, alpha)``, or a 400 naming the first unknown key or bad value."""
    unknown = [k for k in params if k not in QUERY_KEYS]
    if unknown:
        raise RequestRejected(400, f"unknown query parameter {unknown[0]!r} (known: {', '.join(QUERY_KEYS)})")
    fmt = params.get("format", "label")
    if fmt not in RESPONSE_FORMATS:
        raise RequestRejected(400, f"format={fmt!r}: expected one of {', '.join(RESPONSE_FORMATS)}")
    try:
        alpha = float(params.get("alpha", "0.5"))
    except ValueError:
        raise RequestRejected(400, f"alpha={params.get('alpha')!r}: expected a number in 0..1") from None
    if not 0.0 <= alpha <= 1.0:
        raise RequestRejected(400, f"alpha={alpha}: expected a number in 0..1")
    return fmt, alpha
