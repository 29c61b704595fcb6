"""Size and cost: the paper's tables reproduced exactly."""

from __future__ import annotations

import pytest
import torch

import dsnet

from .expected import (
    ADE20K_HEAD256_PAPER_GFLOPS,
    ADE20K_HEAD256_PARAMS,
    ADE20K_NUM_CLASSES,
    ADE20K_SIZE,
    BDD_HEAD64_PAPER_GFLOPS,
    BDD_SIZE,
    CITYSCAPES_SIZE,
    HEAD128_CONV_GMACS,
    HEAD128_LAYER4_MAC_SHARE,
    PAPER_GFLOPS_CITYSCAPES,
    PARAMS,
)


@pytest.mark.parametrize("name", list(PAPER_GFLOPS_CITYSCAPES))
def test_params_and_paper_gflops_at_cityscapes_size(name: str) -> None:
    p = dsnet.profile(dsnet.create_model(name), CITYSCAPES_SIZE)
    assert p["params"] == PARAMS[name][0]  # the inference model
    assert round(p["paper_gflops"], 2) == PAPER_GFLOPS_CITYSCAPES[name]
    assert p["gflops"] == pytest.approx(2 * p["macs"] / 1e9)


def test_head128_conv_macs_by_flop_counter() -> None:
    p = dsnet.profile(dsnet.create_model("dsnet_head128"), CITYSCAPES_SIZE, by_module=True)
    assert round(p["macs"] / 1e9, 2) == HEAD128_CONV_GMACS
    assert sum(p["macs_by_module"].values()) == p["macs"]
    share = p["macs_by_module"]["layer4"] / p["macs"]
    low, high = HEAD128_LAYER4_MAC_SHARE
    assert low < share < high  # reference: the context layer4 takes 35 %


def test_other_sizes_and_class_counts() -> None:
    # reference section 5.2: head256, ADE20K 512x512, 150 classes -> 47.9 paper GFLOPs, 10.024 M params
    p = dsnet.profile(dsnet.create_model("dsnet_head256", num_classes=ADE20K_NUM_CLASSES), ADE20K_SIZE)
    assert p["params"] == ADE20K_HEAD256_PARAMS
    assert round(p["paper_gflops"], 1) == ADE20K_HEAD256_PAPER_GFLOPS
    # BDD 720x1280: head64 91.6
    p = dsnet.profile(dsnet.create_model("dsnet_head64"), BDD_SIZE)
    assert round(p["paper_gflops"], 1) == BDD_HEAD64_PAPER_GFLOPS


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
