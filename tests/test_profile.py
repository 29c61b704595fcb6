"""Size and cost: the paper's tables reproduced exactly."""

from __future__ import annotations

import pytest
import torch

import dsnet

# Reference section 5 (19 classes, 1024x2048): params of the inference model and thop MACs / 2**30.
PAPER_TABLE = {
    "dsnet_head64": (6_551_315, 208.43),
    "dsnet_head128": (6_755_539, 226.62),
    "dsnet_head256": (9_990_611, 379.41),
    "dsnet_base": (37_461_395, 1222.94),
}


@pytest.mark.parametrize("name", list(PAPER_TABLE))
def test_params_and_paper_gflops_at_cityscapes_size(name: str) -> None:
    params, paper_gflops = PAPER_TABLE[name]
    p = dsnet.profile(dsnet.create_model(name), (1024, 2048))
    assert p["params"] == params
    assert round(p["paper_gflops"], 2) == paper_gflops
    assert p["gflops"] == pytest.approx(2 * p["macs"] / 1e9)


def test_head128_conv_macs_by_flop_counter() -> None:
    p = dsnet.profile(dsnet.create_model("dsnet_head128"), (1024, 2048), by_module=True)
    assert round(p["macs"] / 1e9, 2) == 241.97
    assert sum(p["macs_by_module"].values()) == p["macs"]
    share = p["macs_by_module"]["layer4"] / p["macs"]
    assert 0.34 < share < 0.36  # reference: the context layer4 takes 35 %


def test_other_sizes_and_class_counts() -> None:
    # reference section 5.2: head256, ADE20K 512x512, 150 classes -> 47.9 paper GFLOPs, 10.024 M params
    p = dsnet.profile(dsnet.create_model("dsnet_head256", num_classes=150), (512, 512))
    assert p["params"] == 10_024_278
    assert round(p["paper_gflops"], 1) == 47.9
    # BDD 720x1280: head64 91.6
    p = dsnet.profile(dsnet.create_model("dsnet_head64"), (720, 1280))
    assert round(p["paper_gflops"], 1) == 91.6


def test_profile_leaves_the_model_untouched() -> None:
    model = dsnet.create_model("dsnet_head64").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    dsnet.profile(model, (64, 64))
    assert model.training
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert next(model.parameters()).device.type == "cpu"


def test_profile_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="divisible by 8"):
        dsnet.profile(dsnet.create_model("dsnet_head64"), (100, 100))
