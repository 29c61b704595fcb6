"""Effective receptive field: support of known convolutions and the area-ratio convention."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dsnet.analysis.erf import effective_receptive_field, high_contribution_ratios, image_inputs, random_inputs
from dsnet.errors import ConfigError


def positive_conv(k: int) -> nn.Conv2d:
    conv = nn.Conv2d(1, 2, k, padding=k // 2)
    nn.init.constant_(conv.weight, 1.0)
    nn.init.zeros_(conv.bias)
    return conv


def support(scores: np.ndarray) -> tuple[slice, ...]:
    ys, xs = np.nonzero(scores)
    return slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)


def test_single_3x3_conv_has_a_3x3_support() -> None:
    inputs = [torch.rand(1, 1, 9, 9) for _ in range(2)]
    result = effective_receptive_field(positive_conv(3), inputs)
    expected = np.zeros((9, 9))
    expected[3:6, 3:6] = 2.0  # two output channels, weight 1 each
    np.testing.assert_allclose(result.scores, expected)
    assert result.num_inputs == 2 and result.layer == ""
    # random weights: ReLU of the gradient keeps a subset of the 3x3 window
    conv = nn.Conv2d(1, 3, 3, padding=1)
    random = effective_receptive_field(conv, random_inputs(3, (9, 9), channels=1)).scores
    assert np.all(random[np.ones((9, 9), bool) & ~np.pad(np.ones((3, 3), bool), 3)] == 0)


def test_layer_choice_and_model_state() -> None:
    net = nn.Sequential(positive_conv(3), nn.ReLU(), nn.Conv2d(2, 1, 3, padding=1))
    nn.init.constant_(net[2].weight, 1.0)
    net.train()
    x = [torch.rand(1, 1, 11, 11)]
    first = effective_receptive_field(net, x, layer="0").scores
    whole = effective_receptive_field(net, x).scores
    assert support(first) == (slice(4, 7), slice(4, 7)) and support(whole) == (slice(3, 8), slice(3, 8))
    assert net.training  # restored
    with pytest.raises(ConfigError, match="no layer 'nope'"):
        effective_receptive_field(net, x, layer="nope")


def test_area_ratio_convention() -> None:
    point = np.zeros((7, 7))
    point[3, 3] = 5.0
    assert high_contribution_ratios(point) == {t: (1, 1 / 49) for t in (0.2, 0.3, 0.5, 0.99)}
    uniform = np.ones((5, 5))  # the centred 1x1 holds 4 %, 3x3 36 %, 5x5 all of it
    assert high_contribution_ratios(uniform, (0.03, 0.2, 0.5, 0.99, 1.0)) == {
        0.03: (1, 0.04),
        0.2: (3, 0.36),
        0.5: (5, 1.0),
        0.99: (5, 1.0),
        1.0: (5, 1.0),
    }
    wide = np.ones((3, 9))  # squares are clipped to the map: side 5 covers 3x5
    assert high_contribution_ratios(wide, (0.5,)) == {0.5: (5, 15 / 27)}
    # nothing to measure: no crash, no answer
    assert high_contribution_ratios(np.zeros((4, 4))) == {t: None for t in (0.2, 0.3, 0.5, 0.99)}
    assert high_contribution_ratios(np.ones((3, 3)), (1.5,)) == {1.5: None}


def test_image_inputs_are_cropped_and_normalised(tmp_path) -> None:  # noqa: ANN001
    import cv2

    image = np.full((30, 50, 3), 255, np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), image)
    (x,) = list(image_inputs([tmp_path / "a.png"], (16, 16), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)))
    assert x.shape == (1, 3, 16, 16)
    torch.testing.assert_close(x, torch.full_like(x, 2.0))
