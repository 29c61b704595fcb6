"""Effective receptive field (Luo et al. 2016), measured as RepLKNet does.

For each input ``x`` the centre pixel of a layer's output is reduced to a scalar,
``relu(out[:, :, h//2, w//2]).sum()``; its gradient with respect to ``x`` is passed through ReLU
and summed over channels (and the batch). The mean of these maps over the inputs is the ERF: how
much each input pixel can move the centre output. Inputs are real images (normalised like the
model's training data) or random normal tensors, which stand for normalised images.

The *high-contribution area ratio* summarises a map in one number per threshold ``t``. Our
convention (RepLKNet's, made total): the scores are log-scaled, ``s = log10(erf + 1)``, and
rescaled to a maximum of 1; the answer is the smallest centred square of odd side ``2i + 1``
(``i = 0, 1, ...``, centred on pixel ``(H//2, W//2)``, clipped to the map) whose sum reaches
``t`` times the total, reported as its side and its area over the map's area. A map with no
contribution at all has no answer (``None``) rather than an error, and because the square grows
until it covers the whole map, every ``t <= 1`` is otherwise reached. (RepLKNet's script stops
before the map's border and crashes when ``t`` is not reached by then.)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from ..data.io import read_image
from ..errors import ConfigError, DataError
from .tracing import check_size

__all__ = [
    "ERF_THRESHOLDS",
    "ERFResult",
    "effective_receptive_field",
    "high_contribution_ratios",
    "image_inputs",
    "list_images",
    "random_inputs",
]

#: The thresholds RepLKNet reports.
ERF_THRESHOLDS: tuple[float, ...] = (0.2, 0.3, 0.5, 0.99)
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass
class ERFResult:
    """The mean gradient map ``scores`` (H, W) of ``layer`` (``""``: the model output) over ``num_inputs``."""

    scores: np.ndarray
    layer: str
    num_inputs: int

    def ratios(self, thresholds: Sequence[float] = ERF_THRESHOLDS) -> dict[float, tuple[int, float] | None]:
        return high_contribution_ratios(self.scores, thresholds)


class _Stop(Exception):
    """Raised by the capture hook: the rest of the forward pass is not needed."""


def _first_tensor(output: Any) -> Tensor | None:
    if isinstance(output, Tensor):
        return output
    if isinstance(output, (tuple, list)):
        return next((o for o in output if isinstance(o, Tensor)), None)
    return None


def effective_receptive_field(
    model: nn.Module,
    inputs: Iterable[Tensor],
    *,
    layer: str | None = None,
    progress: bool = False,
    total: int | None = None,
) -> ERFResult:
    """ERF of ``layer`` (a name from ``named_modules()``; default: the model's output) over ``inputs``.

    Each input is an ``(N, C, H, W)`` batch, already normalised; all must share one size. The
    model runs in eval mode (restored afterwards) on its own device; its parameters are not changed.
    """
    modules = dict(model.named_modules())
    if layer and layer not in modules:
        raise ConfigError(f"ERF: no layer {layer!r} in {type(model).__name__} (see `dsnet rf` for the names)")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    captured: list[Tensor] = []

    def capture(_module: nn.Module, _args: tuple, output: Any) -> None:
        captured.append(_first_tensor(output))  # type: ignore[arg-type]
        raise _Stop

    handle = modules[layer].register_forward_hook(capture) if layer else None
    was_training = model.training
    model.eval()
    total_map: np.ndarray | None = None
    count = 0
    try:
        for batch in tqdm(inputs, total=total, desc="ERF", unit="input", disable=not progress):
            x = batch.to(device=device, dtype=torch.float32).detach().requires_grad_(True)
            captured.clear()
            try:
                out = model(x)
            except _Stop:
                out = captured[0]
            out = _first_tensor(out)
            if out is None or out.dim() != 4:
                raise ConfigError(f"ERF: the output of {layer or 'the model'!r} is not an (N, C, H, W) map")
            h, w = out.shape[-2:]
            centre = torch.relu(out[:, :, h // 2, w // 2]).sum()
            (grad,) = torch.autograd.grad(centre, x, allow_unused=True) if centre.requires_grad else (None,)
            grad_map = torch.zeros(x.shape[-2:]) if grad is None else torch.relu(grad).sum(dim=(0, 1))
            grad_map = grad_map.detach().double().cpu().numpy()
            if total_map is not None and total_map.shape != grad_map.shape:
                raise ConfigError(f"ERF: inputs of different sizes ({total_map.shape} and {grad_map.shape})")
            total_map = grad_map if total_map is None else total_map + grad_map
            count += 1
    finally:
        if handle is not None:
            handle.remove()
        model.train(was_training)
    if total_map is None:
        raise ConfigError("ERF: no inputs")
    return ERFResult(scores=total_map / count, layer=layer or "", num_inputs=count)


def high_contribution_ratios(
    scores: np.ndarray, thresholds: Sequence[float] = ERF_THRESHOLDS
) -> dict[float, tuple[int, float] | None]:
    """``{t: (side, area ratio)}`` of the smallest centred square holding a share ``t`` of the
    log-scaled contribution (see the module docstring); ``None`` where the map holds no contribution."""
    data = np.log10(np.asarray(scores, dtype=np.float64) + 1.0)
    peak = data.max() if data.size else 0.0
    h, w = data.shape
    result: dict[float, tuple[int, float] | None] = {t: None for t in thresholds}
    if not peak > 0:
        return result
    data = data / peak
    total = data.sum()
    # sums of the centred squares of half-side i = 0, 1, ... until one covers the whole map
    cy, cx = h // 2, w // 2
    integral = np.pad(data, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    pending = sorted(thresholds)
    i = 0
    while pending:
        y0, y1, x0, x1 = max(cy - i, 0), min(cy + i + 1, h), max(cx - i, 0), min(cx + i + 1, w)
        inside = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
        covers_all = y0 == 0 and x0 == 0 and y1 == h and x1 == w
        while pending and (inside >= pending[0] * total * (1 - 1e-12) or covers_all and pending[0] <= 1):
            result[pending.pop(0)] = (2 * i + 1, (y1 - y0) * (x1 - x0) / (h * w))
        if covers_all:
            break  # thresholds above 1 are never reached
        i += 1
    return result


def random_inputs(count: int, size: Sequence[int], channels: int = 3, seed: int = 0) -> Iterator[Tensor]:
    """``count`` standard-normal ``(1, C, H, W)`` inputs from a seeded generator (normalised-image statistics)."""
    h, w = check_size(size)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(count):
        yield torch.randn(1, channels, h, w, generator=generator)


def list_images(folder: str | Path) -> list[Path]:
    """Image files under ``folder`` (recursively, sorted); an error naming the folder if there are none."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder of images")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise DataError(f"{root}: no image files ({', '.join(sorted(_IMAGE_SUFFIXES))})")
    return files


def image_inputs(
    paths: Iterable[str | Path], size: Sequence[int], mean: Sequence[float], std: Sequence[float]
) -> Iterator[Tensor]:
    """Each image resized (short side first) and centre-cropped to ``size``, normalised with ``mean``/``std``
    (RGB, 0-1 scale) into a ``(1, 3, H, W)`` tensor."""
    h, w = check_size(size)
    m = np.asarray(mean, np.float32).reshape(1, 1, 3)
    s = np.asarray(std, np.float32).reshape(1, 1, 3)
    for path in paths:
        image = read_image(path)
        scale = max(h / image.shape[0], w / image.shape[1])
        rh, rw = max(h, round(image.shape[0] * scale)), max(w, round(image.shape[1] * scale))
        image = cv2.resize(image, (rw, rh), interpolation=cv2.INTER_LINEAR)
        y, x = (rh - h) // 2, (rw - w) // 2
        crop = (image[y : y + h, x : x + w].astype(np.float32) / 255.0 - m) / s
        yield torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))[None]
