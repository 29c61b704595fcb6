"""A small, learnable segmentation dataset written by the tests themselves (no ../shared needed).

Layout = SegNet's CamVid release as ``dsnet.data`` reads it: ``images/<split>/*.png``,
``labels/<split>/*.png`` (8-bit ids 0..10, 11 = void) and ``<split>.txt`` lists. Each image is a
few horizontal bands of class colours plus noise, so a model can fit it in a few iterations.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

NUM_CLASSES = 11
VOID = 11


def write_camvid_like(
    root: str | Path,
    splits: dict[str, int] | None = None,
    size: tuple[int, int] = (72, 96),
    seed: int = 0,
) -> Path:
    """Write ``splits`` (name -> number of images) of ``size`` (H, W) under ``root``; returns ``root``."""
    root = Path(root)
    splits = splits or {"train": 8, "val": 3}
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, size=(NUM_CLASSES + 1, 3))
    h, w = size
    for split, count in splits.items():
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        lines = []
        for i in range(count):
            cuts = np.sort(rng.choice(np.arange(8, h - 8), size=3, replace=False))
            classes = rng.choice(NUM_CLASSES, size=4, replace=False)
            label = np.zeros((h, w), np.uint8)
            for k, (top, bottom) in enumerate(zip([0, *cuts], [*cuts, h])):
                label[top:bottom] = classes[k]
            label[:, : w // 16] = VOID  # a void strip, as real labels have
            noise = rng.normal(0, 12, size=(h, w, 3))
            image = np.clip(palette[label] + noise, 0, 255).astype(np.uint8)
            name = f"{split}_{i:03d}.png"
            Image.fromarray(image).save(root / "images" / split / name)
            Image.fromarray(label).save(root / "labels" / split / name)
            lines.append(f"images/{split}/{name} labels/{split}/{name}")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def write_bdd100k_like(
    root: str | Path,
    splits: dict[str, int] | None = None,
    size: tuple[int, int] = (54, 96),
    seed: int = 1,
) -> Path:
    """BDD100K's layout (``images/10k/<split>/*.png``, ``labels/sem_seg/masks/<split>/*.png`` holding
    Cityscapes training ids 0..18, 255 ignored) with the same kind of banded images; returns ``root``."""
    root = Path(root)
    splits = splits or {"train": 3}
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, size=(256, 3))
    h, w = size
    for split, count in splits.items():
        images, labels = root / "images" / "10k" / split, root / "labels" / "sem_seg" / "masks" / split
        images.mkdir(parents=True, exist_ok=True)
        labels.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            cuts = np.sort(rng.choice(np.arange(6, h - 6), size=4, replace=False))
            classes = rng.choice(19, size=5, replace=False)
            label = np.zeros((h, w), np.uint8)
            for k, (top, bottom) in enumerate(zip([0, *cuts], [*cuts, h])):
                label[top:bottom] = classes[k]
            label[-4:] = 255  # the ego vehicle's bonnet, ignored as in BDD100K
            image = np.clip(palette[label] + rng.normal(0, 12, size=(h, w, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(image).save(images / f"{split}_{i:03d}.png")
            Image.fromarray(label).save(labels / f"{split}_{i:03d}.png")
    return root
