"""The one way to get a :class:`~dsnet.deploy.runner.Runner`: ``(model, exported file or function, backend,
precision, device, threads, calibration) -> runner``. ``dsnet predict``, ``dsnet serve`` and ``dsnet bench`` all
build what they run here, so a bench row and a prediction of the same backend and precision run the same code.

Backends by name: ``torch`` (a model; by default its deploy form: BN folded, channels_last on the CPU),
``onnxruntime`` and ``openvino`` (an exported ``.onnx`` / OpenVINO ``.xml`` file run as it is, or a model
exported on the fly to a temporary folder that lives as long as the runner: with dynamic batch and H/W by
default, or static at ``export_shape``). A :class:`~dsnet.deploy.runner.LogitsFn` runs any other runtime.
Precisions are resolved ones (``auto`` is :func:`dsnet.hardware.resolve_precision`'s job): ``fp32``; ``bf16``
(torch: autocast; OpenVINO: its precision hint); ``fp16`` (torch on CUDA, a cast); ``int8`` (OpenVINO: an
INT8 export, or the model quantized by NNCF on ``calibration``).
"""

from __future__ import annotations

import copy
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, WeightsNotFoundError
from ..hardware import BACKEND_PRECISIONS
from .export import FORMATS, export
from .precision import DEFAULT_BF16_MODE, Bf16Module
from .prepare import prepare
from .quantize import quantize_openvino
from .runner import ArrayRunner, LogitsFn, ModuleRunner, Runner, RunnerInfo, RunnerRecipe
from .runtime import METADATA_PREFIX, MODEL_KEY, load_export

__all__ = [
    "BACKENDS",
    "EXPORT_SUFFIXES",
    "RUNTIME_BACKENDS",
    "backend_for_export",
    "build_runner",
    "check_backend",
    "export_format",
]

logger = logging.getLogger("dsnet")

#: Runtimes that run an exported model, and the export format each one runs.
RUNTIME_BACKENDS: dict[str, str] = {"onnxruntime": "onnx", "openvino": "openvino"}
#: Backends that can be named by string; others are passed in as a :class:`LogitsFn`.
BACKENDS: tuple[str, ...] = ("torch", *RUNTIME_BACKENDS)
#: Exported files a runner can run, by suffix, and their format.
EXPORT_SUFFIXES: dict[str, str] = {".onnx": "onnx", ".xml": "openvino"}
#: Size of the example input a model is exported at when the export is dynamic.
_DYNAMIC_EXAMPLE_SIZE = (64, 128)

Source = nn.Module | str | os.PathLike | LogitsFn


def export_format(path: str | os.PathLike | None) -> str | None:
    """The export format of ``path`` when it is an exported file (by suffix), else None."""
    return EXPORT_SUFFIXES.get(Path(path).suffix.lower()) if path is not None else None


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


def check_backend(backend: str | LogitsFn | None) -> str | LogitsFn | None:
    """``backend`` if it is None (decided by the weights), a known name or a callable, else a ConfigError."""
    if backend is None:
        return None
    if isinstance(backend, str):
        if backend not in BACKENDS:
            raise ConfigError(
                f"backend {backend!r} is not available (available: {', '.join(BACKENDS)}; "
                "other runtimes are passed in as a LogitsFn callable)"
            )
        return backend
    if not callable(backend):
        raise ConfigError(f"backend must be a name or a callable, got {type(backend).__name__}")
    return backend


def _check_precision(backend: str, precision: str, device: torch.device) -> None:
    if backend in RUNTIME_BACKENDS and device.type != "cpu":
        raise ConfigError(f"backend {backend!r} runs on the CPU here, not on {device}")
    supported = BACKEND_PRECISIONS[backend] + (("fp16",) if backend == "torch" else ())  # fp16: a CUDA cast
    if precision not in supported:
        where = "OpenVINO (--backend openvino)" if precision == "int8" else "another backend"
        raise ConfigError(f"backend {backend!r} does not compute in {precision}; it runs in {where}")
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError("fp16 convolutions are not supported on the CPU; use fp32 or bf16")


