"""Schedule, batch order, inference modes, training-state round trip."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

import dsnet
from dsnet.engine.sampler import ResumableBatchSampler
from dsnet.engine.schedule import poly_lr
from dsnet.engine.state import capture_rng_state, load_training_state, restore_rng_state, save_training_state
from dsnet.inference import InferenceOptions, predict_probs, slide_logits, whole_logits
from dsnet.models import CheckpointError

from .tolerances import assert_close_to_scale, sum_rel


def test_poly_schedule_and_warmup() -> None:
    assert poly_lr(0.01, 0, 100) == 0.01
    assert poly_lr(0.01, 50, 100) == pytest.approx(0.01 * 0.5**0.9)
    assert poly_lr(0.01, 100, 100) == 0.0
    assert poly_lr(0.01, 0, 100, warmup_iters=10, warmup_ratio=0.1) == pytest.approx(0.001)
    assert poly_lr(0.01, 5, 100, warmup_iters=10, warmup_ratio=0.1) == pytest.approx(0.01 * (1 - 0.05) ** 0.9 * 0.55)
    assert poly_lr(0.01, 10, 100, warmup_iters=10) == pytest.approx(0.01 * 0.9**0.9)


def _take(sampler: ResumableBatchSampler, n: int) -> list[list[tuple[int, int]]]:
    it = iter(sampler)
    return [next(it) for _ in range(n)]


def test_sampler_resumes_exactly_and_shards_disjointly() -> None:
    full = _take(ResumableBatchSampler(10, 2, seed=3), 12)
    resumed = _take(ResumableBatchSampler(10, 2, seed=3, start_iter=7), 5)
    assert resumed == full[7:]
    # epochs: 5 batches each, a fresh permutation per epoch, drop_last
    epoch0 = [i for b in full[:5] for i, _ in b]
    epoch1 = [i for b in full[5:10] for i, _ in b]
    assert sorted(epoch0) == list(range(10)) and epoch0 != epoch1
    assert {e for b in full[5:10] for _, e in b} == {1}
    r0 = _take(ResumableBatchSampler(11, 2, rank=0, world_size=2, seed=3), 2)
    r1 = _take(ResumableBatchSampler(11, 2, rank=1, world_size=2, seed=3), 2)
    idx0 = {i for b in r0 for i, _ in b}
    idx1 = {i for b in r1 for i, _ in b}
    assert not idx0 & idx1 and len(idx0 | idx1) == 8


def test_sampler_rejects_too_small_datasets() -> None:
    with pytest.raises(ValueError, match="fewer than one global batch"):
        ResumableBatchSampler(3, 2, world_size=2)


@pytest.fixture(scope="module")
def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return dsnet.create_model("dsnet_head64", num_classes=3, aux_heads=False).eval()


def test_whole_inference_pads_odd_sizes(tiny_model: torch.nn.Module) -> None:
    x = torch.randn(1, 3, 45, 61)
    out = whole_logits(tiny_model, x)
    assert out.shape == (1, 3, 45, 61)
    padded = tiny_model(torch.nn.functional.pad(x, (0, 3, 0, 3)))
    assert torch.equal(out, padded[..., :45, :61])  # the same model on the same padded tensor: exact


def test_slide_with_one_window_equals_whole(tiny_model: torch.nn.Module) -> None:
    x = torch.randn(1, 3, 48, 64)
    with torch.no_grad():
        # one window of the whole image, added once to zeros and divided by a count of 1: exact
        assert torch.equal(slide_logits(tiny_model, x, (48, 64), (32, 32)), whole_logits(tiny_model, x))
        out = slide_logits(tiny_model, x, (32, 32), (16, 16))
    assert out.shape == (1, 3, 48, 64) and torch.isfinite(out).all()


def test_tta_returns_probabilities(tiny_model: torch.nn.Module) -> None:
    x = torch.randn(2, 3, 48, 64)
    out = predict_probs(tiny_model, x, InferenceOptions(scales=(0.75, 1.0), flip=True))
    assert out.shape == (2, 3, 48, 64)
    # 4 views of 3 probabilities, each rounded (exp, division), averaged and summed: 2 x 3 x 4 float32 terms
    assert_close_to_scale(out.sum(dim=1), torch.ones(2, 48, 64), rel=sum_rel(2 * 3 * 4), what="sum of probabilities")
    # flip TTA of a mirror-symmetric input is itself symmetric: the flipped view is the same tensor, so
    # its result is bitwise the mirror image and (p + mirror) / 2 is exact (float addition commutes)
    sym = torch.cat([x[..., :32], x[..., :32].flip(-1)], dim=-1)
    out = predict_probs(tiny_model, sym, InferenceOptions(flip=True))
    assert torch.equal(out, out.flip(-1))


@pytest.mark.parametrize(
    "options",
    [
        InferenceOptions(),
        InferenceOptions(flip=True),
        InferenceOptions(scales=(0.5, 1.0)),
        InferenceOptions("slide", (32, 32)),
    ],
    ids=["plain", "flip", "multi-scale", "slide"],
)
def test_the_result_type_does_not_change_with_the_options(
    tiny_model: torch.nn.Module, options: InferenceOptions
) -> None:
    x = torch.randn(2, 3, 45, 61)  # not a multiple of 8: padded and cropped back in one place
    out = predict_probs(tiny_model, x, options)
    assert out.shape == (2, 3, 45, 61) and out.dtype == torch.float32
    views = 4 if options.flip or len(options.scales) > 1 else 1  # at most 2 x 2 views (or windows)
    sums = out.sum(dim=1)
    assert_close_to_scale(sums, torch.ones(2, 45, 61), rel=sum_rel(2 * 3 * views), what="sum of probabilities")
    if options == InferenceOptions():
        assert torch.equal(out, whole_logits(tiny_model, x).softmax(dim=1))  # one view: the same softmax, exact


def test_inference_argument_errors(tiny_model: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="'whole' or 'slide'"):
        InferenceOptions(mode="tile")
    with pytest.raises(ValueError, match="crop size"):
        InferenceOptions(mode="slide")
    with pytest.raises(ValueError, match="scales"):
        InferenceOptions(scales=())


def test_rng_state_round_trip(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    state = capture_rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    path = save_training_state(tmp_path / "s.pth", rng=state, iteration=5)
    loaded = load_training_state(path)  # weights_only=True inside
    restore_rng_state(loaded["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a
    assert loaded["iteration"] == 5


def test_training_state_rejects_plain_weights(tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    torch.save({"conv.weight": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="not a dsnet training state"):
        load_training_state(path)
