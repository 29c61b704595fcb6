"""The suite's tolerance helpers (tests/tolerances.py) accept rounding and refuse real differences."""

from __future__ import annotations

import math

import numpy as np
import pytest

import dsnet

from .tolerances import EPS32, assert_close_to_scale, assert_labels_agree, forward_rel, softmax_abs


def test_close_to_scale_is_relative_to_the_largest_value() -> None:
    expected = np.array([1000.0, 0.001, -2.0], np.float32)
    assert_close_to_scale(expected + np.array([0, 0.05, 0]), expected, rel=1e-4, what="x")  # 0.05 <= 0.1
    with pytest.raises(AssertionError, match=r"x: max \|difference\| 0.2 > 0.0001 x scale 1e\+03"):
        assert_close_to_scale(expected + np.array([0, 0.2, 0]), expected, rel=1e-4, what="x")
    with pytest.raises(AssertionError, match="shape"):
        assert_close_to_scale(expected[:2], expected, rel=1.0, what="x")


def test_labels_may_differ_only_at_near_ties() -> None:
    scores = np.zeros((3, 2, 2))
    scores[0] = [[5.0, 1.0], [2.0, 3.0]]
    scores[1] = [[5.0 - 1e-6, 0.0], [0.0, 0.0]]  # a near tie at (0, 0) only
    labels = scores.argmax(0)
    other = labels.copy()
    other[0, 0] = 1
    assert_labels_agree(other, labels, scores, tol=1e-6, what="near tie")
    other[1, 1] = 1  # 3.0 vs 0.0: a real disagreement
    with pytest.raises(AssertionError, match="1 of 4 labels differ"):
        assert_labels_agree(other, labels, scores, tol=1e-6, what="real")
    batched = np.stack([scores, scores])  # (N, C, H, W) with (N, H, W) labels
    with pytest.raises(AssertionError, match="1 of 8 labels differ"):
        assert_labels_agree(np.stack([labels, other]), np.stack([labels, labels]), batched, tol=1e-6, what="batch")


def test_forward_bound_of_dsnet_head64_and_softmax_bound() -> None:
    model = dsnet.create_model("dsnet_head64", num_classes=19)
    assert forward_rel(model) == pytest.approx(EPS32 * math.sqrt(256 * 9) * 101)  # 5.8e-4, as documented
    logits = np.array([2.0, 1.0, -1.0])
    d = 1e-3
    p = np.exp(logits) / np.exp(logits).sum()
    moved = logits + np.array([d, -d, d])
    q = np.exp(moved) / np.exp(moved).sum()
    assert np.abs(q - p).max() <= softmax_abs(d) / 2 * 1.01  # first order: at most d / 2
