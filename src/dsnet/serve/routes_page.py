"""GET / and /page/{name} (the web page), /v1/examples and /v1/examples/{index} (its example images).

The files are read from the package once, when the router is built: no request path reaches the file system.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

from .errors import RequestRejected

__all__ = ["page_router"]

#: the page's files and their media types
PAGE_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript",
    "live.js": "text/javascript",
    "style.css": "text/css",
}
_EXAMPLE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def _package_files(folder: str, names: list[str] | None = None) -> dict[str, bytes]:
    """``name -> bytes`` of the files in ``dsnet/serve/<folder>`` (only ``names`` if given), by name."""
    root = resources.files("dsnet.serve").joinpath(folder)
    if not root.is_dir():
        return {}
    found = {}
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.is_file() and (names is None or entry.name in names):
            found[entry.name] = entry.read_bytes()
    return found


def page_router() -> APIRouter:
    """The page's routes, over the files read here (handlers without docstrings: FastAPI would publish them)."""
    page = _package_files("page", list(PAGE_FILES))
    examples = [(n, b) for n, b in _package_files("examples").items() if n.lower().endswith(_EXAMPLE_SUFFIXES)]
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    async def index() -> Response:
        return Response(page.get("index.html", b"page missing from this install"), media_type=PAGE_FILES["index.html"])

    @router.get("/page/{name}", include_in_schema=False)
    async def page_file(name: str) -> Response:
        if name not in page:  # a fixed table read at start-up: the request's name never reaches a path
            raise RequestRejected(404, f"no page file {name!r}")
        return Response(page[name], media_type=PAGE_FILES[name])

    @router.get("/v1/examples", summary="names of the example images shipped with the package")
    async def list_examples() -> list[str]:
        return [name for name, _ in examples]

    @router.get("/v1/examples/{index}", summary="one example image, by its index in /v1/examples")
    async def get_example(index: int) -> Response:
        if not 0 <= index < len(examples):
            raise RequestRejected(404, f"example {index}: there are {len(examples)}")
        name, data = examples[index]
        return Response(data, media_type="image/png" if name.endswith(".png") else "image/jpeg")

    return router
