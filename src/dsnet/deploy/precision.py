"""Narrow-number inference as a transform of the same module: bf16 for PyTorch, by autocast or by a cast.

``autocast``: convolutions and matrix products run in bf16, the ops autocast keeps in float32 (softmax,
reductions, interpolation) stay there; ``cast``: every weight and activation is bf16 (the fastest form on
CPUs with native bf16, but the final logits are rounded to bf16 too). Either way the wrapper takes and
returns float32, so the code around the model (padding, flips, argmax, softmax) does not change.
Which of the two ``--precision bf16`` uses is measured in ``benchmarks/precision_accuracy.py``.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from ..errors import ConfigError

__all__ = ["BF16_MODES", "DEFAULT_BF16_MODE", "Bf16Module", "to_bf16"]

#: how a PyTorch module runs bf16
BF16_MODES = ("autocast", "cast")
#: what ``--precision bf16`` uses for PyTorch (predict and bench alike)
DEFAULT_BF16_MODE = "autocast"


class Bf16Module(nn.Module):
    """``module`` run in bf16 (``mode`` autocast or cast), float32 in and out; ``input_multiple`` and the
    module's other attributes the inference code reads stay visible."""

    def __init__(self, module: nn.Module, mode: str = DEFAULT_BF16_MODE) -> None:
        super().__init__()
        if mode not in BF16_MODES:
            raise ConfigError(f"bf16 mode {mode!r}: expected one of {', '.join(BF16_MODES)}")
        self.mode = mode
        self.module = module.to(torch.bfloat16) if mode == "cast" else module
        self.input_multiple = int(getattr(module, "input_multiple", 8))
        self.num_classes = getattr(module, "num_classes", None)

    def forward(self, x: Tensor) -> Tensor:
        if self.mode == "cast":
            out = self.module(x.to(torch.bfloat16))
        else:
            with torch.autocast(x.device.type, dtype=torch.bfloat16):
                out = self.module(x)
        return out.float()


def to_bf16(model: nn.Module, mode: str = DEFAULT_BF16_MODE) -> Bf16Module:
    """A bf16 form of a copy of ``model`` (the input model is left untouched)."""
    return Bf16Module(copy.deepcopy(model).eval(), mode)
