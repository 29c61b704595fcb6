"""Tolerances for comparing floating-point results, derived from rounding, not from one machine.

Two evaluations of the same float32 function (another batch size, memory layout, CPU instruction
set, runtime, or BatchNorm folded into the weights) differ by rounding only, and how much depends on
the kernels the machine picks: an AVX-512 CPU sums a batch of 3 in another order than an AVX2 one.
So every bound here is (a) relative to the scale of the values compared, since rounding errors are
proportional to the magnitudes summed, and (b) derived from the float32 precision and the length of
the sums involved. Results that are exact by construction (same process, same kernel, same input)
are still compared exactly in the tests, without these helpers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

EPS32 = float(np.finfo(np.float32).eps)  # 2**-23 ~ 1.19e-7: the float32 spacing at 1.0
EPS64 = float(np.finfo(np.float64).eps)  # 2**-52 ~ 2.2e-16


def _array(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def elementwise_rel(ops: int, eps: float = EPS32) -> float:
    """``ops * eps``: a chain of ``ops`` elementwise operations, each rounding once (half an ulp, or
    none when fused into an FMA), relative to the largest operand; a factor 2 of margin over the
    worst case. Used where the code and the test write the same formula in another order."""
    return ops * eps


def sum_rel(n: int, eps: float = EPS32) -> float:
    """``n * eps``: the worst-case error of a sum of ``n`` terms in any order (Higham's gamma_n = n*eps/2,
    with a factor 2 of margin for the rounding of each term), relative to the sum of their magnitudes."""
    return n * eps


def reduction_rel(n: int, eps: float = EPS32, k: float = 4.0) -> float:
    """``k * eps * sqrt(n)``: a dot product or sum of ``n`` terms in another order (blocked, SIMD lanes),
    relative to the sum of the terms' magnitudes; rounding errors add like a random walk, and k = 4
    standard deviations. Tighter than :func:`sum_rel` for long reductions, where n * eps says nothing."""
    return k * eps * math.sqrt(n)


def forward_rel(model: nn.Module, eps: float = EPS32) -> float:
    """``eps * sqrt(K) * L``: error of one forward pass relative to max |output|.

    K is the longest reduction behind one output value (in_channels / groups * kh * kw of the widest
    convolution, or a linear layer's in_features) and L the number of convolution and linear layers.
    Each layer's dot products of length <= K round with a random-walk error of about eps * sqrt(K) of
    their scale; L bounds the depth of any path through the network, and adding the layers' errors
    linearly (rather than in quadrature) leaves room for BatchNorm gains above 1. For dsnet_head64:
    2304 and 101, so 5.8e-4 in float32 and 1.1e-12 in float64. Measured on this project's CPUs: 4.5e-6
    between batch sizes of a BatchNorm-calibrated model, 3.4e-4 for an export of a network with random
    BatchNorm statistics (activations of 1e4) against float64, 4e-4 and 1e-12 on the golden fill. Two
    float32 evaluations compared with each other may each be off by this much: use ``2 * forward_rel``.
    """
    widths, layers = [], 0
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            widths.append(m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1])
            layers += 1
        elif isinstance(m, nn.Linear):
            widths.append(m.in_features)
            layers += 1
    if not layers:
        raise ValueError("forward_rel needs a model with convolution or linear layers")
    return eps * math.sqrt(max(widths)) * layers


def softmax_abs(logit_abs: float) -> float:
    """Bound on the change of any softmax probability when every logit moves by at most ``logit_abs``.

    To first order dp_i = p_i * (dz_i - sum_j p_j dz_j), and |dz_i - sum_j p_j dz_j| <= 2 (1 - p_i) d,
    so |dp_i| <= 2 p_i (1 - p_i) d <= d / 2. The bound returned is d: a factor 2 for second-order terms
    and the rounding of the softmax itself."""
    return logit_abs


def scale_of(x: Any) -> float:
    """max |x|: the scale that rounding errors of x are relative to."""
    return float(np.abs(_array(x)).max())


def assert_close_to_scale(actual: Any, expected: Any, *, rel: float, what: str, scale: float | None = None) -> None:
    """Assert max |actual - expected| <= rel * scale, the scale being max |expected| unless given.

    One bound for the whole tensor, relative to its scale: rounding errors are proportional to the
    magnitudes that were summed, not to each element (an element near 0 can carry the full error of
    the large terms that cancelled in it), so an element-wise rtol is wrong and an atol depends on the
    units. ``rel`` comes from the helpers above; ``what`` names the comparison in the failure."""
    a, e = _array(actual).astype(np.float64), _array(expected).astype(np.float64)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != {e.shape}"
    s = scale_of(e) if scale is None else float(scale)
    worst = float(np.abs(a - e).max()) if a.size else 0.0
    assert worst <= rel * s, f"{what}: max |difference| {worst:.3g} > {rel:.3g} x scale {s:.3g} = {rel * s:.3g}"


def assert_labels_agree(labels_a: Any, labels_b: Any, scores: Any, tol: float, what: str) -> None:
    """Assert two label maps differ only at near ties of ``scores``.

    ``scores`` (C, H, W) or (N, C, H, W) are the class scores one label map is the argmax of (logits
    or probabilities), and ``tol`` bounds the error of each score in the other computation (e.g.
    ``2 * forward_rel(model) * scale_of(logits)``). Where the maps differ, both labels' scores must be
    within ``2 * tol`` of the best score: the gap between two scores moves by at most twice the error of
    one. Anywhere else a differing label is a real disagreement and fails, naming how many pixels."""
    a, b, s = _array(labels_a).astype(np.int64), _array(labels_b).astype(np.int64), _array(scores).astype(np.float64)
    assert a.shape == b.shape, f"{what}: label shapes {a.shape} != {b.shape}"
    assert s.ndim == a.ndim + 1, f"{what}: scores {s.shape} need one class axis more than labels {a.shape}"
    axis = s.ndim - 3  # the class axis comes before H and W
    best = s.max(axis=axis)
    at_a = np.take_along_axis(s, np.expand_dims(a, axis), axis).squeeze(axis)
    at_b = np.take_along_axis(s, np.expand_dims(b, axis), axis).squeeze(axis)
    differ = a != b
    real = differ & ((best - at_a > 2 * tol) | (best - at_b > 2 * tol))
    assert not real.any(), (
        f"{what}: {int(real.sum())} of {a.size} labels differ where the scores are not within 2 x {tol:.3g} "
        f"of a tie ({int(differ.sum())} differ in all)"
    )
