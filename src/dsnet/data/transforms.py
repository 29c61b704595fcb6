"""Joint image + label transforms (OpenCV), following the DSNet authors' training pipeline.

A transform is a callable ``(image, label, rng) -> (image_tensor, label_tensor)`` where ``image`` is an
RGB uint8 (H, W, 3) array, ``label`` a (H, W) array of training ids (255 = ignore) and ``rng`` a
``numpy.random.Generator``. All randomness comes from ``rng``, so a dataset that derives ``rng`` from
``(seed, epoch, index)`` yields the same sample whatever the number of DataLoader workers.

Outputs: image float32 tensor (3, H, W), normalised ``(x / 255 - mean) / std``; label int64 tensor (H, W).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
import torch

from ..constants import IMAGENET_MEAN, IMAGENET_STD
from .photometric import Photometric, scale_light

# --------------------------------------------------------------------------------------------------
# normalisation


def normalize(
    image: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> float32 (H, W, 3): ``(image / 255 - mean) / std``."""
    scale = (1.0 / (255.0 * np.asarray(std, np.float64))).astype(np.float32)
    offset = (-np.asarray(mean, np.float64) / np.asarray(std, np.float64)).astype(np.float32)
    out = image.astype(np.float32)
    out *= scale
    out += offset
    return out


