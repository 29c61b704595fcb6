"""Model registry: names -> constructors plus the metadata that travels with each variant.

Variant constructors register themselves with :func:`register_model` (timm style), so code
never picks a variant by substring tests on its name.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "ModelInfo",
    "PaperResult",
    "register_model",
    "list_models",
    "get_model_info",
    "create_model",
    "resolve_model_name",
]


@dataclass(frozen=True)
class PaperResult:
    """One result reported in the paper: single-scale val mIoU (%) and FPS (fp32, batch 1)."""

    dataset: str
    miou: float
    fps: float | None
    gpu: str | None
    resolution: tuple[int, int]  # (H, W)


@dataclass(frozen=True)
class ModelInfo:
    """Metadata of a registered variant: what the paper reports and how inputs are prepared."""

    name: str
    description: str
    arch: Any
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_multiple: int
    paper_params_m: float | None = None
    paper_gflops: float | None = None  # the paper's "GFLOPs": thop MACs / 2**30
    paper_gflops_size: tuple[int, int] | None = None
    results: tuple[PaperResult, ...] = ()
    aliases: tuple[str, ...] = ()


_MODELS: dict[str, tuple[Callable[..., nn.Module], ModelInfo]] = {}
_ALIASES: dict[str, str] = {}


def register_model(info: ModelInfo) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a variant constructor ``fn(num_classes=..., **overrides)``."""

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if info.name in _MODELS:
            raise ValueError(f"model {info.name!r} is already registered")
        _MODELS[info.name] = (fn, info)
        for alias in info.aliases:
            _ALIASES[alias] = info.name
        return fn

    return decorator


def list_models(pattern: str | None = None) -> list[str]:
    """Names of the registered variants, optionally filtered by a glob pattern (``'dsnet_head*'``)."""
    names = sorted(_MODELS)
    return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]


def resolve_model_name(name: str) -> str:
    """The registered name for ``name`` (aliases accepted); a clear error for typos."""
    if name in _MODELS:
        return name
    if name in _ALIASES:
        return _ALIASES[name]
    close = difflib.get_close_matches(name, list(_MODELS) + list(_ALIASES), n=3)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"unknown model {name!r}.{hint} Available: {', '.join(list_models())}")


def get_model_info(name: str) -> ModelInfo:
    return _MODELS[resolve_model_name(name)][1]


def create_model(
    name: str,
    num_classes: int = 19,
    weights: str | Path | Mapping[str, Any] | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build a registered model, optionally loading weights.

    Args:
        name: a name from :func:`list_models` (``'dsnet_head128'`` ...).
        num_classes: output classes (19 Cityscapes/BDD100K, 150 ADE20K, 11 CamVid).
        weights: a checkpoint path (``.pth``/``.pt``/``.pth.tar``/``.safetensors``) or an in-memory
            state dict, in the authors' layout or ours; see :func:`dsnet.load_weights`.
        **overrides: architecture fields of ``DSNetArch`` or ``aux_heads`` / ``in_channels``.
    """
    fn, _ = _MODELS[resolve_model_name(name)]
    model = fn(num_classes=num_classes, **overrides)
    if weights is not None:
        from .checkpoint import load_weights

        load_weights(model, weights)
    return model
