"""Photometric augmentation: the changes of light and camera between streets, applied to the image only.

A street the model has never seen differs first in its light (time of day, exposure, white balance) and
its camera (sharpness, sensor noise); the labels do not change. :class:`Photometric` draws one such
change per training sample from its ``rng`` (so a sample is the same whatever the number of workers):

1. brightness, contrast, saturation: factors uniform in ``[1 - x, 1 + x]`` (``x`` = the field's value);
2. hue: a rotation of the hue circle by a fraction uniform in ``[-hue, hue]`` of a full turn;
3. gamma: ``out = 255 * (in / 255) ** g`` with ``log g`` uniform in ``[log(1 - gamma), -log(1 - gamma)]``;
4. blur: with probability ``blur``, a Gaussian blur of sigma uniform in ``[0.3, 1.2]`` pixels;
5. noise: Gaussian pixel noise of standard deviation uniform in ``[0, noise]`` grey levels.

Every draw is made whatever the settings (a zero setting leaves the image alone), so changing one
strength does not shift the random stream of the others. The order of the steps is fixed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

__all__ = ["PHOTOMETRIC_PRESETS", "Photometric", "photometric_from", "scale_light"]

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
_BLUR_SIGMA = (0.3, 1.2)


@dataclass(frozen=True)
class Photometric:
    """Strengths of the photometric changes (0 = off); see the module docstring for each."""

    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    gamma: float = 0.0
    blur: float = 0.0
    noise: float = 0.0

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "saturation", "gamma"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise ValueError(f"photometric {name} must be in [0, 1), got {value}")
        if not 0 <= self.hue <= 0.5:
            raise ValueError(f"photometric hue must be in [0, 0.5] (a fraction of the hue circle), got {self.hue}")
        if not 0 <= self.blur <= 1:
            raise ValueError(f"photometric blur must be a probability in [0, 1], got {self.blur}")
        if not 0 <= self.noise <= 64:
            raise ValueError(f"photometric noise must be in [0, 64] grey levels, got {self.noise}")

    @property
    def active(self) -> bool:
        return any(v > 0 for v in asdict(self).values())

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A changed copy of the uint8 RGB (H, W, 3) ``image``."""
        b, c, s = (float(rng.uniform(1 - x, 1 + x)) for x in (self.brightness, self.contrast, self.saturation))
        hue_shift = float(rng.uniform(-self.hue, self.hue))
        log_g = math.log1p(-self.gamma)
        g = math.exp(float(rng.uniform(log_g, -log_g)))
        blur_now = bool(rng.random() < self.blur)
        sigma = float(rng.uniform(*_BLUR_SIGMA))
        noise_std = float(rng.uniform(0.0, self.noise))
        noise_seed = int(rng.integers(0, 2**31))

        x = np.clip(scale_light(image, b, c, s), 0, 255)
        if hue_shift != 0:
            x = _rotate_hue(x, hue_shift)
        out = (x + 0.5).astype(np.uint8)  # x is in [0, 255]: rounding to uint8 needs no clip
        if g != 1.0:
            out = cv2.LUT(out, _gamma_table(g))
        if blur_now:
            out = cv2.GaussianBlur(out, (0, 0), sigmaX=sigma, sigmaY=sigma)
        if noise_std > 0:
            noise = np.random.default_rng(noise_seed).standard_normal(out.shape, dtype=np.float32) * noise_std
            out = np.clip(out + noise + 0.5, 0, 255).astype(np.uint8)
        return out


def scale_light(image: np.ndarray, brightness: float, contrast: float, saturation: float) -> np.ndarray:
    """Float32 (H, W, 3), not clipped: ``image`` times ``brightness``, its contrast about the mean and its
    saturation about the luma (ITU-R 601) scaled by the other two factors, in that order."""
    x = image.astype(np.float32) * brightness
    mean = x.mean()
    x = (x - mean) * contrast + mean
    gray = (x @ _LUMA)[..., None]
    return (x - gray) * saturation + gray


def _gamma_table(g: float) -> np.ndarray:
    """The 256-entry uint8 table of ``255 * (i / 255) ** g``."""
    return np.clip(255.0 * (np.arange(256) / 255.0) ** g + 0.5, 0, 255).astype(np.uint8)


def _rotate_hue(rgb: np.ndarray, fraction: float) -> np.ndarray:
    """Rotate the hue of a float32 RGB image in [0, 255] by ``fraction`` of a turn (OpenCV's HSV, H in degrees)."""
    hsv = cv2.cvtColor(rgb / 255.0, cv2.COLOR_RGB2HSV)  # float input: H in [0, 360)
    hsv[..., 0] = (hsv[..., 0] + 360.0 * fraction) % 360.0
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255.0


#: named strengths a config can choose with ``data.photometric: <name>``
PHOTOMETRIC_PRESETS: dict[str, Photometric] = {
    "none": Photometric(),
    # the light of another street and time of day, a softer or noisier camera
    "streets": Photometric(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.03, gamma=0.3, blur=0.2, noise=6.0),
}


def photometric_from(value: str | dict | None) -> Photometric:
    """A :class:`Photometric` from a config value: a preset name, a mapping of strengths, or ``None`` (off)."""
    if value is None:
        return Photometric()
    if isinstance(value, str):
        if value not in PHOTOMETRIC_PRESETS:
            raise ValueError(f"unknown photometric preset {value!r}; choose one of {sorted(PHOTOMETRIC_PRESETS)}")
        return PHOTOMETRIC_PRESETS[value]
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(Photometric.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown photometric key(s) {unknown}; known: {sorted(Photometric.__dataclass_fields__)}")
        return Photometric(**{k: float(v) for k, v in value.items()})
    raise ValueError(f"photometric must be a preset name, a mapping or null, got {value!r}")
