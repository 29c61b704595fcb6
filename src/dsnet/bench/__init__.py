"""``dsnet bench``: speed of a model on every backend, interleaved in one process (see ``runner``)."""

from . import exported as _exported  # noqa: F401  (registers the deploy backends)
from .backends import BACKENDS, PRECISIONS, BackendUnavailable, list_backends, register_backend
from .report import format_report
from .runner import BenchReport, BenchRow, run_bench

__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "BackendUnavailable",
    "BenchReport",
    "BenchRow",
    "format_report",
    "list_backends",
    "register_backend",
    "run_bench",
]
