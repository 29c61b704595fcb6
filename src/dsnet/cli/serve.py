"""``dsnet serve``: the HTTP API and web page around one Predictor (the ``[serve]`` extra: FastAPI + uvicorn).

Like the other command modules it only parses, calls the library and prints. The server's packages are
optional, so they are imported when the command runs, and a missing one is one line naming the extra.
"""

from __future__ import annotations

import argparse
import importlib
import ipaddress
import socket

from ..errors import ConfigError
from ..optional_imports import import_optional
from . import flags
from .predictor import predictor_from_args

__all__ = ["add_serve_command"]


def _check_address(host: str, port: int) -> None:
    """The port is a port and free on ``host``, checked before the model loads (minutes on a slow CPU)."""
    if not 1 <= port <= 65535:
        raise ConfigError(f"--port {port}: a port is a number from 1 to 65535")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ConfigError(f"--host {host}: not an address of this machine ({e.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as e:
            raise ConfigError(f"--host {host} --port {port}: cannot listen there ({e.strerror})") from None


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


def cmd_serve(args: argparse.Namespace) -> int:
    import_optional("fastapi", "dsnet serve", extra="serve")
    uvicorn = import_optional("uvicorn", "dsnet serve", extra="serve")
    _check_address(args.host, args.port)
    if not _loopback(args.host):
        print(
            f"dsnet serve: warning: --host {args.host} listens beyond this machine, and the API has no "
            "authentication: anyone who can reach the port can use it (put a proxy with authentication in front)"
        )
    serve = importlib.import_module("dsnet.serve")  # needs fastapi: imported once the extra is known present
    settings = serve.ServeSettings(
        max_pixels=args.max_pixels,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        max_batch=args.max_batch,
        batch_window_ms=args.batch_window_ms,
        queue_size=args.queue_size,
        max_streams=args.max_streams,
    )
    args.batch_size = args.max_batch  # the batcher groups the requests; a forward pass takes them all
    predictor = predictor_from_args(args)
    app = serve.create_app(predictor, settings, title=f"dsnet serve {predictor.name}")
    print(
        f"dsnet serve: http://{args.host}:{args.port}/ (the page works offline; API: /openapi.json, and /docs, "
        "whose Swagger UI loads its scripts from a CDN, so it needs internet); Ctrl-C stops it"
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=args.access_log)
    return 0


def _add_server_arguments(p: argparse.ArgumentParser) -> None:
    """How the server batches and bounds requests, and what it logs."""
    p.add_argument("--max-batch", type=int, default=4, help="requests that may share a forward pass (default 4)")
    p.add_argument(
        "--batch-window-ms", type=float, default=5.0, help="how long a request waits for others to join (default 5)"
    )
    p.add_argument("--queue-size", type=int, default=32, help="requests waiting at most; then 503 (default 32)")
    p.add_argument(
        "--max-pixels", type=int, default=4096 * 4096, help="largest image, width x height (default 4096x4096)"
    )
    p.add_argument("--max-body-mb", type=float, default=32.0, help="largest request body in MiB (default 32)")
    p.add_argument(
        "--max-streams", type=int, default=4, help="live video streams (/v1/stream) open at once (default 4)"
    )
    p.add_argument("--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug"))
    p.add_argument("--access-log", action="store_true", help="log every request (uvicorn's access log)")


def add_serve_command(sub: argparse._SubParsersAction) -> None:
    """Register ``serve`` on the ``dsnet`` sub-command parser."""
    p = sub.add_parser(
        "serve",
        help="an HTTP API and a web page that segment uploaded images (needs the [serve] extra)",
        description="Loads the model once and answers POST /v1/segment (label PNG, dataset ids, colours, overlay "
        "or JSON), GET /v1/model, /healthz and /readyz; the page at / uploads an image and shows the overlay. "
        "Requests that arrive together share a forward pass; a full queue answers 503 with Retry-After.",
    )
    flags.add_model(p)
    flags.add_weights(p, "checkpoint, shipped weights name, or a dsnet export", required=True)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    flags.add_backend(p, "as dsnet predict --backend")
    flags.add_threads(p, flags.RUNTIME_THREADS_HELP)
    flags.add_predictor_precision(p)
    flags.add_device(p)
    flags.add_dataset(p)
    flags.add_num_classes(p, help="default: the weights' (must agree if given)")
    _add_server_arguments(p)
    p.set_defaults(func=cmd_serve)
