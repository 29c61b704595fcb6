"""Training losses of DSNet: OHEM cross-entropy on the main output, plain cross-entropy on the aux heads.

Semantics follow the authors' training code (see ``DSNET_REFERENCE.md`` §3.1), with the crashes and
NaNs of the reference fixed:

* a batch in which every pixel is ignored gives a loss of exactly 0 that is still connected to the
  autograd graph (``backward()`` works and produces zero gradients);
* ``DSNetLoss(ohem=False)`` uses plain cross-entropy on the main output (the reference raises
  ``NameError`` there);
* logits whose spatial size differs from the label are bilinearly resized to the label size with
  ``align_corners=False`` (the reference uses ``MODEL.ALIGN_CORNERS``, default ``True``, but the
  branch is never taken there because all outputs already have the crop size).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .label_checks import check_label_values

__all__ = [
    "CITYSCAPES_CLASS_WEIGHTS",
    "CrossEntropy",
    "DSNetLoss",
    "LossOutput",
    "OhemCrossEntropy",
    "check_labels",
    "label_edges",
]

#: Per-class weights used by the authors for Cityscapes (19 train ids, HRNet/PIDNet values).
CITYSCAPES_CLASS_WEIGHTS: tuple[float, ...] = (
    0.8373,
    0.918,
    0.866,
    1.0345,
    1.0166,
    0.9969,
    0.9754,
    1.0489,
    0.8786,
    1.0023,
    0.9539,
    0.9843,
    1.1116,
    0.9037,
    1.0865,
    1.0955,
    1.0865,
    1.1529,
    1.0507,
)


def check_labels(target: Tensor, num_classes: int, ignore_index: int = 255) -> None:
    """Raise ``ValueError`` if ``target`` holds a value outside ``[0, num_classes) ∪ {ignore_index}``."""
    check_label_values(target, num_classes, ignore_index, name="label")


def _prepare(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Check shapes/dtypes, upcast half logits, make labels int64, resize logits to the label size."""
    if logits.dim() != 4:
        raise ValueError(f"logits must be N x C x H x W, got shape {tuple(logits.shape)}")
    if target.dim() != 3:
        raise ValueError(f"target must be N x H x W, got shape {tuple(target.shape)}")
    if logits.shape[0] != target.shape[0]:
        raise ValueError(f"batch size mismatch: logits {tuple(logits.shape)} vs target {tuple(target.shape)}")
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise TypeError(f"target must be an integer tensor, got {target.dtype}")
    if target.dtype != torch.int64:
        target = target.long()
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    if logits.shape[-2:] != target.shape[-2:]:
        logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
    return logits, target


@torch.no_grad()
def label_edges(target: Tensor, width: int, ignore_index: int = 255) -> Tensor:
    """Boolean ``N x H x W``: the labelled pixels with a pixel of another class within ``width`` pixels
    (a square window). Ignored pixels are never edges and do not make their neighbours edges."""
    valid = target != ignore_index
    t = target.to(torch.float32).unsqueeze(1)
    k, pad = 2 * width + 1, width
    low = torch.where(valid.unsqueeze(1), t, torch.full_like(t, -1.0))
    high = torch.where(valid.unsqueeze(1), -t, torch.full_like(t, -1.0e4))
    largest = F.max_pool2d(low, k, stride=1, padding=pad)
    smallest = -F.max_pool2d(high, k, stride=1, padding=pad)
    return valid & (largest != smallest).squeeze(1)


def _zero_loss(logits: Tensor) -> Tensor:
    """A scalar 0 that is connected to the graph of ``logits`` (gradients are zeros)."""
    return logits.sum() * 0.0


def _weight_buffer(weight: Tensor | Sequence[float] | None) -> Tensor | None:
    if weight is None:
        return None
    # Kept in float64 (exact for float64 inputs); cast to the logits dtype when used.
    w = torch.as_tensor(weight, dtype=torch.float64).detach().clone()
    if w.dim() != 1:
        raise ValueError(f"class weights must be 1-D, got shape {tuple(w.shape)}")
    return w


def _check_smoothing(value: float) -> float:
    if not 0 <= value < 1:
        raise ValueError(f"label_smoothing must be in [0, 1), got {value}")
    return float(value)


