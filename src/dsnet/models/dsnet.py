"""The DSNet network (dual-branch, output stride 8) and its registered variants.

One definition serves training, evaluation, speed tests and export: the two auxiliary heads
run only when asked for (by default in training mode), and BN folding is a transform of this
same module (``dsnet.deploy``), never a second copy of the network.

Submodule names equal the authors' (``layer3_``, ``aff1``, ``lastlayer`` ...) and are
registered in their order, so ``state_dict()`` has their keys in their order.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..constants import round_up
from .blocks import (
    MFACB,
    AuxiliaryHead,
    BasicBlock,
    Bottleneck,
    SegmentationHead,
    conv_bn,
    make_res_layer,
)
from .context import CONTEXT_MODULES, build_context
from .context_branch import CONTEXT_BLOCKS, basic_stage
from .fusion import FUSIONS, build_fusion

__all__ = [
    "DSNet",
    "DSNetArch",
    "DSNetOutput",
    "AUX_HEAD_PREFIXES",
    "CLASSIFIER_PREFIXES",
    "DECODER_PREFIXES",
    "build_dsnet",
]

#: Submodules that exist only for training (deep supervision).
AUX_HEAD_PREFIXES: tuple[str, ...] = ("seghead_p.", "seghead_d.")
#: Submodules that the authors' ImageNet encoder checkpoints do not cover.
DECODER_PREFIXES: tuple[str, ...] = ("spp.", "layer1_a.", "up8.", "lastlayer.") + AUX_HEAD_PREFIXES
#: The layers whose output channels are the classes (re-initialised when fine-tuning to other classes).
CLASSIFIER_PREFIXES: tuple[str, ...] = ("lastlayer.conv2.", "seghead_p.conv2.", "seghead_d.conv2.")


class DSNetOutput(NamedTuple):
    """Outputs of a forward pass with auxiliary heads, all at input resolution.

    ``aux_p`` is predicted from the spatial branch after the first fusion (stage 3), ``aux_d``
    after the second fusion (stage 4). (The authors return the list ``[aux_p, main, aux_d]``.)
    """

    main: Tensor
    aux_p: Tensor
    aux_d: Tensor


#: Which branches a network has: both (DSNet), or one of them alone (paper Table 1, rows 1-2).
BRANCHES: tuple[str, ...] = ("dual", "context", "spatial")


@dataclass(frozen=True)
class DSNetArch:
    """Everything that distinguishes one DSNet variant from another.

    The defaults are DSNet-head128. ``planes`` is the stem width ``P``; the spatial branch runs
    at ``4P`` and the context branch at up to ``8P`` channels.
    """

    planes: int = 32
    spatial_depth: int = 2  # BasicBlocks in layer3_ and layer4_ (the authors' ``n``)
    context_stage3_dilations: tuple[int, ...] = (2, 2, 3)  # one MFACB per rate
    context_stage4_dilations: tuple[int, ...] = (3, 5)  # one MFACB per rate
    context_stage5_dilation: int = 5  # the dilated bottleneck ``layer5``
    spp_channels: int = 128  # SPASPP inter and output width
    head_channels: int = 128  # up8 output and main-head width ("head128")
    detail_channels: int = 32  # width of the 1/4-resolution detail block ``layer1_a``
    msaf_reduction: int = 4
    msaf_region_sizes: tuple[int, ...] = (4, 8, 16)
    # Ablation switches (paper Tables 1, 4, 5, 6); the defaults are DSNet itself.
    fusion: str = "msaf"  # the three lateral fusions: msaf | add | aff | iaff (dsnet.models.fusion)
    context: str = "spaspp"  # the context module before the decoder: spaspp | aspp | dappm | none
    branches: str = "dual"  # dual | context (context branch only) | spatial (spatial branch only)
    context_block: str = "mfacb"  # blocks of context stages 3-4: mfacb | basic (BasicBlocks, Table 5)

    def __post_init__(self) -> None:
        choices = {
            "fusion": tuple(FUSIONS),
            "context": tuple(CONTEXT_MODULES),
            "branches": BRANCHES,
            "context_block": CONTEXT_BLOCKS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"DSNetArch.{name} must be one of {list(allowed)}, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


class DSNet(nn.Module):
    """DSNet: a spatial branch of plain residual blocks and a context branch of atrous MFACBs,
    both at 1/8 resolution, fused one-way (context -> spatial) by three MSAFs, followed by
    SPASPP and a decoder that merges a 1/4-resolution detail feature.

    Args:
        num_classes: number of output classes.
        arch: the variant's widths and depths (:class:`DSNetArch`).
        aux_heads: build the two training-only auxiliary heads. ``False`` gives exactly the
            authors' inference model (their ``augment=False``).
        in_channels: input channels (3 for RGB).

    ``forward(x)`` returns logits ``(N, num_classes, H, W)`` in eval mode and a
    :class:`DSNetOutput` (main + two auxiliary logits) in training mode when the auxiliary heads
    exist; ``return_aux`` overrides that choice. ``H`` and ``W`` must be multiples of 8.
    """

    input_multiple: int = 8

    def __init__(
        self,
        num_classes: int = 19,
        arch: DSNetArch | None = None,
        aux_heads: bool = True,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        arch = arch or DSNetArch()
        _check_positive("num_classes", num_classes)
        _check_positive("in_channels", in_channels)
        self.arch = arch
        self.num_classes = num_classes
        self.in_channels = in_channels
        p = arch.planes
        spatial = 4 * p

        # Stem: two stride-2 convs (with bias) to 1/4 resolution.
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_channels, p, 3, stride=2, padding=1, bias=True),
            nn.BatchNorm2d(p),
            nn.ReLU(inplace=False),
            nn.Conv2d(p, p, 3, stride=2, padding=1, bias=True),
            nn.BatchNorm2d(p),
            nn.ReLU(inplace=False),
        )
        self.relu = nn.ReLU(inplace=False)
        self.layer1 = make_res_layer(BasicBlock, p, p, 2)
        self.layer2 = make_res_layer(BasicBlock, p, 2 * p, 2, stride=2)

        # Context branch (atrous, 1/8). Modules are created in the authors' order (the conv biases
        # draw their default initialisation from the RNG in that order); ablations skip some.
        has_context, has_spatial = arch.branches != "spatial", arch.branches != "context"
        if has_context:
            stage = self._mfacb_stage if arch.context_block == "mfacb" else basic_stage
            self.layer3 = stage(2 * p, 4 * p, arch.context_stage3_dilations)
            self.layer4 = stage(4 * p, 8 * p, arch.context_stage4_dilations)
            self.layer5 = make_res_layer(Bottleneck, 8 * p, 4 * p, 1, dilation=arch.context_stage5_dilation)
            if has_spatial or aux_heads:  # a context-only network uses these two for its aux heads only
                self.compression3 = conv_bn(4 * p, spatial)
                self.compression4 = conv_bn(8 * p, spatial)
            self.compression5 = conv_bn(8 * p, spatial)

        # Spatial branch (dense 3x3, 1/8).
        if has_spatial:
            self.layer3_ = make_res_layer(BasicBlock, 2 * p, spatial, arch.spatial_depth)
            self.layer4_ = make_res_layer(BasicBlock, spatial, spatial, arch.spatial_depth)
            self.layer5_ = make_res_layer(Bottleneck, spatial, spatial // 2, 1)

        # One-way fusions context -> spatial.
        if has_context and has_spatial:
            self.aff1 = build_fusion(arch.fusion, spatial, arch.msaf_reduction, arch.msaf_region_sizes)
            self.aff2 = build_fusion(arch.fusion, spatial, arch.msaf_reduction, arch.msaf_region_sizes)
            self.aff3 = build_fusion(arch.fusion, spatial, arch.msaf_reduction, arch.msaf_region_sizes)

        # Decoder.
        self.spp = build_context(arch.context, spatial, arch.spp_channels, arch.spp_channels)
        self.layer1_a = make_res_layer(BasicBlock, p, arch.detail_channels, 1)
        spp_out = spatial if arch.context == "none" else arch.spp_channels
        self.up8 = conv_bn(spp_out, arch.head_channels, 3)
        self.lastlayer = SegmentationHead(arch.head_channels + arch.detail_channels, arch.head_channels, num_classes)

        self.seghead_p: AuxiliaryHead | None = None
        self.seghead_d: AuxiliaryHead | None = None
        if aux_heads:
            self.seghead_p = AuxiliaryHead(spatial, spatial, num_classes)
            self.seghead_d = AuxiliaryHead(spatial, p, num_classes)

        self.reset_parameters()

    @staticmethod
    def _mfacb_stage(in_channels: int, out_channels: int, dilations: tuple[int, ...]) -> nn.Sequential:
        blocks = []
        for i, rate in enumerate(dilations):
            cin = in_channels if i == 0 else out_channels
            blocks.append(MFACB(cin, cin, out_channels, (rate, rate, rate)))
        return nn.Sequential(*blocks)

    def _single_branch(self, x: Tensor, aux: bool) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """The 1/8 features of a one-branch ablation, and the stage 3/4 features its aux heads read."""
        relu = self.relu
        stage3 = stage4 = None
        if self.arch.branches == "spatial":
            stage3 = self.layer3_(x)
            stage4 = self.layer4_(relu(stage3))
            return relu(self.layer5_(relu(stage4))), stage3, stage4
        x = self.layer3(x)
        stage3 = self.compression3(x) if aux else None
        x = self.layer4(x)
        stage4 = self.compression4(x) if aux else None
        return relu(self.compression5(relu(self.layer5(x)))), stage3, stage4

    def reset_parameters(self) -> None:
        """The reference's initialisation: Kaiming-normal (fan_out) convs, BN = identity."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def has_aux_heads(self) -> bool:
        return self.seghead_p is not None and self.seghead_d is not None

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 4:
            raise ValueError(f"DSNet expects a 4-D (N, C, H, W) batch, got shape {tuple(x.shape)}")
        n, c, h, w = x.shape
        if c != self.in_channels:
            raise ValueError(f"DSNet was built for {self.in_channels} input channels, got {c} (shape {tuple(x.shape)})")
        m = self.input_multiple
        if h % m or w % m:
            raise ValueError(
                f"DSNet needs input height and width divisible by {m} (output stride 8 and a x2 "
                f"decoder upsampling that must meet the 1/4 feature); got {h}x{w}. Pad or resize "
                f"to e.g. {round_up(h, m)}x{round_up(w, m)}."
            )
        pooled_bns = _global_pool_batchnorms(self) if n == 1 and self.training else []
        if any(type(bn) is nn.BatchNorm2d and bn.training for bn in pooled_bns):
            raise ValueError(
                "DSNet cannot train on a batch of 1 image: its global-pooling branches (MSAF, "
                "SPASPP) apply BatchNorm to 1x1 maps, which needs more than one value per "
                "channel. Use a batch of at least 2 per device, SyncBatchNorm across devices, "
                "or model.eval() for inference."
            )

    def forward(self, x: Tensor, return_aux: bool | None = None) -> Tensor | DSNetOutput:
        self._check_input(x)
        if return_aux is None:
            return_aux = self.training and self.has_aux_heads
        if return_aux and not self.has_aux_heads:
            raise RuntimeError("this DSNet was built with aux_heads=False; it cannot return auxiliary outputs")
        size = x.shape[-2:]
        relu = self.relu

        x = self.layer1(self.conv1(x))  # 1/4, pre-activation
        detail = self.layer1_a(x)  # fed the pre-ReLU layer1 output, as in the reference
        x = relu(self.layer2(relu(x)))  # 1/8

        if self.arch.branches == "dual":
            spatial = self.layer3_(x)
            x = self.layer3(x)
            spatial = self.aff1(spatial, self.compression3(x))
            stage3 = spatial

            x = self.layer4(x)
            spatial = self.layer4_(relu(spatial))
            spatial = self.aff2(spatial, self.compression4(x))
            stage4 = spatial

            spatial = self.layer5_(relu(spatial))
            x = relu(self.layer5(x))
            spatial = relu(self.aff3(spatial, self.compression5(x)))
        else:
            spatial, stage3, stage4 = self._single_branch(x, return_aux)

        y = self.up8(self.spp(spatial))
        y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)  # 1/4
        y = self.lastlayer(torch.cat([y, detail], dim=1))
        main = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        if not return_aux:
            return main
        assert self.seghead_p is not None and self.seghead_d is not None
        aux_p = F.interpolate(self.seghead_p(stage3), size=size, mode="bilinear", align_corners=False)
        aux_d = F.interpolate(self.seghead_d(stage4), size=size, mode="bilinear", align_corners=False)
        return DSNetOutput(main, aux_p, aux_d)


