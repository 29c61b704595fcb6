"""Model registry: names -> constructors plus the metadata that travels with each variant.

Variants register themselves with :func:`register_model` (timm style), so code never picks a
variant by substring tests on its name. The registry knows nothing of weights: building with
weights is :func:`dsnet.models.factory.create_model`.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..errors import ConfigError
from .dsnet import DSNetArch

__all__ = [
    "Ablation",
    "ModelInfo",
    "PaperResult",
    "register_model",
    "list_models",
    "list_ablations",
    "get_model_info",
    "get_model_constructor",
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
class Ablation:
    """What an ablation variant changes relative to its base variant, and what the paper reports for it.

    ``paper_miou`` is Cityscapes val mIoU (%) with ImageNet pre-training, ``paper_miou_scratch``
    without (Table 1 reports both); ``paper_fps`` is the paper's RTX 4090 figure.
    """

    base: str
    axis: str  # the DSNetArch field it changes ("fusion", "context", "rates", "branches", "context_block")
    value: str
    table: str  # where the paper reports it, e.g. "Table 4"
    paper_miou: float | None = None
    paper_miou_scratch: float | None = None
    paper_fps: float | None = None
    note: str = ""


@dataclass(frozen=True)
class ModelInfo:
    """Metadata of a registered variant: its architecture, what the paper reports and how inputs are prepared."""

    name: str
    description: str
    arch: DSNetArch
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_multiple: int
    paper_params_m: float | None = None
    paper_gflops: float | None = None  # the paper's "GFLOPs": thop MACs / 2**30
    paper_gflops_size: tuple[int, int] | None = None
    results: tuple[PaperResult, ...] = ()
    aliases: tuple[str, ...] = ()
    task: str = "segmentation"  # or "classification" (the ImageNet encoder classifiers)
    default_num_classes: int = 19
    default_size: tuple[int, int] = (1024, 2048)  # (H, W) of `dsnet info` / `dsnet list`
    ablation: Ablation | None = None  # set for the paper's ablation variants (``list_ablations``)


class UnknownModelError(ConfigError):
    """A model name that is not registered (the message suggests close names)."""


_MODELS: dict[str, tuple[Callable[..., nn.Module], ModelInfo]] = {}
_ALIASES: dict[str, str] = {}


def register_model(info: ModelInfo) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a variant constructor ``fn(num_classes=..., **overrides)`` under ``info.name``."""

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if info.name in _MODELS:
            raise ValueError(f"model {info.name!r} is already registered")
        _MODELS[info.name] = (fn, info)
        for alias in info.aliases:
            _ALIASES[alias] = info.name
        return fn

    return decorator


def list_models(
    pattern: str | None = None, task: str | None = "segmentation", *, include_ablations: bool = False
) -> list[str]:
    """Names of the registered variants of ``task`` (``None``: every task), optionally filtered by a
    glob pattern (``'dsnet_head*'``). The default lists the segmentation networks; the paper's ablation
    variants are left out unless ``include_ablations`` (see :func:`list_ablations`)."""
    names = sorted(
        n
        for n, (_, info) in _MODELS.items()
        if (task is None or info.task == task) and (include_ablations or info.ablation is None)
    )
    return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]


def list_ablations(pattern: str | None = None) -> list[str]:
    """Names of the ablation variants (paper Tables 1, 4, 5, 6), in registration order."""
    names = [n for n, (_, info) in _MODELS.items() if info.ablation is not None]
    return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]


def resolve_model_name(name: str) -> str:
    """The registered name for ``name`` (aliases accepted); a clear error for typos."""
    if name in _MODELS:
        return name
    if name in _ALIASES:
        return _ALIASES[name]
    close = difflib.get_close_matches(name, list(_MODELS) + list(_ALIASES), n=3)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownModelError(f"unknown model {name!r}.{hint} Available: {', '.join(list_models(task=None))}")


def get_model_info(name: str) -> ModelInfo:
    return _MODELS[resolve_model_name(name)][1]


def get_model_constructor(name: str) -> Callable[..., nn.Module]:
    return _MODELS[resolve_model_name(name)][0]
