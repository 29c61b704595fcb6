"""The module a :class:`~dsnet.predict.Predictor` runs, per backend.

* ``torch``: the model in its deploy form by default (:func:`dsnet.deploy.prepare`: BN folded into
  the convolutions, and channels_last on the CPU), which is the bench's fastest PyTorch backend
  (``fold_channels_last``); folding changes results only by float32 rounding.
* ``onnxruntime`` / ``openvino`` with checkpoint weights: the model is exported once, with dynamic
  batch and H/W (exact at every multiple of 8), to a temporary folder that lives as long as the
  predictor, and run by the runtime.
* ``onnxruntime`` / ``openvino`` with an exported file (``.onnx``, OpenVINO ``.xml``, made by
  ``dsnet export``): the file is run as it is; its class count is read from it. A static export
  runs only its own size: images of that size (up to the usual padding to a multiple of 8) run whole,
  larger ones in windows of exactly that size, smaller ones are refused (see ``Predictor.options_for``):
  padding them further would change the result, since DSNet pools over the whole input.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..deploy import FORMATS, export, load_export, prepare, quantize_openvino
from ..deploy.export import METADATA_PREFIX, MODEL_KEY
from ..deploy.precision import DEFAULT_BF16_MODE, to_bf16
from ..errors import ConfigError, WeightsNotFoundError
from .backends import RUNTIME_BACKENDS, LogitsFnModule

__all__ = [
    "EXPORT_SUFFIXES",
    "Runtime",
    "backend_for_export",
    "export_format",
    "load_exported",
    "runtime_for",
    "torch_module",
]

logger = logging.getLogger("dsnet")

#: Exported files a predictor can run, by suffix, and their format.
EXPORT_SUFFIXES: dict[str, str] = {".onnx": "onnx", ".xml": "openvino"}
#: Size of the example input a checkpoint is exported at for a runtime (the export is dynamic).
_EXAMPLE_SIZE = (64, 128)


@dataclass
class Runtime:
    """A runtime's module (a :class:`LogitsFnModule`), the class count its file declares, and the
    temporary folder holding an on-the-fly export (kept alive with the predictor)."""

    module: LogitsFnModule
    num_classes: int | None
    workdir: tempfile.TemporaryDirectory[str] | None = None
    #: the registered model name the file was exported from, when it says (``dsnet export`` stores it)
    model: str | None = None
    #: the weights' metadata the export carries (``label_space``, ``dataset``), without the ``dsnet.`` prefix
    metadata: dict[str, str] = field(default_factory=dict)
    #: the file is INT8-quantized (its float operations run in the precision it was loaded with)
    quantized: bool = False

    @property
    def static_size(self) -> tuple[int, int] | None:
        return self.module.size


def export_format(weights: str | os.PathLike | None) -> str | None:
    """The export format of ``weights`` when it is an exported file (by suffix), else None."""
    if weights is None:
        return None
    return EXPORT_SUFFIXES.get(Path(weights).suffix.lower())


def backend_for_export(path: str | os.PathLike, format: str, backend: str | None) -> str:
    """The runtime that runs an exported file: ``backend`` if it can, the format's own when None."""
    if backend is None:
        return "onnxruntime" if format == "onnx" else "openvino"
    if backend == "torch":
        raise ConfigError(
            f"{path}: an exported {format} file runs with --backend onnxruntime or openvino; "
            "for the torch backend pass the checkpoint (.safetensors/.pth)"
        )
    if format == "openvino" and backend != "openvino":
        raise ConfigError(f"{path}: an OpenVINO IR file runs with backend 'openvino', not {backend!r}")
    return backend  # ONNX files run in ONNX Runtime and in OpenVINO alike


def load_exported(
    path: str | os.PathLike, backend: str, input_multiple: int, threads: int | None, precision: str = "fp32"
) -> Runtime:
    """An exported file loaded by ``backend`` (``threads`` intra-op threads; None: the runtime's choice),
    its float operations in ``precision`` (fp32, or bf16 in OpenVINO)."""
    if not Path(path).is_file():
        raise WeightsNotFoundError(f"{path}: exported model file not found")
    loaded = load_export(path, RUNTIME_BACKENDS[backend], threads, precision)
    size = loaded.static_size
    if size is not None and (size[0] % input_multiple or size[1] % input_multiple):
        raise ConfigError(f"{path}: input size {size[0]}x{size[1]} is not a multiple of {input_multiple}")
    module = LogitsFnModule(
        loaded.run,
        input_multiple,
        size=size,
        batch=loaded.static_batch,
        min_size=0 if size is not None else 2 * input_multiple,  # a dynamic DSNet export takes 16 and up
    )
    carried = {k[len(METADATA_PREFIX) :]: v for k, v in loaded.metadata.items() if k.startswith(METADATA_PREFIX)}
    return Runtime(
        module,
        loaded.num_classes,
        model=loaded.metadata.get(MODEL_KEY) or None,
        metadata=carried,
        quantized=loaded.quantized,
    )


def runtime_for(
    model: nn.Module,
    backend: str,
    threads: int | None,
    precision: str = "fp32",
    calibration: Iterable[np.ndarray] | None = None,
) -> Runtime:
    """``model`` exported (dynamic batch and H/W, no check run) to a temporary folder and loaded by ``backend``
    in ``precision``: fp32 or bf16 (OpenVINO's precision hint), or int8 (OpenVINO: quantized by NNCF on
    ``calibration``, normalised float32 ``(1, 3, H, W)`` arrays, e.g. a ``CalibrationSet``)."""
    format = RUNTIME_BACKENDS[backend]
    workdir = tempfile.TemporaryDirectory(prefix="dsnet-predict-", ignore_cleanup_errors=True)
    out = Path(workdir.name) / f"model{FORMATS[format]}"
    model = model.to("cpu", torch.float32).eval()
    if precision == "int8":
        if calibration is None or format != "openvino":
            raise ConfigError("precision int8 runs in OpenVINO and needs calibration images (--calib DATA)")
        samples = list(calibration)
        if not samples:
            raise ConfigError("precision int8: the calibration set is empty")
        logger.info("quantizing the model to INT8 for openvino on %d calibration images (once)", len(samples))
        size = (int(samples[0].shape[-2]), int(samples[0].shape[-1]))
        quantize_openvino(model, samples, size, out=out, dynamic=True, check_images=0)
    else:
        logger.info("exporting the model to %s for %s (once per predictor)", format, backend)
        export(model, format, _EXAMPLE_SIZE, out=out, dynamic=True, check=False)
    float_precision = "fp32" if precision == "int8" else precision
    runtime = load_exported(out, backend, int(getattr(model, "input_multiple", 8)), threads, float_precision)
    runtime.workdir = workdir
    return runtime


def torch_module(
    model: nn.Module,
    device: torch.device,
    deploy_form: bool,
    precision: str = "fp32",
    bf16_mode: str = DEFAULT_BF16_MODE,
) -> nn.Module:
    """What the torch backend runs: the deploy form of a copy of ``model`` (channels_last on the CPU),
    or, without ``deploy_form``, ``model`` itself in eval mode; in bf16 (``bf16_mode``) when asked."""
    if deploy_form:
        model = prepare(model, exportable_pooling=False, channels_last=device.type == "cpu")
    model = model.eval().to(device)
    return to_bf16(model, bf16_mode) if precision == "bf16" else model
