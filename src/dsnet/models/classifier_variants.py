"""The registered ImageNet classifiers: the encoders of the small (P=32) and Base (P=64) DSNets.

Each takes its architecture from the segmentation variant it pre-trains (one definition of the
encoder); the small encoder is shared by dsnet_head64/128/256, which differ only in the decoder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..constants import IMAGENET_MEAN, IMAGENET_STD
from . import variants as _segmentation  # noqa: F401  (registers the variants whose encoders these are)
from .classifier import DSNetClassifier
from .registry import ModelInfo, get_model_info, register_model

__all__ = ["dsnet_imagenet", "dsnet_base_imagenet"]

_COMMON: dict[str, Any] = {
    "mean": IMAGENET_MEAN,
    "std": IMAGENET_STD,
    "input_multiple": DSNetClassifier.input_multiple,
    "task": "classification",
    "default_num_classes": 1000,
    "default_size": (224, 224),
}


def _classifier(name: str, encoder_of: str, description: str, aliases: tuple[str, ...] = ()) -> Callable[..., Any]:
    arch = get_model_info(encoder_of).arch
    info = ModelInfo(name=name, description=description, arch=arch, aliases=aliases, **_COMMON)

    def constructor(num_classes: int = 1000, **overrides: Any) -> DSNetClassifier:
        head = {k: overrides.pop(k) for k in ("head_channels", "dropout", "in_channels") if k in overrides}
        return DSNetClassifier(num_classes, replace(arch, **overrides), **head)

    constructor.__name__ = constructor.__qualname__ = name
    constructor.__doc__ = f"{description}. Options: head_channels, dropout, in_channels, fields of DSNetArch."
    return register_model(info)(constructor)


dsnet_imagenet = _classifier(
    "dsnet_imagenet",
    "dsnet_head128",
    "DSNet encoder (P=32, of dsnet_head64/128/256) + classifier head, for ImageNet pre-training "
    "(paper Table 4: 73.2% top-1)",
)
dsnet_base_imagenet = _classifier(
    "dsnet_base_imagenet",
    "dsnet_base",
    "DSNet-Base encoder (P=64) + classifier head, for ImageNet pre-training",
)
