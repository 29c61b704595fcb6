"""The one execution type: a normalised float32 ``(N, 3, H, W)`` batch in, float32 logits ``(N, C, H, W)`` out.

A :class:`Runner` is what ``dsnet predict`` (the :class:`~dsnet.predict.Predictor`), ``dsnet serve`` and
``dsnet bench`` run, whatever computes it: a PyTorch module (:class:`ModuleRunner`) or a runtime's function on
NumPy arrays (:class:`ArrayRunner`: ONNX Runtime, OpenVINO, or any :class:`LogitsFn` a user plugs in). Runners
are ``nn.Module`` objects, so :mod:`dsnet.inference` (padding, windows, flips) drives every one alike. They are
made by :func:`dsnet.deploy.build_runner`, which records how in :attr:`Runner.recipe`.
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import ConfigError

__all__ = ["ArrayRunner", "LogitsFn", "ModuleRunner", "Runner", "RunnerInfo", "RunnerRecipe"]


@runtime_checkable
class LogitsFn(Protocol):
    """A runtime's model on arrays: normalised float32 batch ``(N, 3, H, W)`` -> logits ``(N, C, H, W)``."""

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class RunnerRecipe:
    """How :func:`~dsnet.deploy.build_runner` made a runner: two runners with equal recipes run the same code."""

    backend: str
    precision: str
    device: str
    #: what was run: ``module`` (a model), ``export`` (an exported file), ``function`` (a LogitsFn)
    source: str
    #: torch: BN folded into the convolutions (the deploy form)
    fold: bool = False
    #: torch: channels_last memory format
    channels_last: bool = False
    #: torch: torch.compile (inductor)
    compiled: bool = False
    #: a model exported on the fly at this static (N, 3, H, W) input; None: dynamic batch and H/W
    export_shape: tuple[int, ...] | None = None


@dataclass
class RunnerInfo:
    """What a runner says about itself besides computing logits."""

    backend: str
    precision: str
    device: torch.device
    input_multiple: int = 8
    #: the classes its output has, when known without running it
    num_classes: int | None = None
    #: (H, W) of a static export, the only size it runs; None: any multiple of ``input_multiple``
    static_size: tuple[int, int] | None = None
    #: the batch a static export runs (others are split and filled up); None: any
    static_batch: int | None = None
    #: the least H and W it runs (a dynamic DSNet export: 16)
    min_size: int = 0
    #: the registered model name an exported file says it came from
    model_name: str | None = None
    #: the weights' metadata an exported file carries (``label_space``, ``dataset``), without the ``dsnet.`` prefix
    metadata: dict[str, str] = field(default_factory=dict)
    #: an INT8-quantized export
    quantized: bool = False


class Runner(nn.Module):
    """Normalised float32 ``(N, 3, H, W)`` batch -> float32 logits ``(N, C, H, W)`` at the input size.

    Its facts are in ``info`` (:class:`RunnerInfo`); ``input_multiple`` and ``num_classes`` are attributes too, as
    on a DSNet model, for the inference code. ``channels_last`` says which memory format it wants its input in
    (others are converted).
    """

    channels_last = False

    def __init__(self, info: RunnerInfo) -> None:
        super().__init__()
        self.info = info
        self.input_multiple = info.input_multiple
        self.num_classes = info.num_classes
        self.recipe: RunnerRecipe | None = None  # set by build_runner
        #: the folder of an on-the-fly export, deleted with the runner
        self.workdir: tempfile.TemporaryDirectory[str] | None = None


class ModuleRunner(Runner):
    """A PyTorch module (on ``info.device``) in its precision; float32 logits whatever it computes in."""

    def __init__(self, module: nn.Module, info: RunnerInfo, channels_last: bool = False) -> None:
        super().__init__(info)
        self.module = module
        self.channels_last = channels_last

    def forward(self, x: Tensor) -> Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.info.precision == "fp16":
            x = x.half()
        return self.module(x).float()


class ArrayRunner(Runner):
    """A :class:`LogitsFn` (NumPy in and out, on the CPU) with the input limits of the file it runs.

    Inputs outside them are a :class:`~dsnet.errors.ConfigError`: a static export's ``static_size`` (callers
    tile larger images), its ``static_batch`` (batches are split and the last filled up with zeros) and a
    dynamic export's ``min_size``. Logits come back on the input's device.
    """

    def __init__(self, fn: LogitsFn, info: RunnerInfo) -> None:
        super().__init__(info)
        self.fn = fn
        # runtimes' compiled models are not safe to call from two threads at once (OpenVINO's shared infer
        # request answers "busy"); a server thread and a caller's may share a predictor
        self._lock = threading.Lock()

    def _run(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            logits = np.asarray(self.fn(batch))
        if logits.ndim != 4 or logits.shape[0] != batch.shape[0] or logits.shape[2:] != batch.shape[2:]:
            raise ValueError(
                f"backend returned logits of shape {logits.shape} for an input of shape {batch.shape}; "
                "expected (N, C, H, W) at the input size"
            )
        return logits

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        size = self.info.static_size
        if size is not None and (h, w) != size:
            raise ConfigError(f"input {h}x{w}: this static export runs {size[0]}x{size[1]} inputs only")
        if min(h, w) < self.info.min_size:
            raise ConfigError(f"input {h}x{w}: the export needs at least {self.info.min_size} pixels on each side")
        batch = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        step = self.info.static_batch or n
        parts = []
        for start in range(0, n, step):
            part = batch[start : start + step]
            if len(part) < step:  # a static batch: fill up with zeros, keep only the real results
                part = np.concatenate([part, np.zeros((step - len(part), *part.shape[1:]), part.dtype)])
            parts.append(self._run(part)[: n - start])
        logits = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return torch.from_numpy(np.ascontiguousarray(logits, np.float32)).to(x.device)
