"""Bench backends that run the deploy form of the model: BN folded in PyTorch, and exported files in
ONNX Runtime (fp32) and OpenVINO (fp32, bf16 by its precision hint, INT8), with the same thread count as
torch, so the comparison is fair."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..deploy import export, load_runner, prepare, quantize_openvino
from ..errors import ExportError
from .backends import BackendUnavailable, RunFn, in_precision, register_backend

__all__: list[str] = []

_EXPORTS = Path(tempfile.gettempdir()) / "dsnet-bench-exports"
_INT8_CALIBRATION = 4  # random inputs: enough for NNCF to place and range its quantizers


def _on_cpu(name: str, example: Tensor, precision: str, precisions: tuple[str, ...] = ("fp32",)) -> None:
    if precision not in precisions or example.device.type != "cpu":
        raise BackendUnavailable(f"{name} is benchmarked in {' or '.join(precisions)} on the CPU here")


@register_backend("fold", "BN folded into the convolutions, aux heads dropped (dsnet.deploy.prepare)")
def _fold(model: nn.Module, example: Tensor, precision: str) -> RunFn:
    return in_precision(prepare(model, exportable_pooling=False), precision, example.device)


@register_backend("fold_channels_last", "BN folded and channels_last")
def _fold_channels_last(model: nn.Module, example: Tensor, precision: str) -> RunFn:
    run = in_precision(prepare(model, exportable_pooling=False, channels_last=True), precision, example.device)
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


def _exported(
    model: nn.Module,
    example: Tensor,
    precision: str,
    format: str,
    suffix: str,
    precisions: tuple[str, ...],
    name: str,
) -> RunFn:
    _on_cpu(name, example, precision, precisions)
    try:
        path = _export(model, example, format, suffix)
        run = load_runner(path, format, threads=torch.get_num_threads(), precision=precision)
    except ImportError as e:  # MissingBackendError: the optional runtime is not installed
        raise BackendUnavailable(str(e)) from e
    except ExportError as e:  # e.g. bf16 asked of a runtime without it
        raise BackendUnavailable(str(e)) from e
    return lambda x: torch.from_numpy(np.asarray(run(x.detach().cpu().numpy())))


@register_backend(
    "onnxruntime", "the ONNX export in ONNX Runtime (CPU, fp32, torch's thread count)", family="onnxruntime"
)
def _onnxruntime(model: nn.Module, example: Tensor, precision: str) -> RunFn:
    return _exported(model, example, precision, "onnx", ".onnx", ("fp32",), "onnxruntime")


@register_backend(
    "openvino", "the OpenVINO IR (fp32 or bf16 by its precision hint, torch's thread count)", family="openvino"
)
def _openvino(model: nn.Module, example: Tensor, precision: str) -> RunFn:
    return _exported(model, example, precision, "openvino", ".xml", ("fp32", "bf16"), "openvino")


@register_backend(
    "openvino-int8",
    "OpenVINO INT8 (NNCF post-training quantization; speed only: random calibration)",
    "int8",
    family="openvino",
)
def _openvino_int8(model: nn.Module, example: Tensor, precision: str) -> RunFn:
    """INT8 speed does not depend on the calibration data, so a few random inputs calibrate it here;
    for accuracy, quantize with real images (``dsnet export --int8 --calib``) and bench that model."""
    _on_cpu("openvino-int8", example, precision)
    generator = torch.Generator().manual_seed(0)
    calibration = [torch.randn(example.shape, generator=generator).numpy() for _ in range(_INT8_CALIBRATION)]
    out = Path(tempfile.mkdtemp(prefix="openvino-int8-", dir=_mkdir(_EXPORTS))) / "model.xml"
    try:
        quantize_openvino(model.cpu(), calibration, tuple(example.shape[-2:]), out=out, check_images=0)
        run = load_runner(out, "openvino", threads=torch.get_num_threads())
    except ImportError as e:  # MissingBackendError: openvino or nncf is not installed
        raise BackendUnavailable(str(e)) from e
    finally:
        model.to(example.device)
    return lambda x: torch.from_numpy(np.asarray(run(x.detach().cpu().numpy())))
