"""Inference backends: what turns a normalised NCHW float32 batch into logits.

By name: "torch" (the module itself, in its deploy form by default), "onnxruntime" and "openvino"
(an exported file, or the weights exported on the fly; see :mod:`dsnet.predict.runtimes`). Any other
runtime plugs in as a :class:`LogitsFn`: a callable taking a normalised ``(N, 3, H, W)`` float32 NumPy
batch whose H and W are multiples of the model's ``input_multiple`` and returning logits
``(N, C, H, W)``. :class:`LogitsFnModule` wraps such a callable so that :mod:`dsnet.inference`
(padding, cropping, sliding window, flips) drives every backend through the same code.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import ConfigError

__all__ = ["AVAILABLE_BACKENDS", "RUNTIME_BACKENDS", "LogitsFn", "LogitsFnModule", "check_backend"]

#: Runtimes that run an exported model, and the export format each one runs.
RUNTIME_BACKENDS: dict[str, str] = {"onnxruntime": "onnx", "openvino": "openvino"}
#: Backends that can be named by string; others are passed in as a :class:`LogitsFn` object.
AVAILABLE_BACKENDS: tuple[str, ...] = ("torch", *RUNTIME_BACKENDS)


@runtime_checkable
class LogitsFn(Protocol):
    """A non-torch model: normalised float32 batch ``(N, 3, H, W)`` -> logits ``(N, C, H, W)``."""

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


class LogitsFnModule(nn.Module):
    """An ``nn.Module`` face for a :class:`LogitsFn`, so the torch inference code can drive it.

    Tensors go to NumPy (CPU, float32) and the logits come back on the input's device. A runtime
    with input limits says so here, and other inputs are a :class:`~dsnet.errors.ConfigError`:
    ``size`` (H, W) of a static export (the only size it runs; callers tile larger images),
    ``batch`` of a static export (batches are split and the last one filled up with zeros) and
    ``min_size`` of a dynamic one (DSNet exports take H, W >= 16).
    """

    def __init__(
        self,
        fn: LogitsFn,
        input_multiple: int,
        *,
        size: tuple[int, int] | None = None,
        batch: int | None = None,
        min_size: int = 0,
    ) -> None:
        super().__init__()
        self.fn = fn
        self.input_multiple = int(input_multiple)
        self.size = (int(size[0]), int(size[1])) if size is not None else None
        self.batch = int(batch) if batch else None
        self.min_size = int(min_size)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        logits = np.asarray(self.fn(batch))
        if logits.ndim != 4 or logits.shape[0] != batch.shape[0] or logits.shape[2:] != batch.shape[2:]:
            raise ValueError(
                f"backend returned logits of shape {logits.shape} for an input of shape {batch.shape}; "
                "expected (N, C, H, W) at the input size"
            )
        return logits

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        if self.size is not None and (h, w) != self.size:
            raise ConfigError(f"input {h}x{w}: this static export runs {self.size[0]}x{self.size[1]} inputs only")
        if min(h, w) < self.min_size:
            raise ConfigError(f"input {h}x{w}: the export needs at least {self.min_size} pixels on each side")
        batch = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        step = self.batch or n
        parts = []
        for start in range(0, n, step):
            part = batch[start : start + step]
            if len(part) < step:  # a static batch: fill up with zeros, keep only the real results
                part = np.concatenate([part, np.zeros((step - len(part), *part.shape[1:]), part.dtype)])
            parts.append(self._run(part)[: n - start])
        logits = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return torch.from_numpy(np.ascontiguousarray(logits, np.float32)).to(x.device)


def check_backend(backend: str | LogitsFn | None) -> str | LogitsFn | None:
    """``backend`` if it is None (decided by the weights), a known name or a callable, else a ConfigError."""
    if backend is None:
        return None
    if isinstance(backend, str):
        if backend not in AVAILABLE_BACKENDS:
            raise ConfigError(
                f"backend {backend!r} is not available (available: {', '.join(AVAILABLE_BACKENDS)}; "
                "other runtimes are passed in as a LogitsFn callable)"
            )
        return backend
    if not callable(backend):
        raise ConfigError(f"backend must be a name or a callable, got {type(backend).__name__}")
    return backend