def _torch_module(
    model: nn.Module, precision: str, device: torch.device, fold: bool, channels_last: bool, bf16_mode: str
) -> nn.Module:
    """The module the torch backend runs; ``model`` itself is left as it is, but for being moved to ``device``
    and put in eval mode when it runs unchanged."""
    if fold:
        module = prepare(model, exportable_pooling=False, channels_last=channels_last)
    elif channels_last or precision == "fp16" or (precision == "bf16" and bf16_mode == "cast"):
        module = copy.deepcopy(model)  # these change the module in place
        if channels_last:
            module = module.to(memory_format=torch.channels_last)
    else:
        module = model
    module = module.eval().to(device)
    if precision == "bf16":
        return Bf16Module(module, bf16_mode)
    return module.half() if precision == "fp16" else module


def _file_runner(path: Path, backend: str, precision: str, threads: int | None, input_multiple: int) -> ArrayRunner:
    """An exported file run by ``backend`` (its float operations in ``precision``; an INT8 file runs INT8)."""
    if not path.is_file():
        raise WeightsNotFoundError(f"{path}: exported model file not found")
    loaded = load_export(path, RUNTIME_BACKENDS[backend], threads, "fp32" if precision == "int8" else precision)
    size = loaded.static_size
    if size is not None and (size[0] % input_multiple or size[1] % input_multiple):
        raise ConfigError(f"{path}: input size {size[0]}x{size[1]} is not a multiple of {input_multiple}")
    carried = {k[len(METADATA_PREFIX) :]: v for k, v in loaded.metadata.items() if k.startswith(METADATA_PREFIX)}
    info = RunnerInfo(
        backend,
        "int8" if loaded.quantized else loaded.precision,
        torch.device("cpu"),
        input_multiple,
        num_classes=loaded.num_classes,
        static_size=size,
        static_batch=loaded.static_batch,
        min_size=0 if size is not None else 2 * input_multiple,  # a dynamic DSNet export takes 16 and up
        model_name=loaded.metadata.get(MODEL_KEY) or None,
        metadata=carried,
        quantized=loaded.quantized,
    )
    return ArrayRunner(loaded.run, info)


def _export_to(
    model: nn.Module,
    out: Path,
    precision: str,
    calibration: Iterable[np.ndarray] | None,
    export_shape: tuple[int, ...] | None,
) -> None:
    """``model`` exported (no check run) to ``out``: static at ``export_shape`` or dynamic; INT8 by NNCF."""
    format = "openvino" if out.suffix == FORMATS["openvino"] else "onnx"
    weight = next(model.parameters())
    if model.training or weight.device.type != "cpu" or weight.dtype != torch.float32:
        model = copy.deepcopy(model).to("cpu", torch.float32).eval()  # the caller's model stays as it is
    dynamic = export_shape is None
    if precision == "int8":
        samples = list(calibration) if calibration is not None else []
        if not samples:
            raise ConfigError("precision int8 runs in OpenVINO and needs calibration images (--calib DATA)")
        size = (int(samples[0].shape[-2]), int(samples[0].shape[-1]))
        logger.info("quantizing the model to INT8 for openvino on %d calibration images (once)", len(samples))
        quantize_openvino(model, samples, size, out=out, dynamic=dynamic, check_images=0)
        return
    logger.info("exporting the model to %s (once per runner)", format)
    size = _DYNAMIC_EXAMPLE_SIZE if export_shape is None else (int(export_shape[-2]), int(export_shape[-1]))
    batch = 1 if export_shape is None else int(export_shape[0])
    export(model, format, size, out=out, dynamic=dynamic, batch=batch, check=False)


def _is_function(obj: object) -> bool:
    return callable(obj) and not isinstance(obj, (nn.Module, str, os.PathLike))


