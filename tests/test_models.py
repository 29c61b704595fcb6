"""Shared parametrised tests over every registered variant (smp style)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import dsnet
from dsnet.models import MFACB, MSAF, SPASPP, DSNetOutput

from .expected import PAPER_TABLE_HEAD128_GFLOPS, PAPER_TABLE_HEAD128_PARAMS_M, PARAMS
from .tolerances import assert_close_to_scale, elementwise_rel, scale_of

# Copies of ../shared/reference/keys (the authors' state-dict keys and shapes), so the test never skips.
REFERENCE_KEYS = Path(__file__).resolve().parent / "reference_keys"

ALL = dsnet.list_models()

# (variant, num_classes, key file)
KEY_FILES = [
    ("dsnet_head64", 19, "dsnet_head64"),
    ("dsnet_head128", 19, "dsnet_head128"),
    ("dsnet_head256", 19, "dsnet_head256"),
    ("dsnet_base", 19, "dsnet_base"),
    ("dsnet_head256", 150, "dsnet_head256_ade150"),
    ("dsnet_base", 150, "dsnet_base_ade150"),
]


def test_registry_lists_the_four_variants() -> None:
    assert ALL == ["dsnet_base", "dsnet_head128", "dsnet_head256", "dsnet_head64"]
    assert dsnet.list_models("dsnet_head*") == ["dsnet_head128", "dsnet_head256", "dsnet_head64"]


@pytest.mark.parametrize("name", ALL)
def test_eval_forward_returns_logits_at_input_size(name: str) -> None:
    model = dsnet.create_model(name, num_classes=5).eval()
    x = torch.randn(2, 3, 48, 64)
    with torch.no_grad():
        out = model(x)
    assert isinstance(out, torch.Tensor)
    assert out.shape == (2, 5, 48, 64)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ALL)
def test_train_forward_backward_with_aux_outputs(name: str) -> None:
    model = dsnet.create_model(name, num_classes=4).train()
    x = torch.randn(2, 3, 64, 64)
    out = model(x)
    assert isinstance(out, DSNetOutput)
    for t in out:
        assert t.shape == (2, 4, 64, 64)
    loss = out.main.mean() + out.aux_p.mean() + out.aux_d.mean()
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert no_grad == []


@pytest.mark.parametrize("name", ALL)
def test_exact_parameter_counts(name: str) -> None:
    inference, training = PARAMS[name]
    model = dsnet.create_model(name)
    assert sum(p.numel() for p in model.parameters()) == training
    assert dsnet.count_parameters(model) == inference
    bare = dsnet.create_model(name, aux_heads=False)
    assert sum(p.numel() for p in bare.parameters()) == inference


@pytest.mark.parametrize(("name", "num_classes", "key_file"), KEY_FILES)
def test_state_dict_equals_authors_keys_shapes_and_order(name: str, num_classes: int, key_file: str) -> None:
    ref = json.loads((REFERENCE_KEYS / f"{key_file}.json").read_text())
    with torch.device("meta"):
        sd = dsnet.create_model(name, num_classes=num_classes).state_dict()
    ours = [(k, list(v.shape)) for k, v in sd.items()]
    theirs = [(r["key"], list(r["shape"])) for r in ref["keys"]]
    assert ours == theirs
    with torch.device("meta"):
        bare = dsnet.create_model(name, num_classes=num_classes, aux_heads=False).state_dict()
    assert list(bare) == [r["key"] for r in ref["keys"][: ref["num_keys_inference_model"]]]


def test_return_aux_overrides_mode() -> None:
    model = dsnet.create_model("dsnet_head64", num_classes=3).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 32, 32), return_aux=True)
        main_only = model(torch.randn(1, 3, 32, 32))
    assert isinstance(out, DSNetOutput) and out.aux_d.shape == (1, 3, 32, 32)
    assert isinstance(main_only, torch.Tensor)
    bare = dsnet.create_model("dsnet_head64", num_classes=3, aux_heads=False).train()
    out = bare(torch.randn(2, 3, 32, 32))  # no aux heads: training returns logits only
    assert isinstance(out, torch.Tensor)
    with pytest.raises(RuntimeError, match="aux_heads=False"):
        bare(torch.randn(2, 3, 32, 32), return_aux=True)


@pytest.mark.parametrize("size", [(60, 64), (64, 36), (65, 65)])
def test_sizes_not_multiple_of_8_are_rejected(size: tuple[int, int]) -> None:
    model = dsnet.create_model("dsnet_head64").eval()
    with pytest.raises(ValueError, match=r"divisible by 8.*got \d+x\d+"):
        model(torch.randn(1, 3, *size))


def test_bad_rank_and_channels_are_rejected() -> None:
    model = dsnet.create_model("dsnet_head64").eval()
    with pytest.raises(ValueError, match="4-D"):
        model(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match="3 input channels, got 1"):
        model(torch.randn(1, 1, 32, 32))


def test_batch_of_one_in_training_mode_fails_clearly() -> None:
    model = dsnet.create_model("dsnet_head64").train()
    with pytest.raises(ValueError, match="batch of 1"):
        model(torch.randn(1, 3, 32, 32))
    model.eval()
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 19, 32, 32)


def test_unknown_model_and_options_are_named() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'dsnet_head126'.*dsnet_head128"):
        dsnet.create_model("dsnet_head126")
    with pytest.raises(TypeError, match="head_chanels"):
        dsnet.create_model("dsnet_head64", head_chanels=32)
    with pytest.raises(ValueError, match="num_classes"):
        dsnet.create_model("dsnet_head64", num_classes=0)


def test_alias_and_overrides() -> None:
    assert dsnet.get_model_info("dsnet_m").name == "dsnet_base"
    model = dsnet.create_model("dsnet_head64", num_classes=2, context_stage4_dilations=[3, 5, 5])
    assert len(model.layer4) == 3


def test_registry_metadata_carries_preprocessing_and_paper_figures() -> None:
    info = dsnet.get_model_info("dsnet_head128")
    assert info.mean == (0.485, 0.456, 0.406) and info.std == (0.229, 0.224, 0.225)
    assert info.paper_gflops == PAPER_TABLE_HEAD128_GFLOPS and info.paper_params_m == PAPER_TABLE_HEAD128_PARAMS_M
    assert {r.dataset for r in info.results} == {"cityscapes"}


class TestBlocks:
    def test_mfacb_cascade_shapes_and_nonnegative_output(self) -> None:
        block = MFACB(8, 8, 16, (2, 2, 2)).eval()
        y = block(torch.randn(2, 8, 20, 24))
        assert y.shape == (2, 16, 20, 24)
        assert (y >= 0).all()  # sum of two post-ReLU terms

    def test_mfacb_needs_three_rates(self) -> None:
        with pytest.raises(ValueError, match="three dilation"):
            MFACB(8, 8, 8, (2, 2))

    def test_msaf_is_a_convex_combination_times_two(self) -> None:
        msaf = MSAF(16).eval()
        s, c = torch.randn(2, 16, 20, 24), torch.randn(2, 16, 20, 24)
        with torch.no_grad():
            wei = msaf.attention(s, c)
            out = msaf(s, c)
        assert ((wei >= 0) & (wei <= 1)).all()
        # a few elementwise float32 operations (in any order), relative to the inputs' scale
        scale = 2 * max(scale_of(s), scale_of(c))
        assert_close_to_scale(out, 2 * wei * s + 2 * (1 - wei) * c, rel=elementwise_rel(4), scale=scale, what="MSAF")
        # identical inputs: the output is 2x the input whatever the weight (up to the rounding of w and 1 - w)
        with torch.no_grad():
            assert_close_to_scale(msaf(s, s), 2 * s, rel=elementwise_rel(4), what="MSAF(s, s)")

    def test_spaspp_output_shape(self) -> None:
        spp = SPASPP(16, 8, 12).eval()
        assert spp(torch.randn(2, 16, 12, 16)).shape == (2, 12, 12, 16)
