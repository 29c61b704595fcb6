"""Deployment: transforms of the same DSNet module for inference, and export to ONNX/OpenVINO/torch.export.

``prepare(model)`` gives a deep copy with BatchNorm folded into its convolutions, the auxiliary
heads dropped and adaptive pooling in an exact, exportable form; ``export(model, format, size,
out=...)`` writes that form and checks it with the format's own runtime;
``quantize_openvino`` writes an INT8 OpenVINO model calibrated on real images (NNCF); ``build_runner`` gives
the :class:`Runner` that predict, serve and bench run (a model, an exported file or a function on any backend
and precision: normalised batch in, logits out). The export packages
are optional (``pip install dsnet-seg[deploy]``); importing this package needs none of them.
"""

from ..errors import ExportError, MissingBackendError
from .export import FORMATS, ExportResult, export, output_files
from .fold import find_conv_bn_pairs, fold_batchnorm
from .pooling import MatmulAdaptiveAvgPool2d, pooling_matrix, replace_adaptive_pools
from .prepare import PrepareReport, prepare, prepare_with_report
from .quantize import PRESETS, QuantizeResult, quantize_openvino
from .runner import ArrayRunner, LogitsFn, ModuleRunner, Runner, RunnerInfo, RunnerRecipe
from .runner_builder import (
    BACKENDS,
    EXPORT_SUFFIXES,
    RUNTIME_BACKENDS,
    backend_for_export,
    build_runner,
    check_backend,
    export_format,
)
from .runtime import LoadedExport, load_export

__all__ = [
    "ArrayRunner",
    "BACKENDS",
    "EXPORT_SUFFIXES",
    "FORMATS",
    "LogitsFn",
    "ModuleRunner",
    "RUNTIME_BACKENDS",
    "Runner",
    "RunnerInfo",
    "RunnerRecipe",
    "backend_for_export",
    "build_runner",
    "check_backend",
    "export_format",
    "ExportError",
    "ExportResult",
    "LoadedExport",
    "MatmulAdaptiveAvgPool2d",
    "MissingBackendError",
    "PRESETS",
    "PrepareReport",
    "QuantizeResult",
    "export",
    "find_conv_bn_pairs",
    "fold_batchnorm",
    "load_export",
    "output_files",
    "pooling_matrix",
    "prepare",
    "prepare_with_report",
    "quantize_openvino",
    "replace_adaptive_pools",
]