def _resolve(source: Source, backend: str | LogitsFn | None) -> tuple[str, str]:
    """(the source's kind, the backend's name) for ``build_runner``'s arguments."""
    if _is_function(backend) or _is_function(source):
        return "function", "callable"
    if isinstance(source, nn.Module):
        return "module", check_backend(backend) or "torch"  # type: ignore[return-value]
    if isinstance(source, (str, os.PathLike)):
        format = export_format(source)
        if format is None:
            raise ConfigError(f"{source}: not an exported model file (expected {', '.join(EXPORT_SUFFIXES)})")
        return "export", backend_for_export(source, format, check_backend(backend))  # type: ignore[arg-type]
    raise ConfigError(f"cannot run a {type(source).__name__}: expected a model, an exported file or a LogitsFn")


def build_runner(
    source: Source,
    backend: str | LogitsFn | None = None,
    precision: str = "fp32",
    device: str | torch.device = "cpu",
    threads: int | None = None,
    calibration: Iterable[np.ndarray] | None = None,
    *,
    input_multiple: int | None = None,
    fold: bool = True,
    channels_last: bool | None = None,
    compile: bool = False,
    export_shape: tuple[int, ...] | None = None,
    bf16_mode: str = DEFAULT_BF16_MODE,
) -> Runner:
    """What runs ``source`` (a model, an exported file, or a :class:`LogitsFn`; ``backend`` may be the LogitsFn
    too) on ``backend`` (default: torch for a model, the file's own runtime for a file) in ``precision``.

    ``threads``: intra-op threads of an ONNX Runtime / OpenVINO session (None: the runtime's choice; PyTorch's
    count is process-wide). ``calibration``: normalised float32 ``(1, 3, H, W)`` images for ``int8`` from a model.
    ``input_multiple``: what H and W must be multiples of (default: the model's, else 8). Torch only: ``fold``
    (the deploy form), ``channels_last`` (None: when folding on the CPU), ``compile`` (torch.compile, compiled
    at the first call), ``bf16_mode`` (see :mod:`dsnet.deploy.precision`). A model for a runtime is exported
    at ``export_shape`` (N, 3, H, W) statically, or with dynamic batch and H/W when None.
    """
    device = torch.device(device)
    kind, name = _resolve(source, backend)
    multiple = int(input_multiple or getattr(source, "input_multiple", 8))
    recipe = RunnerRecipe(name, precision, str(device), kind)
    if kind == "function":
        fn = backend if _is_function(backend) else source
        runner: Runner = ArrayRunner(fn, RunnerInfo(name, precision, device, multiple))  # type: ignore[arg-type]
    elif kind == "export":
        _check_precision(name, precision, device)
        runner = _file_runner(Path(source), name, precision, threads, multiple)  # type: ignore[arg-type]
    elif name == "torch":
        _check_precision(name, precision, device)
        assert isinstance(source, nn.Module)
        last = (fold and device.type == "cpu") if channels_last is None else channels_last
        module = _torch_module(source, precision, device, fold, last, bf16_mode)
        if compile:
            module = torch.compile(module, dynamic=False)
        info = RunnerInfo(name, precision, device, multiple, num_classes=getattr(source, "num_classes", None))
        runner = ModuleRunner(module, info, channels_last=last)
        recipe = RunnerRecipe(name, precision, str(device), kind, fold, last, compile)
    else:
        _check_precision(name, precision, device)
        assert isinstance(source, nn.Module)
        workdir = tempfile.TemporaryDirectory(prefix="dsnet-runner-", ignore_cleanup_errors=True)
        out = Path(workdir.name) / f"model{FORMATS[RUNTIME_BACKENDS[name]]}"
        _export_to(source, out, precision, calibration, export_shape)
        runner = _file_runner(out, name, precision, threads, multiple)
        runner.workdir = workdir
        recipe = RunnerRecipe(name, precision, str(device), kind, export_shape=export_shape)
    runner.recipe = recipe
    return runner.eval()
