"""``dsnet bench``: speed of a model on every backend, interleaved in one process (see ``runner``)."""

from .compare import compare_speed
from .report import format_report
from .runner import BenchReport, BenchRow, run_bench
from .variants import VARIANTS, BackendUnavailable, BenchVariant, list_variants, register_variant

__all__ = [
    "VARIANTS",
    "BackendUnavailable",
    "BenchReport",
    "BenchRow",
    "BenchVariant",
    "compare_speed",
    "format_report",
    "list_variants",
    "register_variant",
    "run_bench",
]
