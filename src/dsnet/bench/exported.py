"""Bench backends that run the deploy form of the model: BN folded in PyTorch, and exported files in
ONNX Runtime and OpenVINO (with the same thread count as torch, so the comparison is fair)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..deploy import export, prepare
from ..deploy.backends import require
from .backends import BackendUnavailable, RunFn, cast_model, register_backend, with_dtype

__all__: list[str] = []

_EXPORTS = Path(tempfile.gettempdir()) / "dsnet-bench-exports"


def _fp32_cpu(name: str, example: Tensor, precision: str) -> None:
    if precision != "fp32" or example.device.type != "cpu":
        raise BackendUnavailable(f"{name} is benchmarked in fp32 on the CPU here")


@register_backend("fold", "BN folded into the convolutions, aux heads dropped (dsnet.deploy.prepare)")
def _fold(model: nn.Module, example: Tensor, precision: str) -> RunFn:
    m = cast_model(prepare(model, exportable_pooling=False), precision, example.device)
    return with_dtype(m, precision)


@register_backend("fold_channels_last", "BN folded and channels_last")
def _fold_channels_last(model: nn.Module, example: Tensor, precision: str) -> RunFn:
    m = cast_model(prepare(model, exportable_pooling=False, channels_last=True), precision, example.device)
    run = with_dtype(m, precision)
    return lambda x: run(x.contiguous(memory_format=torch.channels_last))


def _export(model: nn.Module, example: Tensor, format: str, suffix: str) -> Path:
    out = Path(tempfile.mkdtemp(prefix=f"{format}-", dir=_mkdir(_EXPORTS))) / f"model{suffix}"
    try:
        export(model.cpu(), format, tuple(example.shape[-2:]), out=out, batch=example.shape[0], check=False)
    except ImportError as e:  # MissingBackendError: the optional package is not installed
        raise BackendUnavailable(str(e)) from e
    finally:
        model.to(example.device)
    return out


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _numpy_run(fn) -> RunFn:  # type: ignore[no-untyped-def]
    return lambda x: torch.from_numpy(np.asarray(fn(x.detach().cpu().numpy())))


@register_backend("onnxruntime", "the ONNX export in ONNX Runtime (CPU, torch's thread count)")
def _onnxruntime(model: nn.Module, example: Tensor, precision: str) -> RunFn:
    _fp32_cpu("onnxruntime", example, precision)
    try:
        ort = require("onnxruntime", "the onnxruntime bench backend")
    except ImportError as e:
        raise BackendUnavailable(str(e)) from e
    path = _export(model, example, "onnx", ".onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return _numpy_run(lambda x: session.run(None, {name: x})[0])


@register_backend("openvino", "the OpenVINO IR (fp32, torch's thread count)")
def _openvino(model: nn.Module, example: Tensor, precision: str) -> RunFn:
    _fp32_cpu("openvino", example, precision)
    try:
        ov = require("openvino", "the openvino bench backend")
    except ImportError as e:
        raise BackendUnavailable(str(e)) from e
    path = _export(model, example, "openvino", ".xml")
    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": torch.get_num_threads()}
    compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
    return _numpy_run(lambda x: compiled(x)[0])
