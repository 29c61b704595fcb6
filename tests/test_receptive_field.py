"""Theoretical receptive fields: the paper's Table 2, plain stacks and branch-and-merge graphs by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dsnet.analysis import RFRow, receptive_fields
from dsnet.errors import ConfigError
from dsnet.models import create_model
from dsnet.models.blocks import MFACB


def by_name(rows: list[RFRow]) -> dict[str, RFRow]:
    return {r.name: r for r in rows}


def test_table2_mfacb_222_then_333() -> None:
    # paper Table 2: atrous 3x3 convs with rate d add 2d each; the cascade gives 5/9/13, then 11/15/19, 17/21/25,
    # 23/27/31 on the fused {5, 9, 13}. The 1x1 shortcuts add the sizes the paper leaves out: 1 (the input itself)
    # to the first block's output, hence 1+6=7, 7+6=13, 13+6=19 in the second block's convolutions.
    rows = by_name(receptive_fields(nn.Sequential(MFACB(4, 4, 4, (2, 2, 2)), MFACB(4, 4, 4, (3, 3, 3))), (32, 32)))
    assert [rows[f"0.conv_list.{i}"].scales for i in range(3)] == [(5,), (9,), (13,)]
    assert rows["0.process2"].scales == (5, 9, 13)  # concatenation + 1x1 fusion: the three scales at once
    assert rows["0"].scales == (1, 5, 9, 13)  # + the 1x1 shortcut of the input
    b, c, d = (set(rows[f"1.conv_list.{i}"].scales) for i in range(3))
    assert b == {11, 15, 19} | {7} and c == {17, 21, 25} | {13} and d == {23, 27, 31} | {19}
    assert set(rows["1.process2"].scales) == b | c | d
    assert set(rows["1"].scales) == b | c | d | {1, 5, 9, 13}
    assert all(r.jump == (1, 1) and not r.pooled for r in rows.values())


def test_table2_inside_dsnet_stage3() -> None:
    # head128's first context stage is MFACB[2,2,2] x2, MFACB[3,3,3]; measured from layer3's own input
    rows = by_name(receptive_fields(create_model("dsnet_head128"), (64, 64), within="layer3"))
    assert [rows[f"layer3.0.conv_list.{i}"].scales for i in range(3)] == [(5,), (9,), (13,)]
    assert rows["layer3.0"].branch == "context" and all(n.startswith("layer3") for n in rows)


@pytest.mark.parametrize("padding", [0, "same"])
def test_plain_stack_by_hand(padding: int | str) -> None:
    pad = (lambda k, d: 0) if padding == 0 else (lambda k, d: d * (k - 1) // 2)
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=pad(3, 1)),  # rf 3, jump 1
        nn.Conv2d(2, 2, 3, stride=2, padding=pad(3, 1)),  # rf 3 + 2*1 = 5, jump 2
        nn.Conv2d(2, 2, 3, dilation=2, padding=pad(3, 2)),  # rf 5 + 2*2*2 = 13, jump 2
        nn.MaxPool2d(2),  # rf 13 + 1*2 = 15, jump 4
        nn.Conv2d(2, 2, (1, 5), padding=(0, pad(5, 1))),  # height 15, width 15 + 4*4 = 31
    )
    rows = by_name(receptive_fields(net, (32, 32)))
    assert [rows[str(i)].rf for i in range(5)] == [3, 5, 13, 15, 15]
    assert [rows[str(i)].jump for i in range(5)] == [(1, 1), (2, 2), (2, 2), (4, 4), (4, 4)]
    assert rows["4"].rf_w == 31 and rows["4"].scales_w == (31,)
    # padding shifts and shrinks the output, never the receptive field
    expected = [(30, 30), (14, 14), (10, 10), (5, 5), (5, 1)] if padding == 0 else [(32, 32), (16, 16), (16, 16)]
    assert [rows[str(i)].shape[1:] for i in range(len(expected))] == expected


class BranchMerge(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 2, 3, padding=1)
        self.b = nn.Conv2d(1, 2, 5, padding=2)
        self.short = nn.Conv2d(1, 4, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        y = torch.cat([self.a(x), self.b(x)], dim=1) + self.short(x)  # {3, 5} | {1}
        near = F.interpolate(F.max_pool2d(y, 2), scale_factor=2, mode="nearest")  # +1 then +0: {2, 4, 6}
        bil = F.interpolate(F.max_pool2d(y, 2), scale_factor=2, mode="bilinear")  # +1, then +1*2: {4, 6, 8}
        gated = y * torch.sigmoid(F.adaptive_avg_pool2d(y, 1))  # local {1, 3, 5}; pooled + (n-1)
        return y, near + bil, gated


class Probe(nn.Module):
    """Identity modules that name the intermediate tensors of BranchMerge."""

    def __init__(self) -> None:
        super().__init__()
        self.net = BranchMerge()
        self.y, self.up, self.gated = nn.Identity(), nn.Identity(), nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        y, up, gated = self.net(x)
        return self.y(y) + self.up(up) + self.gated(gated)


def test_branch_and_merge_graph() -> None:
    rows = by_name(receptive_fields(Probe(), (16, 24)))
    assert rows["y"].scales == (1, 3, 5) and rows["y"].jump == (1, 1)
    assert rows["up"].scales == (2, 4, 6, 8) and rows["up"].jump == (1, 1)  # nearest {2,4,6} | bilinear {4,6,8}
    assert rows["gated"].scales == (1, 3, 5)
    assert rows["gated"].pooled == (16, 18, 20) and rows["gated"].pooled_w == (24, 26, 28)  # global: + (n - 1)
    assert rows[""].scales == (1, 2, 3, 4, 5, 6, 8) and rows[""].pooled_rf == 20


def test_dsnet_branches_by_hand() -> None:
    model = create_model("dsnet_head64")
    rows = by_name(receptive_fields(model, (128, 256)))
    # stem: 3 (jump 2) -> 7 (jump 4); layer1: four 3x3 at jump 4 -> 39; layer2: 3x3/2 -> 47 (jump 8), three more -> 95
    assert (rows["conv1"].rf, rows["layer1"].rf, rows["layer2"].rf, rows["layer2"].jump) == (7, 39, 95, (8, 8))
    assert rows["layer3_"].rf == 95 + 4 * 2 * 8  # spatial: four dense 3x3 at jump 8
    assert rows["layer3.0"].rf == 95 + 3 * 2 * 2 * 8  # context: MFACB[2,2,2] at jump 8
    assert {rows[n].branch for n in ("layer3", "layer3_", "aff1", "spp", "layer1_a")} == {
        "context",
        "spatial",
        "fusion",
        "decoder",
        "detail",
    }
    assert rows["layer3_"].pooled == () and rows["layer4_"].pooled  # MSAF's pooling reaches the spatial branch
    assert rows["aff1.global_att"].pooled_rf == rows["layer3"].rf + (128 // 8 - 1) * 8  # a bin of the whole map
    assert next(model.parameters()).device.type == "cpu"  # the analysis ran on a meta copy


def test_unsupported_spatial_op_is_named() -> None:
    with pytest.raises(ConfigError, match="pixel_shuffle"):
        receptive_fields(nn.Sequential(nn.Conv2d(1, 4, 3), nn.PixelShuffle(2)), (8, 8))
    with pytest.raises(ConfigError, match="no submodule 'nope'"):
        receptive_fields(nn.Conv2d(1, 1, 3), (8, 8), within="nope")
