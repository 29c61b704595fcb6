"""Evaluation options on real CamVid images: whole vs sliding window, TTA, the authors' random crop."""

from __future__ import annotations

import pytest
import torch

import dsnet
from dsnet.engine.build import build_split
from dsnet.engine.config import Config, apply_overrides
from dsnet.engine.evaluator import evaluate_with_config

from .conftest import shared_path


@pytest.fixture(scope="module")
def setup() -> tuple[torch.nn.Module, object, Config]:
    cfg = apply_overrides(
        Config(),
        [
            "model.name=dsnet_head64",
            "model.num_classes=11",
            "data.dataset=camvid",
            f"data.root={shared_path('data', 'camvid')}",
            "eval.num_workers=0",
        ],
    )
    torch.manual_seed(0)
    model = dsnet.create_model("dsnet_head64", num_classes=11, aux_heads=False).eval()
    return model, build_split(cfg, "val", train=False), cfg


def _run(setup, overrides: list[str], seed: int = 0, images: int = 2):  # type: ignore[no-untyped-def]
    model, dataset, cfg = setup
    cfg = apply_overrides(cfg, [*overrides, f"train.max_val_samples={images}", f"train.seed={seed}"])
    metrics = evaluate_with_config(model, dataset, cfg, device=torch.device("cpu"))
    return metrics, torch.from_numpy(metrics.confusion)  # the metrics carry their confusion matrix


def test_one_window_slide_equals_whole_image(setup) -> None:  # type: ignore[no-untyped-def]
    _, whole = _run(setup, [])
    _, slide = _run(setup, ["eval.mode=slide", "eval.crop_size=[360, 480]", "eval.stride=[240, 320]"])
    assert torch.equal(whole, slide)
    assert int(whole.sum()) == 2 * 360 * 480 - int((setup[1][0][1] == 255).sum() + (setup[1][1][1] == 255).sum())


def test_overlapping_windows_and_tta_count_every_pixel_once(setup) -> None:  # type: ignore[no-untyped-def]
    # one image: overlapping windows and four TTA views cost 2-3 whole passes each
    _, whole = _run(setup, [], images=1)
    _, slide = _run(setup, ["eval.mode=slide", "eval.crop_size=[256, 256]", "eval.stride=[128, 128]"], images=1)
    _, tta = _run(setup, ["eval.scales=[0.5, 1.0]", "eval.flip=true"], images=1)
    assert int(slide.sum()) == int(whole.sum()) == int(tta.sum())


def test_authors_random_crop_protocol_is_seeded(setup) -> None:  # type: ignore[no-untyped-def]
    _, a = _run(setup, ["eval.random_crop=[128, 128]"], seed=1)
    _, b = _run(setup, ["eval.random_crop=[128, 128]"], seed=1)
    assert torch.equal(a, b)
    assert int(a.sum()) <= 2 * 128 * 128
    with pytest.raises(ValueError, match="batch_size=1"):
        _run(setup, ["eval.random_crop=[128, 128]", "eval.batch_size=2"])


def test_ade20k_whole_image_evaluation_at_short_side_512_scores_every_labelled_pixel() -> None:
    cfg = apply_overrides(
        Config(),
        [
            "model.name=dsnet_head64",
            "model.num_classes=150",
            "data.dataset=ade20k",
            f"data.root={shared_path('data', 'ade20k')}",
            "data.val_split=validation",
            "eval.short_side=512",
            "eval.num_workers=0",
        ],
    )
    dataset = build_split(cfg, "validation", train=False)
    image, label = dataset[0]
    assert min(image.shape[-2:]) == 512  # inference at short side 512 ...
    labelled = sum(int((dataset[i][1] != 255).sum()) for i in range(len(dataset)))
    torch.manual_seed(0)
    model = dsnet.create_model("dsnet_head64", num_classes=150, aux_heads=False).eval()
    metrics = evaluate_with_config(model, dataset, cfg, device=torch.device("cpu"))
    assert (
        int(metrics.confusion.sum()) == labelled == metrics.num_pixels
    )  # ... scored on every labelled pixel at the original size
    assert 0.0 <= metrics.miou <= 1.0
