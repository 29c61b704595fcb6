"""Segmentation metrics: an exact integer confusion matrix and the IoU/accuracy summaries.

Two mIoU conventions are reported (reference §3.4):

* ``miou``: mean IoU over the classes that occur in the ground truth or in the prediction
  (classes with ``GT_c + Pred_c == 0`` have IoU NaN and are skipped) — the usual convention;
* ``miou_reference``: the authors' ``validate()`` convention,
  ``IoU_c = TP_c / max(1, GT_c + Pred_c - TP_c)`` averaged over *all* classes, so a class absent from
  both the ground truth and the prediction counts as 0.

On a full validation set where every class occurs both numbers are identical.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from ..inference import argmax_channels
from .label_checks import check_label_values

__all__ = ["ConfusionMatrix", "SegMetrics", "format_table"]


@dataclass
class SegMetrics:
    """Summary of a confusion matrix. Ratios are in [0, 1]; per-class arrays are float64."""

    iou: np.ndarray
    miou: float
    miou_reference: float
    pixel_accuracy: float
    mean_accuracy: float
    per_class_accuracy: np.ndarray
    num_pixels: int
    confusion: np.ndarray = field(repr=False)  # rows = ground truth, columns = prediction
    num_images: int = 0  # images evaluated (set by the evaluator)
    num_skipped: int = 0  # bad samples dropped (data.on_bad_sample=skip)
    skipped: list[str] = field(default_factory=list, repr=False)  # their messages (this rank)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (NaN -> ``None``; arrays -> lists)."""

        def clean(x: float) -> float | None:
            x = float(x)
            return None if math.isnan(x) else x

        return {
            "miou": clean(self.miou),
            "miou_reference": clean(self.miou_reference),
            "pixel_accuracy": clean(self.pixel_accuracy),
            "mean_accuracy": clean(self.mean_accuracy),
            "num_pixels": int(self.num_pixels),
            "iou": [clean(v) for v in self.iou],
            "per_class_accuracy": [clean(v) for v in self.per_class_accuracy],
            "num_images": int(self.num_images),
            "num_skipped": int(self.num_skipped),
            "skipped": list(self.skipped),
            "confusion_matrix": np.asarray(self.confusion).tolist(),
        }


def _nanmean(x: np.ndarray) -> float:
    """Mean of the non-NaN entries; NaN (without a RuntimeWarning) when there are none."""
    keep = ~np.isnan(x)
    return float(x[keep].mean()) if keep.any() else float("nan")


