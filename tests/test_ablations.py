"""The paper's ablation variants: they build, train, report their size (hand-counted) and load DSNet weights."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import dsnet
from dsnet.analysis.ablation_table import ablation_rows, format_ablation_table
from dsnet.engine import Config, apply_overrides
from dsnet.engine.build import build_model
from dsnet.models import (
    AFF,
    ASPP,
    DECODER_PREFIXES,
    CheckpointMismatchError,
    DSNetArch,
    DSNetOutput,
    arch_rates,
    format_rates,
    list_ablations,
    load_weights,
    parse_rates,
    save_weights,
    with_rates,
)
from dsnet.models.context_branch import basic_stage_rates

from .expected import PARAMS
from .tolerances import assert_close_to_scale, elementwise_rel, scale_of

ABLATIONS = list_ablations()
BASE = "dsnet_head128"


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_ablations_are_registered_apart_from_the_variants() -> None:
    assert len(ABLATIONS) == 13
    assert not set(ABLATIONS) & set(dsnet.list_models())
    assert set(ABLATIONS) <= set(dsnet.list_models(include_ablations=True))
    for name in ABLATIONS:
        info = dsnet.get_model_info(name)
        assert info.ablation is not None and info.ablation.base == BASE
        assert name == f"{BASE}_{info.ablation.axis}-{info.ablation.value}"  # the name says what changes


@pytest.mark.parametrize("name", ABLATIONS)
def test_ablation_trains_forward_backward(name: str) -> None:
    model = dsnet.create_model(name, num_classes=4).train()
    out = model(torch.randn(2, 3, 64, 64))
    assert isinstance(out, DSNetOutput)
    assert all(t.shape == (2, 4, 64, 64) for t in out)
    (out.main.mean() + out.aux_p.mean() + out.aux_d.mean()).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    model.eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 48, 64))
    assert logits.shape == (1, 4, 48, 64) and torch.isfinite(logits).all()


def test_default_arch_is_dsnet() -> None:
    arch = DSNetArch()
    assert (arch.fusion, arch.context, arch.branches, arch.context_block) == ("msaf", "spaspp", "dual", "mfacb")
    assert format_rates(arch_rates(arch)) == "d2x6+d3x6+d5x4"  # the paper's name for DSNet's schedule
    with pytest.raises(ValueError, match="fusion must be one of"):
        DSNetArch(fusion="concat")


# Hand counts for head128 (P = 32, C = 4P = 128, MSAF/AFF bottleneck inter = 32, 19 classes).
_BOTTLENECK = (128 * 32 + 32) + 2 * 32 + (32 * 128 + 128) + 2 * 128  # conv(bias) BN conv(bias) BN = 8,672
_MSAF = 5 * _BOTTLENECK  # pixel, three regions, global
_SPASPP = 4 * (128 * 128 * 9 + 256) + (128 * 128 + 256) + (128 * 128 + 256) + (5 * 128 * 128 + 256)
_SPASPP += 128 * 128 * 9 + 128 + 256  # process3: biased 3x3 conv + BN


@pytest.mark.parametrize(
    ("name", "delta"),
    [
        ("dsnet_head128_fusion-add", -3 * _MSAF),
        ("dsnet_head128_fusion-aff", -3 * _MSAF + 3 * 2 * _BOTTLENECK),
        ("dsnet_head128_fusion-iaff", -3 * _MSAF + 3 * 4 * _BOTTLENECK),
        ("dsnet_head128_context-none", -_SPASPP),
        ("dsnet_head128_context-aspp", 0),  # same layers, parallel wiring
        ("dsnet_head128_rates-d2x3+d3x3+d15x10", 0),
    ],
)
def test_ablation_parameter_counts_by_hand(name: str, delta: int) -> None:
    assert _SPASPP == 854_144 and _MSAF == 43_360
    rows = ablation_rows([name], size=(64, 128))
    assert rows[0]["params"] == PARAMS[BASE][0] + delta


def test_branch_and_block_ablations_by_hand() -> None:
    base = dsnet.create_model(BASE, aux_heads=False)
    ctx = dsnet.create_model("dsnet_head128_branches-context", aux_heads=False)
    spatial_branch = sum(_params(getattr(base, n)) for n in ("layer3_", "layer4_", "layer5_"))
    fusions = sum(_params(getattr(base, n)) for n in ("aff1", "aff2", "aff3"))
    compress34 = _params(base.compression3) + _params(base.compression4)  # only for its aux heads
    assert _params(ctx) == _params(base) - spatial_branch - fusions - compress34
    sp = dsnet.create_model("dsnet_head128_branches-spatial", aux_heads=False)
    context_branch = sum(_params(getattr(base, n)) for n in ("layer3", "layer4", "layer5"))
    context_branch += compress34 + _params(base.compression5)
    assert _params(sp) == _params(base) - context_branch - fusions
    # Table 5 rule: ceil(3n/2) dilated BasicBlocks per stage of n MFACBs, rates following the convolutions
    assert basic_stage_rates((2, 2, 3)) == [2, 2, 2, 3, 3]
    assert basic_stage_rates((3, 5)) == [3, 3, 5]
    basic = dsnet.create_model("dsnet_head128_context_block-basic")
    assert [b.conv1.dilation[0] for b in basic.layer3] == [2, 2, 2, 3, 3]
    assert [b.conv2.dilation[0] for b in basic.layer4] == [3, 3, 5]
    bb = 2 * 128 * 128 * 9 + 2 * 256  # a BasicBlock of 128 channels: two 3x3 convs and two BNs
    bb_wide = 2 * 256 * 256 * 9 + 2 * 512
    layer3 = (64 * 128 * 9 + 256 + 128 * 128 * 9 + 256 + 64 * 128 + 256) + 4 * bb  # first block projects 64->128
    layer4 = (128 * 256 * 9 + 512 + 256 * 256 * 9 + 512 + 128 * 256 + 512) + 2 * bb_wide
    assert _params(basic.layer3) == layer3 and _params(basic.layer4) == layer4


def test_rate_schedules() -> None:
    assert parse_rates("d2x3+d5x2") == [2, 2, 2, 5, 5]
    assert format_rates([2, 2, 2, 5, 5]) == "d2x3+d5x2"
    arch = with_rates(DSNetArch(), "d2x3+d3x3+d15x10")
    assert arch.context_stage3_dilations == (2, 3, 15)
    assert arch.context_stage4_dilations == (15, 15)
    assert arch.context_stage5_dilation == 15
    assert with_rates(DSNetArch(), "d2x6+d3x6+d5x4") == DSNetArch()
    model = dsnet.create_model("dsnet_head128_rates-d2x6+d4x6+d6x4")
    convs = [c.conv.dilation[0] for stage in (model.layer3, model.layer4) for b in stage for c in b.conv_list]
    assert convs + [model.layer5[0].conv2.dilation[0]] == parse_rates("d2x6+d4x6+d6x4")
    with pytest.raises(ValueError, match="bad term 'd2y3'"):
        parse_rates("d2y3+d3x3")
    with pytest.raises(ValueError, match="has 15 convolutions; this context branch has 16"):
        with_rates(DSNetArch(), "d2x5+d3x6+d5x4")
    with pytest.raises(ValueError, match="MFACB 1 the rates"):
        with_rates(DSNetArch(), "d2x2+d3x7+d5x7")


def test_aff_at_half_weight_is_addition_and_aspp_is_parallel() -> None:
    aff = AFF(8, 4).eval()
    for bottleneck in (aff.local_att, aff.global_att):
        nn.init.zeros_(bottleneck[-1].weight)  # last BN -> 0: attention logits 0, weight 1/2
    s, c = torch.randn(2, 8, 6, 6), torch.randn(2, 8, 6, 6)
    # weight 1/2 exactly (sigmoid(0)): a few elementwise float32 operations, relative to the inputs' scale
    assert_close_to_scale(aff(s, c), s + c, rel=elementwise_rel(4), scale=scale_of(s) + scale_of(c), what="AFF")
    aspp = ASPP(8, 8, 8).eval()
    seen = []
    hooks = [conv.register_forward_hook(lambda m, i, o: seen.append(i[0])) for conv in aspp.conv_list]
    x = torch.randn(1, 8, 16, 16)
    aspp(x)
    for h in hooks:
        h.remove()
    assert len(seen) == 4 and all(t is x for t in seen)


@pytest.mark.parametrize("name", ABLATIONS)
def test_ablation_loads_the_compatible_keys_of_a_dsnet_checkpoint(name: str) -> None:
    source = dsnet.create_model(BASE, num_classes=11)
    with torch.no_grad():
        for p in source.parameters():
            p.add_(1.0)  # distinguishable from any initialisation
    sd = source.state_dict()
    model = dsnet.create_model(name, num_classes=11)
    own = model.state_dict()
    shared = [k for k in own if k in sd]
    assert len(shared) > 200  # stem, the spatial or context branch, decoder
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        report = load_weights(model, sd, part="compatible")
    assert report.kind == "compatible"
    assert report.loaded == shared
    assert report.left_at_init == [k for k in own if k not in sd]
    assert report.ignored == [k for k in sd if k not in own]
    after = model.state_dict()
    assert all(torch.equal(after[k], sd[k]) for k in shared)
    # create_model picks the compatible load for ablations by itself
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        again = dsnet.create_model(name, num_classes=11, weights=sd)
    assert all(torch.equal(again.state_dict()[k], sd[k]) for k in shared)


def test_compatible_load_is_strict_on_shared_keys() -> None:
    head64 = dsnet.create_model("dsnet_head64", num_classes=11).state_dict()  # up8/lastlayer shaped for head64
    with pytest.raises(CheckpointMismatchError, match="wrongly shaped keys"):
        dsnet.create_model("dsnet_head128_fusion-add", num_classes=11, weights=head64)
    with pytest.raises(CheckpointMismatchError, match="shares no key"):
        load_weights(dsnet.create_model("dsnet_head128_fusion-add"), {"foo.weight": torch.zeros(1)}, part="compatible")


def test_ablation_table_text_and_markdown() -> None:
    rows = ablation_rows([BASE, "dsnet_head128_fusion-add"], size=(64, 128))
    assert [r["change"] for r in rows] == ["(DSNet)", "fusion = add"]
    assert rows[1]["paper_miou"] == 79.7 and rows[1]["paper_fps"] == 90.5
    md = format_ablation_table(rows, (64, 128), markdown=True)
    assert md.splitlines()[2].startswith("| `dsnet_head128` | base | (DSNet) | 6,755,539 |")
    assert "| `dsnet_head128_fusion-add` | Table 4 | fusion = add | 6,625,459 |" in md


def test_ablation_takes_the_encoder_of_a_pretrained_checkpoint(tmp_path: Path) -> None:
    base = dsnet.create_model(BASE, num_classes=11).state_dict()
    encoder = {
        k: v + 1.0 if v.is_floating_point() else v for k, v in base.items() if not k.startswith(DECODER_PREFIXES)
    }
    path = save_weights(encoder, tmp_path / "encoder.safetensors")
    overrides = ["model.name=dsnet_head128_context-dappm", "model.num_classes=11", f"model.pretrained={path}"]
    cfg = apply_overrides(Config(), overrides)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        model = build_model(cfg)
    sd = model.state_dict()
    assert all(torch.equal(sd[k], encoder[k]) for k in encoder)  # every encoder key is shared here
    assert not any(torch.equal(sd[k], base[k] + 1.0) for k in sd if k.startswith("lastlayer.") and k in base)


def test_batch_of_one_is_refused_for_global_pool_batchnorms() -> None:
    model = dsnet.create_model("dsnet_head128_context-dappm", num_classes=3).train()
    with pytest.raises(ValueError, match="batch of 1"):
        model(torch.randn(1, 3, 32, 32))
