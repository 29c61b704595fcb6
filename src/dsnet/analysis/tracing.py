"""What the receptive-field and padding analyses share: a shapes-only copy of a model, its input,
and the branch of DSNet a module belongs to.

The analyses run the model on the ``meta`` device (shapes, no values), so a 1024x2048 pass of
DSNet-Base costs no memory and no arithmetic, and the caller's model is never modified.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..models.dsnet import DSNet

__all__ = ["BRANCHES", "branch_of", "check_size", "input_channels", "meta_copy", "meta_input"]

#: The part of DSNet each top-level submodule belongs to (the paper's Figure 2).
BRANCHES: dict[str, str] = {
    "conv1": "stem",
    "layer1": "stem",
    "layer2": "stem",
    "layer1_a": "detail",
    "layer3": "context",
    "layer4": "context",
    "layer5": "context",
    "compression3": "context",
    "compression4": "context",
    "compression5": "context",
    "layer3_": "spatial",
    "layer4_": "spatial",
    "layer5_": "spatial",
    "aff1": "fusion",
    "aff2": "fusion",
    "aff3": "fusion",
    "spp": "decoder",
    "up8": "decoder",
    "lastlayer": "decoder",
    "seghead_p": "aux",
    "seghead_d": "aux",
}


def branch_of(model: nn.Module, name: str) -> str:
    """``spatial``, ``context``, ``fusion`` ... for a submodule of a DSNet; ``""`` for other models."""
    if not isinstance(model, DSNet):
        return ""
    if name == "":
        return "model"
    return BRANCHES.get(name.split(".", 1)[0], "")


def check_size(size: Sequence[int], what: str = "input size") -> tuple[int, int]:
    """``(H, W)`` as two positive ints, or a :class:`ConfigError` naming the value."""
    values = tuple(size)
    if len(values) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        raise ConfigError(f"{what} must be two positive integers (H, W), got {list(values)}")
    return values  # type: ignore[return-value]


def input_channels(model: nn.Module) -> int:
    """The channels the model takes: its ``in_channels`` attribute, else its first convolution's."""
    channels = getattr(model, "in_channels", None)
    if isinstance(channels, int):
        return channels
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    raise ConfigError(f"{type(model).__name__}: no Conv2d found, cannot tell its input channels")


def meta_copy(model: nn.Module) -> nn.Module:
    """A deep copy on the ``meta`` device in eval mode (the caller's model is left as it is)."""
    return copy.deepcopy(model).to("meta").eval()


def meta_input(model: nn.Module, size: Sequence[int]) -> Tensor:
    """A ``(1, C, H, W)`` meta tensor for ``model``."""
    h, w = check_size(size)
    return torch.empty(1, input_channels(model), h, w, device="meta")
