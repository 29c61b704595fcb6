"""``dsnet bench``: speed of a model on every backend, interleaved in one process (see ``runner``)."""

from . import exported as _exported  # noqa: F401  (registers the deploy backends)
from .backends import BACKENDS, PRECISIONS, BackendUnavailable, list_backends, register_backend
from .compare import compare_speed
from .report import format_report
from .runner import BenchReport, BenchRow, run_bench

__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "BackendUnavailable",
    "BenchReport",
    "BenchRow",
    "compare_speed",
    "format_report",
    "list_backends",
    "register_backend",
    "run_bench",
]
