"""dsnet.deploy transforms: exact matrix adaptive pooling, BN folding found by dataflow, prepare()."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

import dsnet
from dsnet.deploy import MatmulAdaptiveAvgPool2d, find_conv_bn_pairs, fold_batchnorm, prepare, prepare_with_report

from .tolerances import EPS32, EPS64, assert_close_to_scale, forward_rel, reduction_rel


def randomize_batchnorm(model: nn.Module, seed: int = 1) -> nn.Module:
    """Non-trivial running statistics and affine parameters, so that folding really changes weights."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, _BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)
    return model


def rel_error(got: torch.Tensor, ref: torch.Tensor) -> float:
    return ((got - ref).abs().max() / ref.abs().max()).item()


# ------------------------------------------------------------------ pooling


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("hw", [(45, 80), (90, 120), (45, 61), (7, 5), (16, 16), (64, 96), (1, 1), (3, 17)])
@pytest.mark.parametrize("out", [1, 4, 8, 16, (3, 5), (None, 4), (6, None)])
def test_matmul_pooling_equals_adaptive_avg_pool(hw: tuple[int, int], out: object, dtype: torch.dtype) -> None:
    x = torch.randn(2, 3, *hw, dtype=dtype)
    ref = F.adaptive_avg_pool2d(x, out)
    got = MatmulAdaptiveAvgPool2d(out)(x)
    assert got.shape == ref.shape and got.dtype == dtype
    # summation order only: a mean of at most H x W values, each |x_i| / n <= max|x| / n, so relative to max|x|;
    # a wrong bin is off by the size of the means themselves (1e-2 of max|x| or more for these bins)
    rel = reduction_rel(hw[0] * hw[1], EPS32 if dtype == torch.float32 else EPS64)
    assert_close_to_scale(got, ref, rel=rel, scale=x.abs().max().item(), what=f"pooling {hw} -> {out}")


def test_matmul_pooling_is_not_a_plain_resize() -> None:
    """Guard against a test that passes for any averaging: uneven bins overlap in PyTorch's definition."""
    x = torch.arange(7.0).reshape(1, 1, 1, 7)
    got = MatmulAdaptiveAvgPool2d((1, 4))(x)
    # bins [0,2) [1,4) [3,6) [5,7): means 0.5, 2, 4, 5.5
    assert got.flatten().tolist() == [0.5, 2.0, 4.0, 5.5]


# ------------------------------------------------------------------ BN folding


class _Planted(nn.Module):
    """One foldable pair, a conv read twice, a BN on the input and a BN after a non-conv op."""

    def __init__(self) -> None:
        super().__init__()
        self.bn_in = nn.BatchNorm2d(3)
        self.conv_a = nn.Conv2d(3, 4, 3, padding=1)
        self.bn_a = nn.BatchNorm2d(4)
        self.conv_shared = nn.Conv2d(4, 4, 1, bias=False)
        self.bn_shared = nn.BatchNorm2d(4)
        self.bn_after_relu = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn_a(self.conv_a(self.bn_in(x)))
        z = self.conv_shared(y)
        return self.bn_shared(z) + z + self.bn_after_relu(torch.relu(y))


def test_fold_finds_only_real_pairs_and_keeps_the_output() -> None:
    model = randomize_batchnorm(_Planted()).eval()
    assert find_conv_bn_pairs(model) == [("conv_a", "bn_a")]
    x = torch.randn(2, 3, 8, 8)
    ref = model(x)
    assert fold_batchnorm(model) == [("conv_a", "bn_a")]
    assert isinstance(model.bn_a, nn.Identity) and isinstance(model.bn_shared, nn.BatchNorm2d)
    assert rel_error(model(x), ref) <= 2 * forward_rel(model)  # two float32 runs of a 2-convolution network


@pytest.mark.parametrize("name", dsnet.list_models())
def test_folded_model_matches_the_eval_model(name: str) -> None:
    model = randomize_batchnorm(dsnet.create_model(name, num_classes=5)).eval()
    folded, report = prepare_with_report(model)
    bns = [n for n, m in model.named_modules() if isinstance(m, _BatchNorm)]
    # every BN but the auxiliary heads' input BNs follows a conv; the heads are dropped
    assert len(report.folded) == len(bns) - 2 - sum(n.startswith("seghead_") and not n.endswith("bn1") for n in bns)
    assert report.dropped == ["seghead_p", "seghead_d"] and report.pools_replaced == 13
    assert not [n for n, m in folded.named_modules() if isinstance(m, _BatchNorm)]
    assert not any(type(m) is nn.AdaptiveAvgPool2d for m in folded.modules())

    x = torch.randn(1, 3, 40, 56)  # 5x7 at 1/8: not divisible by any region size
    folded64 = prepare(model.double())  # folded in float64 (a float32 fold rounds the new weights to float32)
    with torch.no_grad():
        ref32, got32 = model.float()(x), folded(x)
        ref64, got64 = model.double()(x.double()), folded64(x.double())
    # two runs of the network (folded or not), each off by float32 rounding (measured: 1e-5 to 2e-5 of the
    # output scale); in float64 the same bound is 2e-12 (measured: 2e-14 to 8e-14), where a wrong fold shows
    assert rel_error(got32, ref32) <= 2 * forward_rel(model)
    assert rel_error(got64, ref64) <= 2 * forward_rel(model, EPS64)


def test_prepare_leaves_the_input_model_alone() -> None:
    model = dsnet.create_model("dsnet_head64", num_classes=3)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = prepare(model, channels_last=True)
    assert model.training and not out.training
    assert model.has_aux_heads and not out.has_aux_heads
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert sum(type(m) is nn.AdaptiveAvgPool2d for m in model.modules()) == 13  # eager forward unchanged
    assert out.conv1[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_prepare_without_dropping_heads_keeps_their_input_bn() -> None:
    model = randomize_batchnorm(dsnet.create_model("dsnet_head64", num_classes=3)).eval()
    folded, report = prepare_with_report(model, drop_aux=False)
    left = [n for n, m in folded.named_modules() if isinstance(m, _BatchNorm)]
    assert left == ["seghead_p.bn1", "seghead_d.bn1"]
    x = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        ref, got = model(x, return_aux=True), folded(x, return_aux=True)
    for r, g in zip(ref, got):
        assert rel_error(g, r) <= 3e-4
