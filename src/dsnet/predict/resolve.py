"""From what a user names (a model, weights, a backend, a precision) to the parts a Predictor runs.

:func:`resolve_model` reads the weights once (checkpoint or exported file), settles the registered model name,
the class count and the label space (explicit arguments, else the weights' metadata), resolves the precision
(:func:`dsnet.hardware.resolve_precision`) and builds the runner with :func:`dsnet.deploy.build_runner`. The
result, :class:`ResolvedModel`, is what :class:`~dsnet.predict.Predictor` is made of; a server or a test can
build one from its own parts instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..constants import IMAGENET_MEAN, IMAGENET_STD, INPUT_LONG_SIDE_KEY
from ..data.label_space import LabelSpace
from ..deploy import (
    RUNTIME_BACKENDS,
    LogitsFn,
    Runner,
    backend_for_export,
    build_runner,
    check_backend,
    export_format,
)
from ..devices import check_device
from ..errors import ConfigError, WeightsNotFoundError
from ..hardware import resolve_precision
from ..models import ModelInfo, check_num_classes, create_model, get_model_info, load_weights, resolve_weights
from ..models.registry import resolve_model_name
from .weights_labels import WeightsSource, label_space, label_space_from_metadata, read_weights_source

__all__ = ["ResolvedModel", "resolve_model"]


@dataclass
class ResolvedModel:
    """What a :class:`~dsnet.predict.Predictor` runs: the runner and what its outputs mean."""

    runner: Runner
    label_space: LabelSpace
    #: the registered model name, when known (None: a module passed in without weights naming it)
    name: str | None = None
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    #: where input batches are put (a LogitsFn's runner computes on the CPU whatever this is)
    device: torch.device = torch.device("cpu")
    #: why the runner's precision was chosen (see :func:`dsnet.hardware.resolve_precision`)
    precision_reason: str = "asked for"
    #: the long side of the weights' training images (their metadata's ``input_long_side``), if given
    input_long_side: int | None = None


def _input_long_side(meta: dict[str, str], source: object) -> int | None:
    text = meta.get(INPUT_LONG_SIDE_KEY)
    if text is None:
        return None
    if not text.isdigit() or not 16 <= int(text) <= 16384:
        raise ConfigError(f"{source}: metadata {INPUT_LONG_SIDE_KEY}={text!r} is not a size in 16..16384 pixels")
    return int(text)


def _model_name(model_or_name: str | nn.Module, meta: dict[str, str]) -> str | None:
    """The registered name: given, or from the metadata; a clash between the two is an error."""
    stored = meta.get("model")
    if isinstance(model_or_name, str):
        name = resolve_model_name(model_or_name)
        if stored and resolve_model_name(stored) != name:
            raise ConfigError(f"weights were trained for model {stored!r}, not {model_or_name!r}")
        return name
    return resolve_model_name(stored) if stored else None


def _backend_and_device(
    backend: str | LogitsFn | None, weights: Path | None, device: str | torch.device | None, threads: int | None
) -> tuple[str | LogitsFn, torch.device]:
    """The backend (an exported file's own runtime by default, else torch) and the device it runs on."""
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be at least 1, got {threads}")
    backend = check_backend(backend)
    exported = export_format(weights)
    if exported is not None:
        assert weights is not None
        if backend is not None and not isinstance(backend, str):
            raise ConfigError(f"{weights}: an exported file runs in its runtime, not in a LogitsFn backend")
        backend = backend_for_export(weights, exported, backend)
    backend = backend or "torch"
    on_runtime = isinstance(backend, str) and backend in RUNTIME_BACKENDS
    if on_runtime and device is not None and str(device).split(":")[0] != "cpu":
        raise ConfigError(f"backend {backend!r} runs on the CPU here, not on {device}")
    check_device(device, "device")  # one line naming it and what is available, not a traceback later
    if threads is not None and backend == "torch":
        raise ConfigError("threads: PyTorch's thread count is process-wide; set it with torch.set_num_threads")
    default_device = "cuda" if torch.cuda.is_available() and not on_runtime else "cpu"
    return backend, torch.device(device or default_device)


def _check_export(runner: Runner, weights: Path, name: str | None, asked: str, num_classes: int | None) -> None:
    """An exported file matches what was asked of it: its precision, model and class count."""
    info = runner.info
    if info.quantized and asked not in ("auto", "int8"):
        raise ConfigError(f"{weights}: an INT8 export; --precision {asked} needs a float export")
    if runner.recipe and runner.recipe.precision == "int8" and not info.quantized:
        raise ConfigError(
            f"{weights}: a float export; precision int8 needs an INT8 export (dsnet export --int8 "
            "--calib DATA) or the checkpoint with calibration images (--calib DATA)"
        )
    if info.model_name is not None and info.model_name != name:
        raise ConfigError(
            f"{weights}: exported from {info.model_name}, not {name}; run it as that model "
            f"(dsnet predict {info.model_name} ... --weights {weights})"
        )
    if num_classes is not None and info.num_classes is not None and num_classes != info.num_classes:
        raise ConfigError(f"{weights}: the export outputs {info.num_classes} classes, not {num_classes}")


def _labels(
    meta: dict[str, str], dataset: str | LabelSpace | None, num_classes: int | None, weights: object
) -> LabelSpace:
    """The label space: an explicit dataset's, else the weights' metadata's, else a generated one."""
    if dataset is not None:
        return label_space(dataset, num_classes)
    described = label_space_from_metadata(meta, num_classes, str(weights))
    return described if described is not None else label_space(None, num_classes or 19)


def _model(
    model_or_name: str | nn.Module, name: str | None, num_classes: int, source: WeightsSource | None
) -> nn.Module:
    """The module with the weights loaded: the one given, or the registered model built."""
    if isinstance(model_or_name, nn.Module):
        if source is not None:
            load_weights(model_or_name, source.weights, fine_tuning=False)
        return model_or_name
    assert name is not None
    return create_model(name, num_classes=num_classes, weights=source.weights if source else None, fine_tuning=False)


def resolve_model(
    model_or_name: str | nn.Module,
    weights: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    num_classes: int | None = None,
    dataset: str | LabelSpace | None = None,
    backend: str | LogitsFn | None = None,
    threads: int | None = None,
    deploy_form: bool = True,
    precision: str = "fp32",
    calibration: Iterable[np.ndarray] | None = None,
) -> ResolvedModel:
    """The parts of a predictor; the arguments are :class:`~dsnet.predict.Predictor`'s (see there)."""
    weights = resolve_weights(weights)
    if weights is not None and not Path(weights).is_file():
        raise WeightsNotFoundError(f"{weights}: weights file not found")
    path = Path(weights) if weights is not None else None
    backend, torch_device = _backend_and_device(backend, path, device, threads)
    exported = export_format(path) is not None
    source = read_weights_source(path) if path is not None and not exported else None
    meta = source.metadata if source is not None else {}
    name = _model_name(model_or_name, meta)
    info: ModelInfo | None = get_model_info(name) if name is not None else None
    if info is None and (exported or not isinstance(backend, str)):
        what = f"{weights}: an exported file" if exported else "a LogitsFn backend"
        raise ConfigError(f"{what} needs the model's registered name (for normalisation)")
    backend_name = backend if isinstance(backend, str) else "callable"
    resolved, reason = resolve_precision(precision, torch_device, backend_name)
    multiple = info.input_multiple if info is not None else None
    runner: Runner | None = None
    if exported:
        assert path is not None
        runner = build_runner(path, backend, resolved, torch_device, threads, input_multiple=multiple)
        _check_export(runner, path, name, precision, num_classes)
        if runner.info.quantized and resolved != "int8":
            reason = f"an INT8 export (its float parts in {resolved})"
        num_classes = num_classes or runner.info.num_classes
        meta = runner.info.metadata  # the label space of the weights it was exported from
    if source is not None:
        num_classes = check_num_classes(source.num_classes, num_classes, str(weights))
    if num_classes is None and dataset is None and isinstance(model_or_name, nn.Module):
        num_classes = getattr(model_or_name, "num_classes", None)
    labels = _labels(meta, dataset, num_classes, weights)
    if runner is None and not isinstance(backend, str):
        runner = build_runner(backend, precision=resolved, device=torch_device, input_multiple=multiple)
    elif runner is None:
        model = _model(model_or_name, name, labels.num_classes, source)
        runner = build_runner(
            model, backend, resolved, torch_device, threads, calibration, input_multiple=multiple, fold=deploy_form
        )
    return ResolvedModel(
        runner,
        labels,
        name,
        info.mean if info else IMAGENET_MEAN,
        info.std if info else IMAGENET_STD,
        torch_device,
        reason,
        _input_long_side(meta, weights),
    )
