"""Image-classification transforms (ImageNet pre-training), on PIL images with an explicit generator.

Every random choice is drawn from the ``rng`` passed in (the dataset derives it from
``(seed, epoch, index)``), so augmentations are reproducible and resume exactly. The algorithms
follow the usual ImageNet recipe: Inception-style RandomResizedCrop (area 8-100 %, aspect 3/4-4/3,
ten tries then a centre crop) + horizontal flip for training; resize the short side to
``crop / crop_ratio`` and take the centre crop for evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

from ..constants import IMAGENET_MEAN, IMAGENET_STD
from .transforms import normalize

__all__ = ["ClassifyTrainTransform", "ClassifyEvalTransform", "random_resized_crop_box", "trivial_augment"]

_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


def _to_tensor(image: Image.Image, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    arr = normalize(np.asarray(image, dtype=np.uint8), mean, std)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def random_resized_crop_box(
    width: int,
    height: int,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> tuple[int, int, int, int]:
    """``(left, top, w, h)`` of a crop covering ``scale`` of the area with aspect ``ratio`` (w/h)."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h
    # fallback: the largest centred crop whose aspect lies within ``ratio``
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        w, h = int(round(height * ratio[1])), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


# TrivialAugment (Müller & Hutter 2021), "wide" magnitudes: one op, one magnitude per image.
_BINS = 31


def _op(image: Image.Image, name: str, level: float, sign: float) -> Image.Image:
    """Apply one TrivialAugment op at ``level`` in [0, 1]."""
    fill = (128, 128, 128)
    if name == "identity":
        return image
    if name in ("shear_x", "shear_y"):
        s = sign * 0.99 * level
        matrix = (1, s, 0, 0, 1, 0) if name == "shear_x" else (1, 0, 0, s, 1, 0)
        return image.transform(image.size, Image.Transform.AFFINE, matrix, Image.Resampling.BILINEAR, fillcolor=fill)
    if name in ("translate_x", "translate_y"):
        t = sign * 32.0 * level
        matrix = (1, 0, t, 0, 1, 0) if name == "translate_x" else (1, 0, 0, 0, 1, t)
        return image.transform(image.size, Image.Transform.AFFINE, matrix, Image.Resampling.BILINEAR, fillcolor=fill)
    if name == "rotate":
        return image.rotate(sign * 135.0 * level, Image.Resampling.BILINEAR, fillcolor=fill)
    if name in ("brightness", "color", "contrast", "sharpness"):
        enhancer = {
            "brightness": ImageEnhance.Brightness,
            "color": ImageEnhance.Color,
            "contrast": ImageEnhance.Contrast,
            "sharpness": ImageEnhance.Sharpness,
        }[name]
        return enhancer(image).enhance(1.0 + sign * 0.99 * level)
    if name == "posterize":
        return ImageOps.posterize(image, 8 - int(round(6 * level)))
    if name == "solarize":
        return ImageOps.solarize(image, int(round(255 * (1 - level))))
    if name == "autocontrast":
        return ImageOps.autocontrast(image)
    if name == "equalize":
        return ImageOps.equalize(image)
    raise ValueError(f"unknown augmentation op {name!r}")


_OPS = (
    "identity",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
    "rotate",
    "brightness",
    "color",
    "contrast",
    "sharpness",
    "posterize",
    "solarize",
    "autocontrast",
    "equalize",
)


def trivial_augment(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """One uniformly drawn op at a uniformly drawn magnitude (of 31 bins), with a random sign."""
    name = _OPS[int(rng.integers(len(_OPS)))]
    level = int(rng.integers(_BINS)) / (_BINS - 1)
    sign = -1.0 if rng.random() < 0.5 else 1.0
    return _op(image, name, level, sign)


class ClassifyTrainTransform:
    """RandomResizedCrop to ``size`` x ``size`` + horizontal flip (+ TrivialAugment) -> normalised tensor."""

    def __init__(
        self,
        size: int = 224,
        scale: Sequence[float] = (0.08, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
        flip: bool = True,
        trivial_augment: bool = False,
        interpolation: str = "bilinear",
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        self.size = int(size)
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.flip = flip
        self.trivial_augment = trivial_augment
        self.resample = _RESAMPLE[interpolation]
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(self, image: Image.Image, rng: np.random.Generator) -> torch.Tensor:
        left, top, w, h = random_resized_crop_box(image.width, image.height, rng, self.scale, self.ratio)
        out = image.resize((self.size, self.size), self.resample, box=(left, top, left + w, top + h))
        if self.flip and rng.random() < 0.5:
            out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if self.trivial_augment:
            out = trivial_augment(out, rng)
        return _to_tensor(out, self.mean, self.std)


class ClassifyEvalTransform:
    """Resize the short side to ``round(size / crop_ratio)`` (256 for 224), then the centre ``size`` crop."""

    def __init__(
        self,
        size: int = 224,
        crop_ratio: float = 0.875,
        interpolation: str = "bilinear",
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        self.size = int(size)
        self.resize = int(round(size / crop_ratio))
        self.resample = _RESAMPLE[interpolation]
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(self, image: Image.Image, rng: np.random.Generator | None = None) -> torch.Tensor:
        w, h = image.size
        scale = self.resize / min(w, h)
        nw, nh = max(self.size, int(round(w * scale))), max(self.size, int(round(h * scale)))
        image = image.resize((nw, nh), self.resample)
        left, top = (nw - self.size) // 2, (nh - self.size) // 2
        return _to_tensor(image.crop((left, top, left + self.size, top + self.size)), self.mean, self.std)
