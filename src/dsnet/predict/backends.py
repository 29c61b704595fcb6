"""Inference backends: what turns a normalised NCHW float32 batch into logits.

Only "torch" is implemented here. Another runtime (ONNX Runtime, OpenVINO, ...) plugs in as a
:class:`LogitsFn`: a callable taking a normalised ``(N, 3, H, W)`` float32 NumPy batch whose H and W
are multiples of the model's ``input_multiple`` and returning logits ``(N, C, H, W)``.
:class:`LogitsFnModule` wraps such a callable so that :func:`dsnet.inference.predict_probs`
(padding, cropping, sliding window, flips) drives every backend through the same code.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import ConfigError

__all__ = ["AVAILABLE_BACKENDS", "LogitsFn", "LogitsFnModule", "check_backend"]

#: Backends that can be named by string; others are passed in as a :class:`LogitsFn` object.
AVAILABLE_BACKENDS: tuple[str, ...] = ("torch",)


@runtime_checkable
class LogitsFn(Protocol):
    """A non-torch model: normalised float32 batch ``(N, 3, H, W)`` -> logits ``(N, C, H, W)``."""

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


class LogitsFnModule(nn.Module):
    """An ``nn.Module`` face for a :class:`LogitsFn`, so the torch inference code can drive it.

    Tensors go to NumPy (CPU, float32) and the logits come back on the input's device.
    """

    def __init__(self, fn: LogitsFn, input_multiple: int) -> None:
        super().__init__()
        self.fn = fn
        self.input_multiple = int(input_multiple)

    def forward(self, x: Tensor) -> Tensor:
        batch = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        logits = np.asarray(self.fn(batch))
        if logits.ndim != 4 or logits.shape[0] != x.shape[0] or logits.shape[2:] != tuple(x.shape[2:]):
            raise ValueError(
                f"backend returned logits of shape {logits.shape} for an input of shape {tuple(x.shape)}; "
                "expected (N, C, H, W) at the input size"
            )
        return torch.from_numpy(np.ascontiguousarray(logits, np.float32)).to(x.device)


def check_backend(backend: str | LogitsFn) -> str | LogitsFn:
    """``backend`` if it is a known name or a callable, else a ConfigError naming it."""
    if isinstance(backend, str):
        if backend not in AVAILABLE_BACKENDS:
            raise ConfigError(
                f"backend {backend!r} is not available here (available: {', '.join(AVAILABLE_BACKENDS)}; "
                "other runtimes are passed in as a LogitsFn callable)"
            )
        return backend
    if not callable(backend):
        raise ConfigError(f"backend must be a name or a callable, got {type(backend).__name__}")
    return backend