class CrossEntropy(nn.Module):
    """``nn.CrossEntropyLoss(weight, ignore_index)`` with mean (weight-normalised) reduction.

    ``loss = sum_i w[y_i] * ce_i / sum_i w[y_i]`` over non-ignored pixels. Differences from PyTorch:
    when every pixel is ignored the result is 0 (graph-connected) instead of NaN, and logits are
    bilinearly resized (``align_corners=False``) to the label size when the sizes differ.
    The class weights are a non-persistent buffer (moved by ``.to()``, not saved in ``state_dict``).
    """

    weight: Tensor | None

    def __init__(
        self, weight: Tensor | Sequence[float] | None = None, ignore_index: int = 255, label_smoothing: float = 0.0
    ) -> None:
        super().__init__()
        self.ignore_index = int(ignore_index)
        self.label_smoothing = _check_smoothing(label_smoothing)
        self.register_buffer("weight", _weight_buffer(weight), persistent=False)

    def forward(self, logits: Tensor, target: Tensor, pixel_weight: Tensor | None = None) -> Tensor:
        """``pixel_weight`` (``N x H x W``, label size) scales each pixel's term and its share of the denominator."""
        logits, target = _prepare(logits, target)
        weight = None if self.weight is None else self.weight.to(device=logits.device, dtype=logits.dtype)
        reduction = "sum" if pixel_weight is None else "none"
        total = F.cross_entropy(
            logits,
            target,
            weight=weight,
            ignore_index=self.ignore_index,
            reduction=reduction,
            label_smoothing=self.label_smoothing,
        )
        valid = (target != self.ignore_index).to(logits.dtype)
        if pixel_weight is not None:
            total = (total * pixel_weight).sum()
            valid = valid * pixel_weight
        if weight is None:
            denom = valid.sum()
        else:
            safe = torch.where(target != self.ignore_index, target, torch.zeros_like(target))
            denom = (weight[safe] * valid).sum()
        # When nothing is valid, total is an exact (graph-connected) 0 and the denominator is 0: divide
        # by 1 instead so that neither the value nor the gradient becomes NaN.
        denom = torch.where(denom > 0, denom, torch.ones_like(denom))
        return total / denom

    def extra_repr(self) -> str:
        return f"ignore_index={self.ignore_index}, weighted={self.weight is not None}"


