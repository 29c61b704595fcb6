"""Adaptive average pooling as two matrix products, exact at any input size and exportable.

``nn.AdaptiveAvgPool2d`` has no fixed kernel when the input size is not a multiple of the
output size, so the TorchScript ONNX exporter refuses it there and the dynamo exporter with
dynamic H/W bakes in the example's kernel (wrong at every other size). Adaptive pooling is
linear: ``out = P_h @ x @ P_w^T`` with pooling matrices built here from the *runtime* shape,
using PyTorch's bins (bin ``i`` of ``n`` over length ``L`` spans
``[floor(i*L/n), ceil((i+1)*L/n))``). Only the deploy transform swaps it in; the model's own
eager forward keeps ``nn.AdaptiveAvgPool2d``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["MatmulAdaptiveAvgPool2d", "pooling_matrix", "replace_adaptive_pools"]


def pooling_matrix(length: int | torch.SymInt, bins: int, like: Tensor) -> Tensor:
    """The ``(bins, length)`` matrix whose row ``i`` averages bin ``i`` of a ``length``-long axis.

    Built with tensor ops only (no Python branches on ``length``), so a traced graph keeps it a
    function of the input shape.
    """
    i = torch.arange(bins, device=like.device, dtype=torch.int64).unsqueeze(1)  # (bins, 1)
    j = torch.arange(length, device=like.device, dtype=torch.int64).unsqueeze(0)  # (1, length)
    start = torch.div(i * length, bins, rounding_mode="floor")
    end = torch.div((i + 1) * length + bins - 1, bins, rounding_mode="floor")
    inside = (j >= start) & (j < end)
    return inside.to(like.dtype) / (end - start).to(like.dtype)


def _pair(size: int | None | tuple[int | None, ...]) -> tuple[int | None, int | None]:
    if isinstance(size, (tuple, list)):
        return size[0], size[1]
    return size, size


class MatmulAdaptiveAvgPool2d(nn.Module):
    """Drop-in for ``nn.AdaptiveAvgPool2d``: the same result, as matrix products (or a mean for 1x1).

    An output size of ``None`` on an axis keeps that axis, as in PyTorch.
    """

    def __init__(self, output_size: int | None | tuple[int | None, ...]) -> None:
        super().__init__()
        self.output_size = _pair(output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"

    def forward(self, x: Tensor) -> Tensor:
        oh, ow = self.output_size
        if oh == 1 and ow == 1:  # global pooling: a plain mean exports everywhere
            return x.mean(dim=(-2, -1), keepdim=True)
        if ow is not None:
            x = torch.matmul(x, pooling_matrix(x.shape[-1], ow, x).transpose(0, 1))
        if oh is not None:
            x = torch.matmul(pooling_matrix(x.shape[-2], oh, x), x)
        return x


def replace_adaptive_pools(model: nn.Module) -> int:
    """Swap every ``nn.AdaptiveAvgPool2d`` in ``model`` (in place) for the matrix version; returns how many."""
    targets = [(name, m) for name, m in model.named_modules() if type(m) is nn.AdaptiveAvgPool2d]
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, MatmulAdaptiveAvgPool2d(module.output_size))
    return len(targets)
