"""The ways to run a model that ``dsnet bench`` compares. Each builds a callable on a prepared input.

A backend is registered with a name and a builder ``(model, example, precision) -> run`` where
``run(x)`` returns the model output for a float32 NCHW batch ``x``. Builders may raise
:class:`BackendUnavailable` (a missing optional library, no GPU) and the bench reports it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..deploy.precision import DEFAULT_BF16_MODE, Bf16Module
from ..errors import DSNetError

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendUnavailable",
    "in_precision",
    "register_backend",
    "list_backends",
    "PRECISIONS",
]

RunFn = Callable[[Tensor], Tensor]
Builder = Callable[[nn.Module, Tensor, str], RunFn]
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class BackendUnavailable(DSNetError):
    """This backend cannot run here (missing library, device or precision); the message says why."""


@dataclass(frozen=True)
class Backend:
    name: str
    description: str
    build: Builder
    #: the precision the backend always runs in (e.g. "int8"); None: the requested --precision
    precision: str | None = None
    #: the inference backend it stands for (``torch``, ``onnxruntime``, ``openvino``): what ``auto`` resolves by
    family: str = "torch"


BACKENDS: dict[str, Backend] = {}


def register_backend(
    name: str, description: str, precision: str | None = None, family: str = "torch"
) -> Callable[[Builder], Builder]:
    def decorator(fn: Builder) -> Builder:
        BACKENDS[name] = Backend(name, description, fn, precision, family)
        return fn

    return decorator


def list_backends() -> list[str]:
    return list(BACKENDS)


def in_precision(model: nn.Module, precision: str, device: torch.device) -> RunFn:
    """``model`` run in ``precision`` on float32 inputs: bf16 as ``dsnet predict`` runs it (the same
    :class:`~dsnet.deploy.precision.Bf16Module`), fp16 (CUDA) as a cast; the model may be modified."""
    if precision not in PRECISIONS:
        raise BackendUnavailable(f"precision {precision} has no PyTorch path here (int8: openvino-int8)")
    if precision == "fp16" and device.type == "cpu":
        raise BackendUnavailable("fp16 convolutions are not supported on the CPU; use fp32 or bf16")
    if precision == "bf16":
        return Bf16Module(model, DEFAULT_BF16_MODE)
    if precision == "fp16":
        half = model.half()
        return lambda x: half(x.half())
    return model


@register_backend("eager", "the plain module: BN unfolded, NCHW (what the authors time)")
def _eager(model: nn.Module, example: Tensor, precision: str) -> RunFn:
    return in_precision(copy.deepcopy(model).eval(), precision, example.device)


@register_backend("channels_last", "the plain module in channels_last memory format")
def _channels_last(model: nn.Module, example: Tensor, precision: str) -> RunFn:
    m = copy.deepcopy(model).eval().to(memory_format=torch.channels_last)
    run = in_precision(m, precision, example.device)
    return lambda x: run(x.contiguous(memory_format=torch.channels_last))


@register_backend("compile", "torch.compile of the plain module (inductor)")
def _compile(model: nn.Module, example: Tensor, precision: str) -> RunFn:
    m = copy.deepcopy(model).eval()
    try:
        run = torch.compile(in_precision(m, precision, example.device), dynamic=False)
        with torch.no_grad():
            run(example)  # compile now, not inside the timed loop
    except Exception as e:  # no compiler toolchain, unsupported op ...
        raise BackendUnavailable(f"torch.compile failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from e
    return run
