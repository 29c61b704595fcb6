"""``export``: a DSNet to ONNX, OpenVINO IR or a torch.export program, checked against eager PyTorch.

The exported graph is always the :func:`~dsnet.deploy.prepare` form (BN folded, no auxiliary
heads, matrix adaptive pooling), so it is exact at every input size it accepts.

ONNX uses the dynamo exporter (``torch.onnx.export(dynamo=True)``): with the matrix pooling it
gives a graph that is exact at every multiple of 8 with dynamic H/W (the TorchScript exporter
works too, but is deprecated since PyTorch 2.9). Dynamic exports declare H and W as ``8*k``
(``k >= 2``) and a free batch size. OpenVINO converts the PyTorch module directly (no ONNX
packages needed) and is saved in float32.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, ExportError, OutputError
from ..fileio import atomic_write, describe_os_error, refuse_existing
from ..optional_imports import import_optional
from .prepare import prepare, prepare_with_report
from .runtime import EXPORTED_METADATA_KEYS, METADATA_PREFIX, MODEL_KEY, load_export

__all__ = ["FORMATS", "MODEL_KEY", "ExportResult", "export", "output_files", "save_openvino"]

#: Formats :func:`export` writes, with the suffix its output must have.
FORMATS: dict[str, str] = {"onnx": ".onnx", "openvino": ".xml", "torch": ".pt2"}
_TENSORRT = (
    "tensorrt export needs a GPU machine with the tensorrt package; export to onnx here and build the engine "
    "there (e.g. trtexec --onnx=model.onnx --saveEngine=model.plan)"
)


@dataclass
class ExportResult:
    """What :func:`export` wrote, and how far the exported model is from eager PyTorch."""

    format: str
    path: Path
    files: list[Path]
    size: tuple[int, int]
    dynamic: bool
    folded_bn: int
    #: ``"HxW" -> max|exported - eager float64| / max|eager|`` at each checked size (empty without ``check``)
    parity: dict[str, float] = field(default_factory=dict)


def output_files(out: str | os.PathLike, format: str, overwrite: bool = True) -> list[Path]:
    """The files an export to ``out`` writes (OpenVINO: the .xml and its .bin), checked before any work.

    Raises :class:`ExportError` for an unknown format, :class:`ConfigError` for a wrong suffix and,
    unless ``overwrite``, :class:`OutputError` when one of the files exists.
    """
    out = Path(out)
    if format not in FORMATS:
        raise ExportError(_TENSORRT if format == "tensorrt" else f"unknown export format {format!r}; use {_names()}")
    if out.suffix != FORMATS[format]:
        raise ConfigError(f"{out}: a {format} export is written as a {FORMATS[format]} file; name the output so")
    files = [out, out.with_suffix(".bin")] if format == "openvino" else [out]
    return refuse_existing(files, overwrite)


def _names() -> str:
    return ", ".join(FORMATS)


def _check_size(size: tuple[int, int], multiple: int, dynamic: bool) -> tuple[int, int]:
    h, w = (int(v) for v in size)
    smallest = 2 * multiple if dynamic else multiple
    if h % multiple or w % multiple or h < smallest or w < smallest:
        raise ConfigError(
            f"export size {h}x{w}: height and width must be multiples of {multiple}, at least {smallest}"
            + (" for a dynamic export" if dynamic else "")
        )
    return h, w


def _dynamic_shapes(multiple: int) -> tuple[dict[int, Any]]:
    # H = multiple * k declares the divisibility DSNet checks, so the checks need no runtime guard
    h, w = torch.export.Dim("h_blocks", min=2), torch.export.Dim("w_blocks", min=2)
    return ({0: torch.export.Dim("batch", min=1), 2: multiple * h, 3: multiple * w},)


def export_metadata(name: str | None, weights_metadata: Mapping[str, str] | None) -> dict[str, str]:
    """What an export stores: the model's name and the label space of the weights it was made from."""
    meta = {MODEL_KEY: name} if name else {}
    for key in EXPORTED_METADATA_KEYS:
        value = (weights_metadata or {}).get(key)
        if value:
            meta[METADATA_PREFIX + key] = str(value)
    return meta


class _NoTorchvisionNotice(logging.Filter):
    """Drops the exporter's "torchvision is not installed. Skipping torchvision::nms" lines (DSNet uses
    no torchvision op)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("torchvision is not installed")


@contextmanager
def _quiet_onnx_registry() -> Iterator[None]:
    """For one export only: the notices come from the exporter's op registry, logged when it is built."""
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    notice = _NoTorchvisionNotice()
    logger.addFilter(notice)
    try:
        yield
    finally:
        logger.removeFilter(notice)


def _write_onnx(model: nn.Module, example: torch.Tensor, dynamic: Any, out: Path, metadata: Mapping[str, str]) -> None:
    import_optional("onnx", "ONNX export")
    import_optional("onnxscript", "ONNX export")
    with warnings.catch_warnings(), _quiet_onnx_registry():  # notices the user can do nothing about
        warnings.simplefilter("ignore", FutureWarning)  # the exporter's own deprecation notices
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            dynamic_shapes=dynamic,
            input_names=["input"],
            output_names=["logits"],
            optimize=True,
            verbose=False,
        )
    if program is None:
        raise ExportError("torch.onnx.export returned no program")
    program.model.metadata_props.update(metadata)
    atomic_write(out, lambda tmp: program.save(tmp))


