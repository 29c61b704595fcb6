"""Parameter and compute counts of a model, in standard units and in the paper's convention.

Two compute counts are reported because the literature mixes them:

* ``macs`` / ``gflops``: multiply-accumulates of the convolutions as counted by
  ``torch.utils.flop_counter`` (FLOPs = 2 x MACs, decimal giga).
* ``paper_gflops``: what the DSNet paper's tables call "GFLOPs", i.e. the count of thop 0.1.1
  divided by 2**30. thop adds to the convolution MACs (output elements x input channels per
  group x kernel area; no bias term) 4 operations per input element of every affine BatchNorm
  and ``(pool area + 1)`` per output element of every adaptive average pool, counted per module
  call; functional ops (interpolation, additions, sigmoid) count zero. This module reimplements
  those rules with forward hooks; thop itself is not needed.

All counts run on the ``meta`` device (shapes only), so a 1024x2048 profile of DSNet-Base is
instant and allocates no memory. Auxiliary heads are excluded, as in the paper.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from ..models.dsnet import AUX_HEAD_PREFIXES

__all__ = ["profile", "count_parameters"]


def count_parameters(model: nn.Module, *, include_aux: bool = False) -> int:
    """Number of parameters; the auxiliary heads are left out unless ``include_aux``."""
    return sum(
        p.numel() for name, p in model.named_parameters() if include_aux or not name.startswith(AUX_HEAD_PREFIXES)
    )


def _thop_rule(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> int:
    if isinstance(module, nn.modules.conv._ConvNd):
        kernel = 1
        for k in module.weight.shape[2:]:
            kernel *= int(k)
        return output.numel() * (inputs[0].shape[1] // module.groups) * kernel
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        ops = 2 * inputs[0].numel()
        return 2 * ops if module.affine else ops
    if isinstance(module, nn.AvgPool2d):  # thop: one operation per output element
        return output.numel()
    if isinstance(module, nn.AdaptiveAvgPool2d):
        area = 1.0
        for i, o in zip(inputs[0].shape[2:], output.shape[2:]):
            area *= float(i) / float(o)
        return int((area + 1) * output.numel())
    return 0


def _paper_ops(model: nn.Module, x: Tensor) -> int:
    total = 0

    def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal total
        total += _thop_rule(module, inputs, output)

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm, nn.AdaptiveAvgPool2d, nn.AvgPool2d))
    ]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return total


def profile(
    model: nn.Module,
    size: Sequence[int] = (1024, 2048),
    *,
    batch_size: int = 1,
    in_channels: int = 3,
    by_module: bool = False,
) -> dict[str, Any]:
    """Size and cost of ``model`` in eval mode for one ``(H, W)`` input.

    Returns a dict with ``params`` (inference model, no auxiliary heads), ``params_with_aux``,
    ``macs`` (convolution MACs), ``gflops`` (= 2*macs/1e9), ``paper_macs`` (thop-0.1.1 count),
    ``paper_gflops`` (= paper_macs / 2**30), ``size`` and ``batch_size``; with ``by_module`` also
    ``macs_by_module`` (convolution MACs per top-level submodule).
    """
    if len(size) != 2:
        raise ValueError(f"size must be (H, W), got {tuple(size)}")
    h, w = int(size[0]), int(size[1])
    meta_model = copy.deepcopy(model).to("meta").eval()
    x = torch.empty(batch_size, in_channels, h, w, device="meta")

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        meta_model(x)
    counts = counter.get_flop_counts()
    conv_ops = (torch.ops.aten.convolution, torch.ops.aten._convolution, torch.ops.aten.convolution.default)

    def conv_flops(per_op: dict[Any, int]) -> int:
        return sum(v for op, v in per_op.items() if op in conv_ops or "convolution" in str(op))

    flops = conv_flops(counts.get("Global", {}))
    with torch.no_grad():
        paper = _paper_ops(meta_model, x)

    result: dict[str, Any] = {
        "size": (h, w),
        "batch_size": batch_size,
        "params": count_parameters(model),
        "params_with_aux": count_parameters(model, include_aux=True),
        "macs": flops // 2,
        "gflops": flops / 1e9,
        "paper_macs": paper,
        "paper_gflops": paper / 2**30,
    }
    if by_module:
        root = type(meta_model).__name__
        result["macs_by_module"] = {
            name: conv_flops(counts.get(f"{root}.{name}", {})) // 2 for name, _ in model.named_children()
        }
    return result
