"""Constants shared by the model, data and engine layers (a leaf module: imports nothing of dsnet)."""

from __future__ import annotations

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "IGNORE_INDEX", "INPUT_LONG_SIDE_KEY", "round_up"]

#: RGB mean/std (on 0-1 values) of every DSNet variant's ImageNet-pretrained encoder.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: Label value of pixels that count neither in the loss nor in the metrics.
IGNORE_INDEX = 255

#: Weights' metadata key: the long side, in pixels, of the images the model was trained on (e.g. 320 for a
#: CamVid model trained on 240x320 images); the Predictor scales images to it by default, so objects appear
#: at the size the model learned them, whatever the input's resolution.
INPUT_LONG_SIDE_KEY = "input_long_side"


def round_up(value: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is >= ``value``."""
    return -(-int(value) // int(multiple)) * int(multiple)