def _global_pool_batchnorms(model: nn.Module) -> list[nn.Module]:
    """BatchNorms that see 1x1 maps (after a global average pool): they cannot train on one image."""
    found = []
    for m in model.modules():
        pool = m[0] if isinstance(m, nn.Sequential) and len(m) else None
        if isinstance(pool, nn.AdaptiveAvgPool2d) and pool.output_size in (1, (1, 1)):
            found += [bn for bn in m if isinstance(bn, nn.modules.batchnorm._BatchNorm)]
    return found


def build_dsnet(arch: DSNetArch, num_classes: int = 19, **overrides: Any) -> DSNet:
    """A DSNet of ``arch`` with some of its fields (or ``aux_heads`` / ``in_channels``) overridden."""
    arch_fields = {f.name for f in fields(DSNetArch)}
    arch_over = {k: overrides.pop(k) for k in list(overrides) if k in arch_fields}
    for key in ("context_stage3_dilations", "context_stage4_dilations", "msaf_region_sizes"):
        if key in arch_over:
            arch_over[key] = tuple(arch_over[key])
    allowed = {"aux_heads", "in_channels"}
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise TypeError(f"unknown DSNet option(s) {unknown}; valid options are {sorted(allowed | arch_fields)}")
    return DSNet(num_classes=num_classes, arch=replace(arch, **arch_over), **overrides)
