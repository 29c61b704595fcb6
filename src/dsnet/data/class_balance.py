"""Class weights from the training labels' statistics, for data sets where a few thin classes (CamVid's
poles, signs, cyclists) carry as much of the mIoU as the large ones but few of the pixels.

Median frequency balancing (Eigen & Fergus 2015, used by SegNet on CamVid): ``freq(c)`` is the pixel
count of class ``c`` divided by the pixel count of the images where ``c`` occurs, and the weight is
``median(freq) / freq(c)``; its square root is a milder version of the same.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["CLASS_BALANCE_METHODS", "class_pixel_counts", "balanced_class_weights"]

#: the names ``data.class_weights`` accepts for weights computed from the training labels
CLASS_BALANCE_METHODS = ("median_frequency", "sqrt_median_frequency")


def class_pixel_counts(dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per class: (labelled pixels over the whole split, pixels of the images where the class occurs).

    Reads only the label files of ``dataset`` (a :class:`~dsnet.data.SegmentationDataset`), decoded to
    training ids; ignored pixels count nowhere.
    """
    n = dataset.num_classes
    pixels = np.zeros(n, dtype=np.int64)
    image_pixels = np.zeros(n, dtype=np.int64)
    for _, label_path in dataset.samples:
        label = dataset.decode_label(dataset.read_label(label_path), label_path)
        counts = np.bincount(label.ravel(), minlength=256)[:n]
        pixels += counts
        image_pixels[counts > 0] += int(counts.sum())
    return pixels, image_pixels


def balanced_class_weights(pixels: np.ndarray, image_pixels: np.ndarray, method: str) -> list[float]:
    """Weights per class by ``method`` (one of :data:`CLASS_BALANCE_METHODS`); a class absent from every
    label gets the largest weight of the others (it cannot contribute to the loss anyway)."""
    if method not in CLASS_BALANCE_METHODS:
        raise ValueError(f"unknown class balance {method!r}; known: {', '.join(CLASS_BALANCE_METHODS)}")
    present = pixels > 0
    if not present.any():
        raise ValueError("no labelled pixel in the training labels: cannot compute class weights")
    freq = np.zeros(len(pixels), dtype=np.float64)
    freq[present] = pixels[present] / image_pixels[present]
    weights = np.zeros_like(freq)
    weights[present] = np.median(freq[present]) / freq[present]
    if method == "sqrt_median_frequency":
        weights = np.sqrt(weights)
    weights[~present] = weights[present].max()
    return [float(w) for w in weights]
