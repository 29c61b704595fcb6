"""Run an exported file with its own runtime (ONNX Runtime, OpenVINO, torch.export), for parity checks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..errors import ExportError
from .backends import require

__all__ = ["Runner", "load_runner"]

#: float32 NCHW batch in, logits out.
Runner = Callable[[np.ndarray], np.ndarray]


def _onnx_runner(path: Path, threads: int | None) -> Runner:
    ort = require("onnxruntime", "running an ONNX export")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def _openvino_runner(path: Path, threads: int | None) -> Runner:
    ov = require("openvino", "running an OpenVINO export")
    core = ov.Core()
    # f32 explicitly: on CPUs with bf16 support OpenVINO would otherwise run in bf16
    config: dict[str, object] = {"INFERENCE_PRECISION_HINT": "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
    return lambda x: np.asarray(compiled(x)[0])


def _torch_runner(path: Path, threads: int | None) -> Runner:
    module = torch.export.load(str(path)).module()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(x)).numpy()

    return run


_RUNNERS: dict[str, Callable[[Path, int | None], Runner]] = {
    "onnx": _onnx_runner,
    "openvino": _openvino_runner,
    "torch": _torch_runner,
}


def load_runner(path: str | Path, format: str, threads: int | None = None) -> Runner:
    """A function that runs the exported model at ``path`` (written in ``format``) on the CPU, with
    ``threads`` intra-op threads (default: the runtime's own choice)."""
    if format not in _RUNNERS:
        raise ExportError(f"no runtime for format {format!r}; known: {', '.join(_RUNNERS)}")
    return _RUNNERS[format](Path(path), threads)
