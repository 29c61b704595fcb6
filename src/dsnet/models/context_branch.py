"""Blocks of the context branch's stages 3-4: DSNet's MFACBs, or BasicBlocks (paper Table 5).

Table 5 compares MFACB with plain dilated BasicBlocks "with the same atrous rate and the same
number of atrous convolutions" (two MFACBs, 6 atrous convs, against three BasicBlocks). The
``basic`` stage follows that rule for any stage: a stage of ``n`` MFACBs holds ``3n`` atrous
convolutions; it becomes ``ceil(3n / 2)`` BasicBlocks of two atrous convolutions each, block ``i``
taking the rate of the stage's convolution ``2i``. DSNet-head128's layer3 (rates 2, 2, 3: nine
convolutions) becomes five blocks at rates 2, 2, 2, 3, 3 and layer4 (3, 5) three blocks at 3, 3, 5,
so 16 atrous convolutions against the MFACBs' 15 (the one extra is the price of an odd count).
The first block projects the shortcut (1x1 conv + BN) to the stage width; every block ends with
ReLU, so the stage output is non-negative like an MFACB's.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .blocks import BasicBlock, conv_bn

__all__ = ["CONTEXT_BLOCKS", "basic_stage", "basic_stage_rates"]

#: ``mfacb`` is DSNet's.
CONTEXT_BLOCKS: tuple[str, ...] = ("mfacb", "basic")


def basic_stage_rates(mfacb_rates: Sequence[int]) -> list[int]:
    """The BasicBlock rates that replace MFACBs of ``mfacb_rates`` (three convolutions each)."""
    per_conv = [rate for rate in mfacb_rates for _ in range(3)]
    return per_conv[::2]


def basic_stage(in_channels: int, out_channels: int, mfacb_rates: Sequence[int]) -> nn.Sequential:
    """Dilated BasicBlocks standing in for a stage of MFACBs with ``mfacb_rates``."""
    blocks = []
    for i, rate in enumerate(basic_stage_rates(mfacb_rates)):
        cin = in_channels if i == 0 else out_channels
        downsample = conv_bn(cin, out_channels) if cin != out_channels else None
        blocks.append(BasicBlock(cin, out_channels, 1, downsample, no_relu=False, dilation=rate))
    return nn.Sequential(*blocks)
