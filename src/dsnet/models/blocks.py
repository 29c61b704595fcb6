"""Building blocks of DSNet: residual blocks, MFACB, MSAF and SPASPP.

Module and attribute names follow the authors' implementation so that their state dicts map
onto ours one to one (see ``dsnet.models.weights_reading``). Every block documents the exact order
of operations because numerical identity with the reference depends on it (ReLU placement,
legacy ``nearest`` resizing, the factor 2 in MSAF).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ConvBNReLU",
    "MFACB",
    "MSAF",
    "SPASPP",
    "SegmentationHead",
    "AuxiliaryHead",
    "make_res_layer",
]


def _bn(channels: int) -> nn.BatchNorm2d:
    # eps=1e-5, momentum=0.1 are the reference's values (and PyTorch's defaults).
    return nn.BatchNorm2d(channels, eps=1e-5, momentum=0.1)


def conv_bn(in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1) -> nn.Sequential:
    """Bias-free convolution followed by BatchNorm (no activation); indices ``0`` conv, ``1`` BN."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
        _bn(out_channels),
    )


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 1) -> nn.Sequential:
    """Bias-free convolution, BatchNorm, ReLU; indices ``0`` conv, ``1`` BN, ``2`` ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        _bn(out_channels),
        nn.ReLU(inplace=False),
    )


class _ResidualBlock(nn.Module):
    """A ResNet block: its convolutions (``_build``, ``_body``) plus a shortcut, the final ReLU optional.

    ``no_relu`` None takes the block's own default (``default_no_relu``). Submodules are registered in
    the authors' order (the block's convolutions, then ``downsample``), so the state-dict keys match theirs.
    """

    expansion = 1
    default_no_relu = False

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        no_relu: bool | None = None,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        self._build(inplanes, planes, stride, dilation)
        self.downsample = downsample
        self.no_relu = self.default_no_relu if no_relu is None else no_relu

    def _build(self, inplanes: int, planes: int, stride: int, dilation: int) -> None:
        raise NotImplementedError

    def _body(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self._body(x) + shortcut
        return out if self.no_relu else self.relu(out)


class BasicBlock(_ResidualBlock):
    """ResNet basic block: two 3x3 convs with a shortcut; the final ReLU is optional (default: applied).

    DSNet's stages return the output of their last block *before* its ReLU, so
    ``no_relu=True`` is set on the last block of multi-block stages (see :func:`make_res_layer`).
    """

    def _build(self, inplanes: int, planes: int, stride: int, dilation: int) -> None:
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = _bn(planes)
        self.relu = nn.ReLU(inplace=False)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = _bn(planes)

    def _body(self, x: Tensor) -> Tensor:
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))


class Bottleneck(_ResidualBlock):
    """ResNet bottleneck with expansion 2 (1x1, 3x3 with optional dilation, 1x1).

    Unlike torchvision's, the reference's bottleneck has *no* final ReLU by default.
    """

    expansion = 2
    default_no_relu = True

    def _build(self, inplanes: int, planes: int, stride: int, dilation: int) -> None:
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = _bn(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = _bn(planes * self.expansion)
        self.relu = nn.ReLU(inplace=False)

    def _body(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))


def make_res_layer(
    block: type[BasicBlock] | type[Bottleneck],
    inplanes: int,
    planes: int,
    blocks: int,
    stride: int = 1,
    dilation: int = 1,
) -> nn.Sequential:
    """A stage of ``blocks`` residual blocks, as the reference builds it.

    The first block gets a projection shortcut when the stride or width changes and keeps the
    block's default ``no_relu``; middle blocks end with ReLU; the last block (when there are at
    least two) ends *without* ReLU, so a multi-block stage returns pre-activation features.
    """
    out_planes = planes * block.expansion
    downsample = None
    if stride != 1 or inplanes != out_planes:
        downsample = conv_bn(inplanes, out_planes, 1, stride=stride)
    layers: list[nn.Module] = [block(inplanes, planes, stride, downsample, dilation=dilation)]
    for i in range(1, blocks):
        last = i == blocks - 1
        layers.append(block(out_planes, planes, 1, no_relu=last, dilation=dilation))
    return nn.Sequential(*layers)


class ConvBNReLU(nn.Module):
    """Atrous 3x3 convolution -> BN -> ReLU (the reference's ``ConvX``).

    ``padding = dilation`` keeps the spatial size. (The reference drops the padding entirely when
    ``dilation == 1``; no DSNet layer uses that case, and we keep the size-preserving padding.)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 1) -> None:
        super().__init__()
        padding = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=False)
        self.bn = _bn(out_channels)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(x)))