class ConfusionMatrix:
    """Accumulates an exact ``num_classes x num_classes`` int64 confusion matrix, rows = GT, cols = prediction.

    ``device=None``: the matrix follows the inputs — it is created on the CPU and moved to the
    device of the first ``update`` (so GPU evaluation keeps it on the GPU, as NCCL needs).
    """

    def __init__(self, num_classes: int, ignore_index: int = 255, device: torch.device | str | None = None) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self._follow_inputs = device is None
        self.matrix = torch.zeros(
            self.num_classes,
            self.num_classes,
            dtype=torch.int64,
            device=torch.device("cpu" if device is None else device),
        )

    @property
    def device(self) -> torch.device:
        return self.matrix.device

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add a batch: ``pred`` integer labels (N,H,W) or logits (N,C,H,W) (argmax over C); ``target`` (N,H,W).

        Raises ``ValueError`` on a shape mismatch, on target values outside ``[0, C) ∪ {ignore}``
        and on predicted labels outside ``[0, C)``.
        """
        if target.is_floating_point():
            raise ValueError(f"target must be an integer tensor, got {target.dtype}")
        if pred.dim() == target.dim() + 1:
            if pred.shape[1] != self.num_classes or pred.shape[:1] + pred.shape[2:] != target.shape:
                raise ValueError(
                    f"logits shape {tuple(pred.shape)} does not match target {tuple(target.shape)} "
                    f"with {self.num_classes} classes"
                )
            pred = argmax_channels(pred)
        elif pred.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} does not match target {tuple(target.shape)}")
        elif pred.is_floating_point():
            raise ValueError(f"label predictions must be integers, got {pred.dtype} (pass N x C x H x W logits)")

        target = target.long()
        pred = pred.to(device=target.device, dtype=torch.long)
        check_label_values(target, self.num_classes, self.ignore_index, name="target")
        valid = target != self.ignore_index
        check_label_values(pred[valid], self.num_classes, None, name="prediction")

        index = target[valid] * self.num_classes + pred[valid]
        counts = torch.bincount(index, minlength=self.num_classes**2).view(self.num_classes, self.num_classes)
        if self._follow_inputs:
            self._follow_inputs = False
            self.matrix = self.matrix.to(counts.device)
        self.matrix += counts.to(self.matrix.device)

    def reset(self) -> None:
        self.matrix.zero_()

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add the counts of ``other`` (same classes and ignore index) into this matrix; returns ``self``."""
        if other.num_classes != self.num_classes or other.ignore_index != self.ignore_index:
            raise ValueError(
                f"cannot merge ConfusionMatrix(num_classes={other.num_classes}, ignore_index={other.ignore_index}) "
                f"into ConfusionMatrix(num_classes={self.num_classes}, ignore_index={self.ignore_index})"
            )
        self.matrix += other.matrix.to(self.matrix.device)
        return self

    def all_reduce(self) -> ConfusionMatrix:
        """Sum the matrix over all processes (torch.distributed); a no-op when it is not initialised.

        Counts are summed, not averaged. With the NCCL backend a CPU matrix is reduced on the current
        CUDA device and copied back. Returns ``self``.
        """
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return self
        tensor = self.matrix
        if dist.get_backend() == "nccl" and tensor.device.type != "cuda":
            tensor = tensor.to(torch.device("cuda", torch.cuda.current_device()))
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        if tensor is not self.matrix:
            self.matrix.copy_(tensor)
        return self

    def state_dict(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "ignore_index": self.ignore_index, "matrix": self.matrix.cpu().clone()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if int(state["num_classes"]) != self.num_classes:
            raise ValueError(f"state has num_classes={state['num_classes']}, expected {self.num_classes}")
        if int(state.get("ignore_index", self.ignore_index)) != self.ignore_index:
            raise ValueError(f"state has ignore_index={state['ignore_index']}, expected {self.ignore_index}")
        matrix = torch.as_tensor(state["matrix"])
        if matrix.shape != self.matrix.shape:
            raise ValueError(f"state matrix has shape {tuple(matrix.shape)}, expected {tuple(self.matrix.shape)}")
        self.matrix.copy_(matrix.to(dtype=torch.int64))

    def compute(self) -> SegMetrics:
        """IoU / accuracy summary of the accumulated counts (see the module docstring for conventions).

        With no pixel counted, ``pixel_accuracy``, ``miou`` and ``mean_accuracy`` are NaN and
        ``miou_reference`` is 0.
        """
        cm = self.matrix.cpu().numpy().astype(np.int64)
        tp = np.diag(cm).astype(np.float64)
        gt = cm.sum(axis=1).astype(np.float64)
        pred = cm.sum(axis=0).astype(np.float64)
        union = gt + pred - tp
        total = int(cm.sum())
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.where(gt + pred > 0, tp / union, np.nan)
            recall = np.where(gt > 0, tp / gt, np.nan)
        iou_reference = tp / np.maximum(1.0, union)
        return SegMetrics(
            iou=iou,
            miou=_nanmean(iou),
            miou_reference=float(iou_reference.mean()),
            pixel_accuracy=float(tp.sum() / total) if total > 0 else float("nan"),
            mean_accuracy=_nanmean(recall),
            per_class_accuracy=recall,
            num_pixels=total,
            confusion=cm,
        )

    def __repr__(self) -> str:
        return (
            f"ConfusionMatrix(num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
            f"pixels={int(self.matrix.sum())}, device={self.device})"
        )


def _pct(x: float) -> str:
    return "    -" if math.isnan(x) else f"{100.0 * x:5.2f}"


def format_table(metrics: SegMetrics, class_names: Sequence[str] | None = None) -> str:
    """A plain-text per-class table (class, IoU %, Acc %) followed by the summary lines.

    Classes absent from both GT and prediction show ``-``; without ``class_names`` classes are
    named ``class_<i>``.
    """
    n = len(metrics.iou)
    names = [f"class_{i}" for i in range(n)] if class_names is None else [str(c) for c in class_names]
    if len(names) != n:
        raise ValueError(f"got {len(names)} class names for {n} classes")
    width = max([len("class"), *(len(s) for s in names)])
    lines = [f"{'class':<{width}}  {'IoU %':>6}  {'Acc %':>6}", "-" * (width + 16)]
    for name, iou, acc in zip(names, metrics.iou, metrics.per_class_accuracy):
        lines.append(f"{name:<{width}}  {_pct(iou):>6}  {_pct(acc):>6}")
    lines.append("-" * (width + 16))
    n_present = int(np.count_nonzero(~np.isnan(metrics.iou)))
    lines += [
        f"mIoU (present classes, {n_present}/{n}): {_pct(metrics.miou).strip()}",
        f"mIoU (reference, all {n} classes): {_pct(metrics.miou_reference).strip()}",
        f"pixel accuracy: {_pct(metrics.pixel_accuracy).strip()}",
        f"mean accuracy: {_pct(metrics.mean_accuracy).strip()}",
        f"pixels: {metrics.num_pixels}",
    ]
    return "\n".join(lines)
