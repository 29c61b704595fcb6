"""Context modules between the backbone and the decoder (paper Table 6): SPASPP, ASPP, DAPPM or none.

Each takes ``(in_channels, inter_channels, out_channels)`` and keeps the spatial size.

* ``spaspp``: DSNet's serial-parallel pyramid (:class:`dsnet.models.blocks.SPASPP`).
* ``aspp``: the same layers wired in parallel, as the paper's Table 3 contrasts them (ASPP's
  context scales are 6, 12, 18, 24 and the image, SPASPP's the cascades of them). Every atrous
  conv reads the input; the image pooling, the 1x1 fusion, the 1x1 shortcut and the final 3x3
  conv are SPASPP's, so the two differ only in wiring and have equal parameter counts when
  ``in_channels == inter_channels`` (DSNet-head128), and the same state-dict names.
* ``dappm``: the Deep Aggregation Pyramid Pooling Module of DDRNet (Pan et al., 2022): average
  pools with kernels 5/9/17 and strides 2/4/8 plus a global pool, each 1x1-projected, upsampled
  and refined hierarchically by 3x3 convs, concatenated, compressed and added to a 1x1 shortcut
  (pre-activation BN-ReLU-conv units). As in the paper, the intermediate width is not reduced:
  it is ``inter_channels`` (128 for head128, equal to the input).
* ``none``: identity (the decoder reads the fused 1/8 features directly).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import SPASPP, AtrousPyramid, _bn

__all__ = ["ASPP", "DAPPM", "CONTEXT_MODULES", "build_context"]


class ASPP(AtrousPyramid):
    """Atrous spatial pyramid pooling with rates 6/12/18/24 and image pooling, all in parallel."""

    def __init__(self, in_channels: int, inter_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, inter_channels, out_channels, [in_channels] * len(self.rates))

    def branches(self, x: Tensor) -> list[Tensor]:
        return [conv(x) for conv in self.conv_list]


def _bn_relu_conv(
    in_channels: int, out_channels: int, kernel_size: int, pool: nn.Module | None = None
) -> nn.Sequential:
    layers: list[nn.Module] = [] if pool is None else [pool]
    layers += [
        _bn(in_channels),
        nn.ReLU(inplace=False),
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
    ]
    return nn.Sequential(*layers)


class DAPPM(nn.Module):
    """DDRNet's deep aggregation pyramid pooling (see the module docstring)."""

    pools: tuple[tuple[int, int], ...] = ((5, 2), (9, 4), (17, 8))  # (kernel, stride) of the local pools

    def __init__(self, in_channels: int, inter_channels: int, out_channels: int) -> None:
        super().__init__()
        pools: list[nn.Module | None] = [None]
        pools += [nn.AvgPool2d(k, stride=s, padding=k // 2) for k, s in self.pools]
        pools.append(nn.AdaptiveAvgPool2d(1))
        self.scales = nn.ModuleList([_bn_relu_conv(in_channels, inter_channels, 1, pool) for pool in pools])
        self.processes = nn.ModuleList([_bn_relu_conv(inter_channels, inter_channels, 3) for _ in pools[1:]])
        self.compression = _bn_relu_conv(len(pools) * inter_channels, out_channels, 1)
        self.shortcut = _bn_relu_conv(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        outs = [self.scales[0](x)]
        for scale, process in zip(self.scales[1:], self.processes):
            up = F.interpolate(scale(x), size=size, mode="bilinear", align_corners=False)
            outs.append(process(up + outs[-1]))
        return self.compression(torch.cat(outs, dim=1)) + self.shortcut(x)


def _none(in_channels: int, inter_channels: int, out_channels: int) -> nn.Module:
    return nn.Identity()


#: name -> constructor ``(in_channels, inter_channels, out_channels)``; ``spaspp`` is DSNet's.
CONTEXT_MODULES: dict[str, Callable[[int, int, int], nn.Module]] = {
    "spaspp": SPASPP,
    "aspp": ASPP,
    "dappm": DAPPM,
    "none": _none,
}


def build_context(kind: str, in_channels: int, inter_channels: int, out_channels: int) -> nn.Module:
    """A context module of ``kind`` (a key of :data:`CONTEXT_MODULES`); ``none`` keeps ``in_channels``."""
    if kind not in CONTEXT_MODULES:
        raise ValueError(f"unknown context module {kind!r}; choose from {list(CONTEXT_MODULES)}")
    return CONTEXT_MODULES[kind](in_channels, inter_channels, out_channels)
