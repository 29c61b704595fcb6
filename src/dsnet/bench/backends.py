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

from ..errors import DSNetError

__all__ = ["BACKENDS", "Backend", "BackendUnavailable", "register_backend", "list_backends", "PRECISIONS"]

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


BACKENDS: dict[str, Backend] = {}


def register_backend(name: str, description: str, precision: str | None = None) -> Callable[[Builder], Builder]:
    def decorator(fn: Builder) -> Builder:
        BACKENDS[name] = Backend(name, description, fn, precision)
        return fn

    return decorator


def list_backends() -> list[str]:
    return list(BACKENDS)


def cast_model(model: nn.Module, precision: str, device: torch.device) -> nn.Module:
    if precision == "fp16" and device.type == "cpu":
        raise BackendUnavailable("fp16 convolutions are not supported on the CPU; use fp32 or bf16")
    return model.to(PRECISIONS[precision])


def with_dtype(fn: RunFn, precision: str) -> RunFn:
    dtype = PRECISIONS[precision]
    if dtype == torch.float32:
        return fn
    return lambda x: fn(x.to(dtype))


@register_backend("eager", "the plain module: BN unfolded, NCHW (what the authors time)")
def _eager(model: nn.Module, example: Tensor, precision: str) -> RunFn:
    m = cast_model(copy.deepcopy(model).eval(), precision, example.device)
    return with_dtype(m, precision)


@register_backend("channels_last", "the plain module in channels_last memory format")
def _channels_last(model: nn.Module, example: Tensor, precision: str) -> RunFn:
    m = cast_model(copy.deepcopy(model).eval(), precision, example.device).to(memory_format=torch.channels_last)
    run = with_dtype(m, precision)
    return lambda x: run(x.contiguous(memory_format=torch.channels_last))


@register_backend("compile", "torch.compile of the plain module (inductor)")
def _compile(model: nn.Module, example: Tensor, precision: str) -> RunFn:
    m = cast_model(copy.deepcopy(model).eval(), precision, example.device)
    try:
        compiled = torch.compile(m, dynamic=False)
        run = with_dtype(compiled, precision)
        with torch.no_grad():
            run(example)  # compile now, not inside the timed loop
    except Exception as e:  # no compiler toolchain, unsupported op ...
        raise BackendUnavailable(f"torch.compile failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from e
    return run
