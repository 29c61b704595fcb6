"""The registered DSNet variants. Each is one :class:`ModelInfo`: its architecture is named once.

Paper figures: Tables 7-10 of the paper (FPS with the authors' GPUs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..constants import IMAGENET_MEAN, IMAGENET_STD
from .dsnet import DSNet, DSNetArch, build_dsnet
from .registry import ModelInfo, PaperResult, register_model

__all__ = ["dsnet_head64", "dsnet_head128", "dsnet_head256", "dsnet_base"]

_COMMON: dict[str, Any] = {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "input_multiple": DSNet.input_multiple}


def _variant(info: ModelInfo) -> Callable[..., DSNet]:
    """Register a constructor built from ``info.arch`` (the one definition of the variant)."""

    def constructor(num_classes: int = 19, **overrides: Any) -> DSNet:
        return build_dsnet(info.arch, num_classes, **overrides)

    constructor.__name__ = constructor.__qualname__ = info.name
    constructor.__doc__ = f"{info.description}. Options: fields of DSNetArch, aux_heads, in_channels."
    return register_model(info)(constructor)  # type: ignore[return-value]


dsnet_head64 = _variant(
    ModelInfo(
        name="dsnet_head64",
        description="DSNet-head64: the BDD100K model (64-channel head)",
        arch=DSNetArch(spp_channels=128, head_channels=64, detail_channels=32),
        paper_params_m=6.6,
        results=(PaperResult("bdd100k", 62.8, 172.2, "RTX 4090", (720, 1280)),),
        **_COMMON,
    )
)

dsnet_head128 = _variant(
    ModelInfo(
        name="dsnet_head128",
        description="DSNet-head128 ('DSNet'): the Cityscapes real-time model",
        arch=DSNetArch(spp_channels=128, head_channels=128, detail_channels=32),
        paper_params_m=6.8,
        paper_gflops=226.6,
        paper_gflops_size=(1024, 2048),
        results=(
            PaperResult("cityscapes", 80.4, 81.9, "RTX 4090", (1024, 2048)),
            PaperResult("cityscapes", 80.4, 37.6, "RTX 3090", (1024, 2048)),
        ),
        **_COMMON,
    )
)

dsnet_head256 = _variant(
    ModelInfo(
        name="dsnet_head256",
        description="DSNet-head256: the ADE20K real-time model",
        arch=DSNetArch(spp_channels=256, head_channels=256, detail_channels=64),
        results=(PaperResult("ade20k", 40.0, 179.2, "RTX 3090", (512, 512)),),
        **_COMMON,
    )
)

dsnet_base = _variant(
    ModelInfo(
        name="dsnet_base",
        description="DSNet-Base: the accurate model (P=64, deeper branches)",
        arch=DSNetArch(
            planes=64,
            spatial_depth=3,
            context_stage4_dilations=(3, 5, 5),
            spp_channels=256,
            head_channels=256,
            detail_channels=64,
        ),
        paper_params_m=37.5,
        results=(
            PaperResult("cityscapes", 82.0, None, None, (1024, 2048)),
            PaperResult("ade20k", 43.4, 66.8, "RTX 3090", (512, 512)),
            PaperResult("bdd100k", 64.6, None, None, (720, 1280)),
        ),
        aliases=("dsnet_m",),
        **_COMMON,
    )
)