def denormalize(
    image: torch.Tensor | np.ndarray, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> np.ndarray:
    """Inverse of the normalisation: (3, H, W) or (N, 3, H, W) tensor/array -> uint8 (H, W, 3) / (N, H, W, 3)."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    image = np.asarray(image, np.float32)
    if image.ndim not in (3, 4) or image.shape[-3] != 3:
        raise ValueError(f"expected (3, H, W) or (N, 3, H, W), got shape {image.shape}")
    chw = np.moveaxis(image, -3, -1)
    out = (chw * np.asarray(std, np.float32) + np.asarray(mean, np.float32)) * 255.0
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _to_tensors(image: np.ndarray, label: np.ndarray, scale: np.ndarray, offset: np.ndarray):
    # normalise on the (small) cropped uint8 image; HWC -> CHW in the same pass
    chw = np.empty((3, *image.shape[:2]), np.float32)
    for c in range(3):
        np.multiply(image[:, :, c], scale[c], out=chw[c], dtype=np.float32)
        chw[c] += offset[c]
    return torch.from_numpy(chw), torch.from_numpy(label.astype(np.int64))


def jitter_colors(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Brightness, contrast and saturation each scaled by a factor drawn uniformly in
    ``[1 - strength, 1 + strength]`` (three draws, in that order), on a uint8 RGB image."""
    b, c, s = (float(rng.uniform(1 - strength, 1 + strength)) for _ in range(3))
    return np.clip(scale_light(image, b, c, s) + 0.5, 0, 255).astype(np.uint8)


def _norm_consts(mean: Sequence[float], std: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    if len(mean) != 3 or len(std) != 3:
        raise ValueError("mean and std must have 3 values (RGB)")
    if any(s <= 0 for s in std):
        raise ValueError(f"std must be positive, got {tuple(std)}")
    m = np.asarray(mean, np.float64)
    s = np.asarray(std, np.float64)
    return (1.0 / (255.0 * s)).astype(np.float32), (-m / s).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# geometry helpers


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def short_side_size(h: int, w: int, short_side: int) -> tuple[int, int]:
    """(H, W) after resizing so that the short side equals ``short_side`` (aspect ratio kept)."""
    if h <= w:
        return short_side, max(1, _round_half_up(w * short_side / h))
    return max(1, _round_half_up(h * short_side / w)), short_side


def long_side_size(h: int, w: int, long_side: int) -> tuple[int, int]:
    """(H, W) after resizing so that the long side equals ``long_side`` (aspect ratio kept)."""
    if h > w:
        return long_side, max(1, _round_half_up(w * long_side / h))
    return max(1, _round_half_up(h * long_side / w)), long_side


def _resize_pair(image: np.ndarray, label: np.ndarray, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    if image.shape[:2] == hw:
        return image, label
    size = (hw[1], hw[0])
    return (
        cv2.resize(image, size, interpolation=cv2.INTER_LINEAR),
        cv2.resize(label, size, interpolation=cv2.INTER_NEAREST),
    )


def _pad_bottom_right(
    image: np.ndarray, label: np.ndarray, hw: tuple[int, int], ignore_index: int, pad_value: float = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Pad up to ``hw`` (image with ``pad_value``, label with ``ignore_index`` so padding never counts)."""
    h, w = image.shape[:2]
    ph, pw = max(hw[0] - h, 0), max(hw[1] - w, 0)
    if ph == 0 and pw == 0:
        return image, label
    image = cv2.copyMakeBorder(image, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=(pad_value,) * 3)
    label = cv2.copyMakeBorder(label, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=ignore_index)
    return image, label


def _check_pair(image: np.ndarray, label: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be RGB uint8 (H, W, 3), got {image.dtype} {image.shape}")
    if label.ndim != 2 or label.shape != image.shape[:2]:
        raise ValueError(f"label must be (H, W) = {image.shape[:2]}, got {label.shape}")


def _as_uint8_label(label: np.ndarray) -> np.ndarray:
    if label.dtype == np.uint8:
        return label
    if label.size and (label.min() < 0 or label.max() > 255):
        raise ValueError("label values must fit in 0..255 (255 = ignore) for the OpenCV transforms")
    return label.astype(np.uint8)


# --------------------------------------------------------------------------------------------------
# transforms


class TrainTransform:
    """The DSNet/HRNet training augmentation.

    1. optional pre-resize of the short side to ``short_side`` (the authors' ADE20K pipeline);
    2. random scale ``s``: by default ``s = lo + step * k`` with ``k`` uniform in ``0..round((hi-lo)/step)``
       (the reference's ``0.4 + randint(0, 13) / 10``); ``scale_step=None`` draws ``s`` uniformly in
       ``[lo, hi]``. The image is resized so that its LONG side is ``round(base_size * s)``
       (bilinear image, nearest label). Steps 1 and 2 are done as a single resize;
    3. pad bottom/right up to ``crop_size`` (image 0, label ``ignore_index``);
    4. random ``crop_size`` crop; 5. horizontal flip with probability 0.5 (if ``flip``);
    5b. brightness, contrast and saturation jitter (if ``color_jitter`` > 0, see :func:`jitter_colors`);
    5c. the light and camera changes of ``photometric`` (see :mod:`dsnet.data.photometric`), if any is set;
    6. normalise ``(x / 255 - mean) / std``; HWC -> CHW float32 tensor, label int64 tensor.

    ``crop_size`` is ``(H, W)``. Random draws, in order: scale, crop y, crop x, flip, the three jitter factors,
    then the photometric draws.
    """

    def __init__(
        self,
        crop_size: tuple[int, int] | int,
        base_size: int,
        scale_range: tuple[float, float] = (0.4, 1.7),
        scale_step: float | None = 0.1,
        flip: bool = True,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        ignore_index: int = 255,
        short_side: int | None = None,
        multi_scale: bool = True,
        color_jitter: float = 0.0,
        photometric: Photometric | None = None,
    ) -> None:
        self.photometric = photometric if photometric is not None and photometric.active else None
        if not 0 <= color_jitter < 1:
            raise ValueError(f"color_jitter must be in [0, 1), got {color_jitter}")
        self.color_jitter = float(color_jitter)
        if isinstance(crop_size, int):
            crop_size = (crop_size, crop_size)
        crop_size = tuple(int(v) for v in crop_size)
        if len(crop_size) != 2 or min(crop_size) <= 0:
            raise ValueError(f"crop_size must be (H, W) with positive values, got {crop_size}")
        if base_size <= 0:
            raise ValueError(f"base_size must be positive, got {base_size}")
        lo, hi = (float(v) for v in scale_range)
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {scale_range}")
        if scale_step is not None and scale_step <= 0:
            raise ValueError(f"scale_step must be positive or None, got {scale_step}")
        if short_side is not None and short_side <= 0:
            raise ValueError(f"short_side must be positive or None, got {short_side}")
        if not 0 <= ignore_index <= 255:
            raise ValueError(f"ignore_index must be in 0..255, got {ignore_index}")
        self.crop_size: tuple[int, int] = crop_size  # type: ignore[assignment]
        self.base_size = int(base_size)
        self.scale_range = (lo, hi)
        self.scale_step = scale_step
        self.num_scale_steps = None if scale_step is None else _round_half_up((hi - lo) / scale_step)
        self.flip = flip
        self.mean = tuple(mean)
        self.std = tuple(std)
        self.ignore_index = ignore_index
        self.short_side = short_side
        self.multi_scale = multi_scale
        self._scale, self._offset = _norm_consts(mean, std)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(crop_size={self.crop_size}, base_size={self.base_size}, "
            f"scale_range={self.scale_range}, scale_step={self.scale_step}, flip={self.flip}, "
            f"short_side={self.short_side}, multi_scale={self.multi_scale}, color_jitter={self.color_jitter}, "
            f"photometric={self.photometric})"
        )

    def sample_scale(self, rng: np.random.Generator) -> float:
        lo, hi = self.scale_range
        if self.num_scale_steps is None:
            return float(rng.uniform(lo, hi))
        return lo + self.scale_step * int(rng.integers(0, self.num_scale_steps + 1))

    def target_size(self, h: int, w: int, scale: float) -> tuple[int, int]:
        """(H, W) of the resized image, before padding and cropping."""
        if self.short_side is not None:
            h, w = short_side_size(h, w, self.short_side)
        return long_side_size(h, w, _round_half_up(self.base_size * scale))

    def __call__(self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator):
        _check_pair(image, label)
        label = _as_uint8_label(label)
        ch, cw = self.crop_size

        if self.multi_scale:
            scale = self.sample_scale(rng)
            image, label = _resize_pair(image, label, self.target_size(*image.shape[:2], scale))
        elif self.short_side is not None:
            image, label = _resize_pair(image, label, short_side_size(*image.shape[:2], self.short_side))

        image, label = _pad_bottom_right(image, label, (ch, cw), self.ignore_index)
        h, w = label.shape
        y = int(rng.integers(0, h - ch + 1))
        x = int(rng.integers(0, w - cw + 1))
        image = image[y : y + ch, x : x + cw]
        label = label[y : y + ch, x : x + cw]
        if self.flip and rng.random() < 0.5:
            image = image[:, ::-1]
            label = label[:, ::-1]
        if self.color_jitter > 0:
            image = jitter_colors(image, rng, self.color_jitter)
        if self.photometric is not None:
            image = self.photometric(image, rng)
        return _to_tensors(image, label, self._scale, self._offset)


class EvalTransform:
    """Evaluation transform: optional short-side resize of the image, then normalisation. No padding.

    * ``short_side=None`` (Cityscapes, BDD, CamVid): the image keeps its size.
    * ``short_side=N`` (ADE20K: 512): the image is resized (bilinear) so its short side is N; the label
      stays at its ORIGINAL resolution (standard ADE20K evaluation on whole images).

    Padding to the model's size multiple, and cropping the logits back, is the inference code's job
    (it knows the multiple); it resizes the logits to the label size when ``short_side`` is set.
    ``rng`` is accepted for interface compatibility and ignored (evaluation is deterministic).
    """

    def __init__(
        self,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        short_side: int | None = None,
    ) -> None:
        if short_side is not None and short_side <= 0:
            raise ValueError(f"short_side must be positive or None, got {short_side}")
        self.mean = tuple(mean)
        self.std = tuple(std)
        self.short_side = short_side
        self._scale, self._offset = _norm_consts(mean, std)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(short_side={self.short_side})"

    def input_size(self, h: int, w: int) -> tuple[int, int]:
        """(H, W) of the network input for an original image of size (h, w)."""
        return (h, w) if self.short_side is None else short_side_size(h, w, self.short_side)

    def __call__(self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator | None = None):
        _check_pair(image, label)
        label = _as_uint8_label(label)
        hw = self.input_size(*label.shape)
        if hw != image.shape[:2]:
            image = cv2.resize(image, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
        return _to_tensors(image, label, self._scale, self._offset)
