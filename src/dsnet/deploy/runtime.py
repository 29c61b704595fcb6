"""Run an exported file with its own runtime (ONNX Runtime, OpenVINO, torch.export): for the parity checks,
the bench and the Predictor. :func:`load_export` also says what input shape the file accepts (static or
dynamic axes) and how many classes it outputs, read from the file itself."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..constants import INPUT_LONG_SIDE_KEY
from ..errors import ExportError
from ..optional_imports import import_optional
from .runner import LogitsFn
from .signal_stack import keep_signal_stack

__all__ = [
    "EXPORTED_METADATA_KEYS",
    "METADATA_PREFIX",
    "MODEL_KEY",
    "LoadedExport",
    "load_export",
]

#: Key of the registered model name in an export's metadata (ONNX metadata_props, OpenVINO rt_info).
MODEL_KEY = "dsnet.model"
#: Prefix of every key dsnet stores in an export: the weights' metadata keys (``label_space``, ``dataset``)
#: travel under it, so a prediction with the exported file names and colours the classes as the weights do.
METADATA_PREFIX = "dsnet."
#: The weights' metadata keys an export carries (beside the model name).
EXPORTED_METADATA_KEYS = ("label_space", "dataset", INPUT_LONG_SIDE_KEY)

#: An axis length, or None where the export leaves it free (dynamic).
Dim = int | None


@dataclass(frozen=True)
class LoadedExport:
    """A loaded export: ``run`` and the shapes the file declares (None on a dynamic axis)."""

    run: LogitsFn
    input_shape: tuple[Dim, ...]
    output_shape: tuple[Dim, ...]
    #: string metadata of the file (``dsnet.model``: the registered model name, when the export stored it)
    metadata: dict[str, str] = field(default_factory=dict)
    #: the file holds an INT8-quantized model (OpenVINO FakeQuantize operations, as NNCF writes them)
    quantized: bool = False
    #: the precision the runtime computes the float operations in (``fp32`` or ``bf16``)
    precision: str = "fp32"

    @property
    def num_classes(self) -> int | None:
        """The output's channel count (the model's classes), when the file fixes it."""
        return self.output_shape[1] if len(self.output_shape) == 4 else None

    @property
    def static_size(self) -> tuple[int, int] | None:
        """(H, W) of a static export; None when either axis is dynamic."""
        h, w = self.input_shape[2:4] if len(self.input_shape) == 4 else (None, None)
        return (h, w) if h is not None and w is not None else None

    @property
    def static_batch(self) -> int | None:
        return self.input_shape[0] if self.input_shape else None


def _onnx_dims(shape: Any) -> tuple[Dim, ...]:
    return tuple(d if isinstance(d, int) else None for d in shape)  # dynamic axes are names or None


def _openvino_dims(shape: Any) -> tuple[Dim, ...]:
    return tuple(d.get_length() if d.is_static else None for d in shape)


#: OpenVINO's INFERENCE_PRECISION_HINT for each precision of the float operations
_OPENVINO_HINTS = {"fp32": "f32", "bf16": "bf16"}


def _onnx_export(path: Path, threads: int | None, precision: str) -> LoadedExport:
    if precision != "fp32":
        raise ExportError(f"{path}: ONNX Runtime runs this export in fp32 only, not {precision}")
    ort = import_optional("onnxruntime", "running an ONNX export")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return LoadedExport(
        lambda x: session.run(None, {name: x})[0],
        _onnx_dims(session.get_inputs()[0].shape),
        _onnx_dims(session.get_outputs()[0].shape),
        dict(session.get_modelmeta().custom_metadata_map),
    )


def _openvino_export(path: Path, threads: int | None, precision: str) -> LoadedExport:
    ov = import_optional("openvino", "running an OpenVINO export")
    if precision not in _OPENVINO_HINTS:
        raise ExportError(
            f"{path}: OpenVINO float precision {precision!r}: expected one of {', '.join(_OPENVINO_HINTS)}"
        )
    core = ov.Core()
    # always explicit: on CPUs with bf16 support OpenVINO would otherwise pick bf16 by itself
    config: dict[str, object] = {"INFERENCE_PRECISION_HINT": _OPENVINO_HINTS[precision]}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    model = core.read_model(str(path))
    with keep_signal_stack():  # OpenVINO swaps the thread's signal stack per compiled model
        compiled = core.compile_model(model, "CPU", config)
    return LoadedExport(
        lambda x: np.asarray(compiled(x)[0]),
        _openvino_dims(model.inputs[0].get_partial_shape()),
        _openvino_dims(model.outputs[0].get_partial_shape()),
        _openvino_metadata(model),
        quantized=any(op.get_type_name() == "FakeQuantize" for op in model.get_ops()),
        precision=precision,
    )


def _openvino_metadata(model: Any) -> dict[str, str]:
    """The ``dsnet.*`` entries of an OpenVINO model's rt_info (written by ``dsnet export``)."""
    found = {}
    for key in (MODEL_KEY, *(METADATA_PREFIX + k for k in EXPORTED_METADATA_KEYS)):
        path = key.split(".")
        if model.has_rt_info(path):
            found[key] = model.get_rt_info(path).astype(str)
    return found


def _torch_export(path: Path, threads: int | None, precision: str) -> LoadedExport:
    if precision != "fp32":
        raise ExportError(f"{path}: a torch.export program runs in fp32 here, not {precision}")
    program = torch.export.load(str(path))
    module = program.module()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(x)).numpy()

    def dims(node: Any) -> tuple[Dim, ...]:
        value = node.meta.get("val")
        return tuple(d if isinstance(d, int) else None for d in value.shape) if value is not None else ()

    graph = program.graph
    inputs = [n for n in graph.nodes if n.op == "placeholder" and n.name in program.graph_signature.user_inputs]
    output = next(n for n in graph.nodes if n.op == "output").args[0][0]
    return LoadedExport(run, dims(inputs[0]) if inputs else (), dims(output))


_LOADERS: dict[str, Callable[[Path, int | None, str], LoadedExport]] = {
    "onnx": _onnx_export,
    "openvino": _openvino_export,
    "torch": _torch_export,
}


def load_export(path: str | Path, format: str, threads: int | None = None, precision: str = "fp32") -> LoadedExport:
    """The exported model at ``path`` (written in ``format``) loaded on the CPU with ``threads`` intra-op
    threads (default: the runtime's own choice), with its declared input and output shapes. ``precision``
    is what the float operations compute in: ``bf16`` only in OpenVINO (on CPUs with native bf16)."""
    if format not in _LOADERS:
        raise ExportError(f"no runtime for format {format!r}; known: {', '.join(_LOADERS)}")
    return _LOADERS[format](Path(path), threads, precision)