def _write_torch(model: nn.Module, example: torch.Tensor, dynamic: Any, out: Path, metadata: Mapping[str, str]) -> None:
    program = torch.export.export(model, (example,), dynamic_shapes=dynamic)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: torch.export.save warns about a path not ending in .pt2
            torch.export.save(program, f)

    atomic_write(out, write)


def _write_openvino(
    model: nn.Module, example: torch.Tensor, dynamic: Any, out: Path, metadata: Mapping[str, str]
) -> None:
    ov = import_optional("openvino", "OpenVINO export")
    shape = [-1, example.shape[1], -1, -1] if dynamic else list(example.shape)
    with warnings.catch_warnings():  # OpenVINO traces with TorchScript: DSNet's input checks warn, harmlessly
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        converted = ov.convert_model(model, example_input=example, input=[ov.PartialShape(shape)])
    save_openvino(converted, out, metadata)


def save_openvino(converted: Any, out: Path, metadata: Mapping[str, str] | None = None) -> None:
    """Write an OpenVINO model as ``out`` (.xml) and its .bin, both or neither (weights kept float32),
    with ``metadata`` (e.g. ``dsnet.model``) in its rt_info."""
    ov = import_optional("openvino", "OpenVINO export")
    for key, value in (metadata or {}).items():
        converted.set_rt_info(value, key.split("."))
    tmp_dir = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        ov.save_model(converted, str(tmp_dir / out.name), compress_to_fp16=False)
        os.replace(tmp_dir / out.with_suffix(".bin").name, out.with_suffix(".bin"))
        os.replace(tmp_dir / out.name, out)
    except OSError as e:
        raise OutputError(f"{out}: cannot write ({describe_os_error(e)})") from e
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


_WRITERS = {"onnx": _write_onnx, "openvino": _write_openvino, "torch": _write_torch}


def _parity(model: nn.Module, path: Path, format: str, sizes: list[tuple[int, int]], batch: int) -> dict[str, float]:
    """Max error of the exported file relative to the output scale, against the eager unfolded model
    in float64 (the exact result: float32 rounding of the export and of eager PyTorch both count)."""
    reference = prepare(model, fold_bn=False, exportable_pooling=False).double()
    run = load_export(path, format).run
    generator = torch.Generator().manual_seed(0)
    parity = {}
    for h, w in sizes:
        x = torch.randn(batch, getattr(model, "in_channels", 3), h, w, generator=generator)
        with torch.no_grad():
            ref = reference(x.double()).numpy()
        got = run(x.numpy())
        if got.shape != ref.shape:
            raise ExportError(f"{path}: output shape {got.shape} at {h}x{w}, eager PyTorch gives {ref.shape}")
        parity[f"{h}x{w}"] = float(np.abs(got - ref).max() / max(float(np.abs(ref).max()), 1e-12))
    return parity


def export(
    model: nn.Module,
    format: str,
    size: tuple[int, int] = (512, 1024),
    *,
    out: str | os.PathLike,
    dynamic: bool = False,
    batch: int = 1,
    overwrite: bool = False,
    check: bool = True,
    name: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> ExportResult:
    """Export the deploy form of ``model`` (see :func:`dsnet.deploy.prepare`) to ``out``.

    Args:
        format: ``onnx`` (.onnx), ``openvino`` (.xml + .bin) or ``torch`` (.pt2, torch.export).
        size: (H, W) of the example input; the fixed input size unless ``dynamic``.
        dynamic: batch, H and W free at run time (H, W multiples of 8, at least 16).
        batch: the fixed batch size of a static export.
        overwrite: replace existing output files (refused otherwise).
        check: run the written file with its runtime at ``size`` (and, when dynamic, at a second
            size not divisible by 16) and report the error relative to eager PyTorch.
        name: the model's registered name, stored in the ONNX and OpenVINO files (``dsnet.model``) so
            that running the file as another model is an error.
        metadata: the weights' metadata; their label space (``label_space``, ``dataset``) is stored
            in the ONNX and OpenVINO files too (``dsnet.label_space``, ``dsnet.dataset``).
    """
    files = output_files(out, format, overwrite)
    path = files[0]
    multiple = int(getattr(model, "input_multiple", 8))
    h, w = _check_size(size, multiple, dynamic)
    if batch < 1:
        raise ConfigError(f"export batch {batch}: must be at least 1")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{path.parent}: cannot create the output folder ({describe_os_error(e)})") from e

    model = model.to("cpu", torch.float32)
    deployed, report = prepare_with_report(model)
    example_batch = max(batch, 2) if dynamic else batch  # a dynamic batch must not be traced at size 1
    example = torch.randn(example_batch, getattr(model, "in_channels", 3), h, w)
    dynamic_shapes = _dynamic_shapes(multiple) if dynamic else None
    _WRITERS[format](deployed, example, dynamic_shapes, path, export_metadata(name, metadata))

    result = ExportResult(format, path, files, (h, w), dynamic, len(report.folded))
    if check:
        sizes = [(h, w)] + ([(h + multiple, w + 3 * multiple)] if dynamic else [])
        result.parity = _parity(model, path, format, sizes, example_batch)
    return result