class MFACB(nn.Module):
    """Multi-scale Fusion Atrous Convolutional Block (paper Sec. 3.3).

    Three atrous 3x3 convolutions run *in cascade* (each feeds the next), so their receptive
    fields grow step by step; their three outputs are concatenated and fused by a 1x1 conv, and a
    1x1-projected shortcut of the input is added. There is no ReLU after the sum (both terms are
    already non-negative).

    Args:
        in_channels: input width.
        inter_channels: width of the three atrous convolutions.
        out_channels: output width.
        dilations: the three atrous rates (DSNet always uses three equal rates).
    """

    def __init__(
        self, in_channels: int, inter_channels: int, out_channels: int, dilations: Sequence[int] = (2, 2, 2)
    ) -> None:
        super().__init__()
        if len(dilations) != 3:
            raise ValueError(f"MFACB takes exactly three dilation rates, got {list(dilations)}")
        self.conv_list = nn.ModuleList(
            [
                ConvBNReLU(in_channels, inter_channels, 3, dilations[0]),
                ConvBNReLU(inter_channels, inter_channels, 3, dilations[1]),
                ConvBNReLU(inter_channels, inter_channels, 3, dilations[2]),
            ]
        )
        self.process1 = conv_bn_relu(in_channels, out_channels, 1)
        self.process2 = conv_bn_relu(3 * inter_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        outs = []
        y = x
        for conv in self.conv_list:
            y = conv(y)
            outs.append(y)
        return self.process2(torch.cat(outs, dim=1)) + self.process1(x)


class AtrousPyramid(nn.Module):
    """The layers SPASPP and its parallel ablation ASPP share: 3x3 atrous ConvBNReLUs with rates 6, 12, 18,
    24 (``conv_list``; their input widths say how they are wired), a global image-pooling branch, a 1x1
    fusion of all branches, a 1x1-projected shortcut and a biased 3x3 conv -> BN -> ReLU at the end.
    A subclass wires the atrous convolutions in :meth:`branches`."""

    rates: tuple[int, ...] = (6, 12, 18, 24)

    def __init__(self, in_channels: int, inter_channels: int, out_channels: int, conv_inputs: list[int]) -> None:
        super().__init__()
        self.conv_list = nn.ModuleList(
            [ConvBNReLU(width, inter_channels, 3, rate) for width, rate in zip(conv_inputs, self.rates, strict=True)]
        )
        self.pooling = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, inter_channels, 1, bias=False),
            _bn(inter_channels),
            nn.ReLU(inplace=False),
        )
        self.process1 = conv_bn_relu(in_channels, out_channels, 1)
        self.process2 = conv_bn_relu((len(self.rates) + 1) * inter_channels, out_channels, 1)
        self.process3 = nn.Sequential(
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=True),
            _bn(out_channels),
            nn.ReLU(inplace=False),
        )

    def branches(self, x: Tensor) -> list[Tensor]:
        """The outputs of the atrous convolutions."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        outs = self.branches(x)
        pooled = self.pooling(x)
        outs.append(F.interpolate(pooled, size=x.shape[-2:], mode="bilinear", align_corners=False))
        return self.process3(self.process2(torch.cat(outs, dim=1)) + self.process1(x))


class SPASPP(AtrousPyramid):
    """Serial-Parallel Atrous Spatial Pyramid Pooling (paper Sec. 3.5).

    Four atrous 3x3 convolutions with rates 6, 12, 18, 24 run in cascade (serial) and all four
    outputs, plus a global image-pooling branch, are concatenated (parallel) and fused by a 1x1
    conv; a 1x1-projected shortcut is added and a biased 3x3 conv -> BN -> ReLU finishes.
    """

    def __init__(self, in_channels: int, inter_channels: int, out_channels: int) -> None:
        widths = [in_channels] + [inter_channels] * (len(self.rates) - 1)
        super().__init__(in_channels, inter_channels, out_channels, widths)

    def branches(self, x: Tensor) -> list[Tensor]:
        outs = []
        y = x
        for conv in self.conv_list:
            y = conv(y)
            outs.append(y)
        return outs


def _attention_bottleneck(channels: int, inter: int, pool: int | None) -> nn.Sequential:
    """conv(bias) -> BN -> ReLU -> conv(bias) -> BN, optionally preceded by an adaptive pool."""
    layers: list[nn.Module] = [] if pool is None else [nn.AdaptiveAvgPool2d(pool)]
    layers += [
        nn.Conv2d(channels, inter, 1, bias=True),
        _bn(inter),
        nn.ReLU(inplace=False),
        nn.Conv2d(inter, channels, 1, bias=True),
        _bn(channels),
    ]
    return nn.Sequential(*layers)


class MSAF(nn.Module):
    """Multi-Scale Attention Fusion of a spatial and a context feature map (paper Sec. 3.4).

    The attention weight ``a = sigmoid(pixel + global + region4 + region8 + region16)`` is computed
    from ``spatial + context``: a pixel-level branch at full resolution, a global (1x1) branch
    and region branches pooled to 4x4, 8x8 and 16x16 and resized back with legacy ``nearest``
    interpolation. The output is ``2*a*spatial + 2*(1-a)*context``; the factor 2 is the
    reference's (inherited from AFF), not the paper's figure.

    Args:
        channels: width of both inputs and of the output.
        reduction: bottleneck reduction of every attention branch (inter = channels // reduction).
        region_sizes: pooled sizes of the region branches.
    """

    def __init__(self, channels: int = 64, reduction: int = 4, region_sizes: Sequence[int] = (4, 8, 16)) -> None:
        super().__init__()
        inter = channels // reduction
        self.region_sizes = tuple(region_sizes)
        self.local_att = _attention_bottleneck(channels, inter, None)
        for i, size in enumerate(self.region_sizes, start=1):
            self.add_module(f"context{i}", _attention_bottleneck(channels, inter, size))
        self.global_att = _attention_bottleneck(channels, inter, 1)
        self.sigmoid = nn.Sigmoid()

    def attention(self, spatial: Tensor, context: Tensor) -> Tensor:
        """The fusion weight ``a`` in [0, 1] given to the spatial input."""
        xa = spatial + context
        size = xa.shape[-2:]
        logits = self.local_att(xa) + self.global_att(xa)
        for i in range(1, len(self.region_sizes) + 1):
            region = getattr(self, f"context{i}")(xa)
            logits = logits + F.interpolate(region, size=size, mode="nearest")
        return self.sigmoid(logits)

    def forward(self, spatial: Tensor, context: Tensor) -> Tensor:
        wei = self.attention(spatial, context)
        return 2 * spatial * wei + 2 * context * (1 - wei)


class SegmentationHead(nn.Module):
    """The main classifier (the reference's ``segmenthead_c``): ReLU -> 3x3 conv -> BN -> ReLU -> 1x1 conv.

    There is no BN on the input (hence no ``bn1``); the BN is named ``bn2`` as in the reference.
    """

    def __init__(self, in_channels: int, inter_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, inter_channels, 3, padding=1, bias=False)
        self.bn2 = _bn(inter_channels)
        self.relu = nn.ReLU(inplace=False)
        self.conv2 = nn.Conv2d(inter_channels, num_classes, 1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(self.relu(x))
        return self.conv2(self.relu(self.bn2(x)))


class AuxiliaryHead(nn.Module):
    """Training-only classifier (the reference's ``segmenthead``): BN -> ReLU -> 3x3 conv -> BN -> ReLU -> 1x1 conv."""

    def __init__(self, in_channels: int, inter_channels: int, num_classes: int) -> None:
        super().__init__()
        self.bn1 = _bn(in_channels)
        self.conv1 = nn.Conv2d(in_channels, inter_channels, 3, padding=1, bias=False)
        self.bn2 = _bn(inter_channels)
        self.relu = nn.ReLU(inplace=False)
        self.conv2 = nn.Conv2d(inter_channels, num_classes, 1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(self.relu(self.bn1(x)))
        return self.conv2(self.relu(self.bn2(x)))