class OhemCrossEntropy(nn.Module):
    """Online hard example mining cross-entropy, as in the authors' code (reference §3.1).

    Over the whole batch of one forward call:

    1. ``l_i`` = per-pixel cross-entropy with class weights (``reduction='none'``), ignore pixels
       excluded;
    2. ``p_i`` = softmax probability of the ground-truth class, for the ``n`` valid pixels;
    3. ``threshold = max(sorted(p)[min(min_kept, n - 1)], thresh)``;
    4. loss = plain (not weight-normalised) mean of ``l_i`` over the valid pixels with
       ``p_i < threshold``.

    The probabilities and the selection are computed without gradient. Edge cases (no NaN, no crash):

    * no valid pixel: returns 0 connected to the graph of ``logits``;
    * empty selection (only possible with ties, e.g. all probabilities equal to the k-th one, or
      with ``min_kept=0`` and every pixel at least ``thresh``): the selection falls back to
      ``p_i <= threshold``, which always contains the k-th pixel, so the loss is the mean over the
      hardest pixel(s) — consistent with "keep at least ``min_kept`` pixels".

    Labels are int64 ``N x H x W`` (other integer dtypes are converted); logits ``N x C x h x w``
    are bilinearly resized (``align_corners=False``) to ``H x W`` when the sizes differ. Half
    precision logits are upcast to float32. The class weights are a non-persistent buffer.
    """

    weight: Tensor | None

    def __init__(
        self,
        thresh: float = 0.9,
        min_kept: int = 131072,
        ignore_index: int = 255,
        weight: Tensor | Sequence[float] | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        if min_kept < 0:
            raise ValueError(f"min_kept must be >= 0, got {min_kept}")
        self.label_smoothing = _check_smoothing(label_smoothing)
        self.thresh = float(thresh)
        self.min_kept = int(min_kept)
        self.ignore_index = int(ignore_index)
        self.register_buffer("weight", _weight_buffer(weight), persistent=False)

    @torch.no_grad()
    def select(self, logits: Tensor, target: Tensor) -> Tensor:
        """Boolean ``N x H x W`` mask of the pixels that enter the loss (no gradient).

        ``logits`` and ``target`` must already have the same spatial size.
        """
        valid = target != self.ignore_index
        n_valid = int(valid.sum())
        if n_valid == 0:
            return valid
        safe = torch.where(valid, target, torch.zeros_like(target))
        prob = F.softmax(logits.detach(), dim=1).gather(1, safe.unsqueeze(1)).squeeze(1)
        k = min(self.min_kept, n_valid - 1)
        kth = prob[valid].kthvalue(k + 1).values  # == sorted ascending [k]
        threshold = torch.clamp(kth, min=self.thresh)
        selected = valid & (prob < threshold)
        if not bool(selected.any()):
            selected = valid & (prob <= threshold)
        return selected

    def forward(self, logits: Tensor, target: Tensor, pixel_weight: Tensor | None = None) -> Tensor:
        """``pixel_weight`` (``N x H x W``, label size) scales each selected pixel's loss before the mean."""
        logits, target = _prepare(logits, target)
        selected = self.select(logits, target)
        if not bool(selected.any()):
            return _zero_loss(logits)
        weight = None if self.weight is None else self.weight.to(device=logits.device, dtype=logits.dtype)
        pixel_losses = F.cross_entropy(
            logits,
            target,
            weight=weight,
            ignore_index=self.ignore_index,
            reduction="none",
            label_smoothing=self.label_smoothing,
        )
        if pixel_weight is not None:
            pixel_losses = pixel_losses * pixel_weight
        return pixel_losses[selected].mean()

    def extra_repr(self) -> str:
        return (
            f"thresh={self.thresh}, min_kept={self.min_kept}, ignore_index={self.ignore_index}, "
            f"weighted={self.weight is not None}"
        )


class LossOutput(NamedTuple):
    """Result of :class:`DSNetLoss`.

    ``total`` carries the gradient; the named terms are *unweighted* and detached (for logging).
    ``aux_p``/``aux_d`` are ``None`` when the model output had no auxiliary logits.
    """

    total: Tensor
    main: Tensor
    aux_p: Tensor | None = None
    aux_d: Tensor | None = None

    def as_floats(self) -> dict[str, float]:
        """The non-``None`` entries as Python floats (one device sync each)."""
        return {name: float(value.detach()) for name, value in self._asdict().items() if value is not None}


class DSNetLoss(nn.Module):
    """The DSNet training objective (reference §3.1).

    ``total = w0 * main + w1 * aux_p + w2 * aux_d`` with ``(w0, w1, w2) = loss_weights`` (authors:
    0.6, 0.2, 0.2), ``main`` = :class:`OhemCrossEntropy` (or :class:`CrossEntropy` when
    ``ohem=False``) and the aux terms = :class:`CrossEntropy`, all with the same class weights.

    ``forward(outputs, target)`` accepts a :class:`dsnet.DSNetOutput` or any sequence
    ``(main, aux_p, aux_d)`` in that order (note: the authors' list order is ``[aux_p, main, aux_d]``;
    convert it first), or a single logits tensor — then only the main term is used, with weight 1.0
    (``total == main``), e.g. for a model built without aux heads.

    ``boundary_weight`` > 0 scales the main term of the pixels within ``boundary_width`` pixels of a
    label edge (:func:`label_edges`) by ``1 + boundary_weight``: the thin classes (poles, signs, people)
    are mostly edge, and their shape, not their texture, is what carries over to an unseen street.

    Labels are validated: a value outside ``[0, num_classes) ∪ {ignore_index}`` raises ``ValueError``.
    """

    def __init__(
        self,
        num_classes: int,
        class_weights: Tensor | Sequence[float] | None = None,
        ohem: bool = True,
        ohem_thresh: float = 0.9,
        ohem_min_kept: int = 131072,
        ignore_index: int = 255,
        loss_weights: Sequence[float] = (0.6, 0.2, 0.2),
        label_smoothing: float = 0.0,
        boundary_weight: float = 0.0,
        boundary_width: int = 2,
    ) -> None:
        super().__init__()
        if boundary_weight < 0 or boundary_width < 1:
            raise ValueError(
                f"boundary_weight must be >= 0 and boundary_width >= 1, got {boundary_weight} and {boundary_width}"
            )
        self.boundary_weight = float(boundary_weight)
        self.boundary_width = int(boundary_width)
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        weights = tuple(float(w) for w in loss_weights)
        if len(weights) != 3:
            raise ValueError(f"loss_weights must have 3 entries (main, aux_p, aux_d), got {len(weights)}")
        if class_weights is not None and len(class_weights) != num_classes:
            raise ValueError(f"class_weights has {len(class_weights)} entries, expected num_classes={num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.loss_weights = weights
        self.ohem = bool(ohem)
        if self.ohem:
            self.main_loss: nn.Module = OhemCrossEntropy(
                ohem_thresh, ohem_min_kept, ignore_index, class_weights, label_smoothing
            )
        else:
            self.main_loss = CrossEntropy(class_weights, ignore_index, label_smoothing)
        self.aux_loss = CrossEntropy(class_weights, ignore_index, label_smoothing)

    def forward(self, outputs: Tensor | Sequence[Tensor], target: Tensor) -> LossOutput:
        if isinstance(outputs, Tensor):
            main_logits, aux = outputs, None
        else:
            outs = tuple(outputs)
            if len(outs) != 3:
                raise ValueError(f"expected (main, aux_p, aux_d) outputs, got {len(outs)} tensors")
            main_logits, aux = outs[0], outs[1:]
        if main_logits.dim() == 4 and main_logits.shape[1] != self.num_classes:
            raise ValueError(f"logits have {main_logits.shape[1]} channels, expected num_classes={self.num_classes}")
        check_labels(target, self.num_classes, self.ignore_index)

        main = self.main_loss(main_logits, target, self._pixel_weight(target))
        if aux is None:
            return LossOutput(total=main, main=main.detach())
        aux_p = self.aux_loss(aux[0], target)
        aux_d = self.aux_loss(aux[1], target)
        w0, w1, w2 = self.loss_weights
        total = w0 * main + w1 * aux_p + w2 * aux_d
        return LossOutput(total=total, main=main.detach(), aux_p=aux_p.detach(), aux_d=aux_d.detach())

    def _pixel_weight(self, target: Tensor) -> Tensor | None:
        """``1 + boundary_weight`` near a label edge, 1 elsewhere; ``None`` when the boundary term is off."""
        if self.boundary_weight == 0:
            return None
        edges = label_edges(target.long(), self.boundary_width, self.ignore_index)
        return 1.0 + self.boundary_weight * edges.to(torch.float32)

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, ohem={self.ohem}, loss_weights={self.loss_weights}, "
            f"boundary_weight={self.boundary_weight}"
        )
