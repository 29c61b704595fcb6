"""How much of each atrous convolution falls on padding: the paper's "atrous disasters" (Sec. 3.1).

A 3x3 convolution with rate ``d`` and padding ``d`` reads, at an output pixel near the border,
taps ``d`` pixels outside the map: zeros. On Cityscapes' 128x256 context-branch maps that is a
few percent of all taps; on the 28x28 maps of 224x224 ImageNet pre-training it is a large share
(22.4 % at ``d=5``, 58.7 % at ``d=15``), so the pre-trained kernels learn on padding.

The share counts, over every output position and every kernel tap, the taps whose input
coordinate lies outside the unpadded map. Taps along height and width are independent, so the
2-D share is ``1 - in_h * in_w`` with ``in_*`` the in-map fraction per axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, overload

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from .tracing import branch_of, check_size, meta_copy, meta_input

__all__ = [
    "TABLE1_SCHEDULES",
    "PaddingRow",
    "atrous_padding",
    "padding_share",
    "parse_schedule",
    "schedule_padding",
]

#: The context-branch rate schedules of the paper's Table 1 (3x3 convolutions at 1/8 resolution).
TABLE1_SCHEDULES: dict[str, str] = {
    "DSNet": "d2x6+d3x6+d5x4",
    "large rate 15": "d2x3+d3x3+d15x10",
    "large rate 12": "d2x3+d3x3+d12x10",
    "rate 5 x10": "d2x3+d3x3+d5x10",
    "rates 2/4/6": "d2x6+d4x6+d6x4",
}


def _in_fraction(n: int, kernel: int, dilation: int, padding: int, stride: int) -> float:
    """Share of the taps along one axis that land inside a map of length ``n``."""
    out = (n + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    if out < 1:
        raise ConfigError(
            f"a {kernel}-tap convolution with dilation {dilation}, padding {padding} has no output on a map of {n}"
        )
    pos = np.arange(out)[:, None] * stride - padding + np.arange(kernel)[None, :] * dilation
    return float(((pos >= 0) & (pos < n)).mean())


def padding_share(
    size: Sequence[int],
    kernel: int | Sequence[int] = 3,
    dilation: int | Sequence[int] = 1,
    padding: int | Sequence[int] | None = None,
    stride: int | Sequence[int] = 1,
) -> float:
    """Share (0-1) of a convolution's kernel taps that fall on padding for an ``(H, W)`` input map.

    ``padding=None`` means size-preserving padding ``dilation * (kernel - 1) // 2``.
    """
    h, w = check_size(size, "map size")

    def two(v: int | Sequence[int]) -> tuple[int, int]:
        return (v, v) if isinstance(v, int) else (int(v[0]), int(v[-1]))

    k, d, s = two(kernel), two(dilation), two(stride)
    p = (d[0] * (k[0] - 1) // 2, d[1] * (k[1] - 1) // 2) if padding is None else two(padding)
    return 1.0 - _in_fraction(h, k[0], d[0], p[0], s[0]) * _in_fraction(w, k[1], d[1], p[1], s[1])


@dataclass(frozen=True)
class PaddingRow:
    """One convolution of a model: its geometry, the map it reads and the share of taps on padding."""

    name: str
    branch: str
    kernel: tuple[int, int]
    dilation: tuple[int, int]
    padding: tuple[int, int]
    stride: tuple[int, int]
    map_size: tuple[int, int]
    share: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _conv_share(conv: nn.Conv2d, size: tuple[int, int]) -> float:
    padding: Any = conv.padding
    if isinstance(padding, str):  # "same" / "valid"
        padding = None if padding == "same" else 0
    return padding_share(size, conv.kernel_size, conv.dilation, padding, conv.stride)


@overload
def atrous_padding(module: nn.Conv2d, input_size: Sequence[int], *, include_dense: bool = ...) -> float: ...
@overload
def atrous_padding(module: nn.Module, input_size: Sequence[int], *, include_dense: bool = ...) -> list[PaddingRow]: ...


def atrous_padding(
    module: nn.Module, input_size: Sequence[int], *, include_dense: bool = False
) -> float | list[PaddingRow]:
    """Share of kernel taps on padding: of one ``nn.Conv2d`` (``input_size`` is its input map), or of
    every atrous convolution (dilation > 1; every k>1 convolution with ``include_dense``) of a model
    run on an ``(H, W)`` input, each at the map size it actually reads.
    """
    size = check_size(input_size)
    if isinstance(module, nn.Conv2d):
        return _conv_share(module, size)
    model = meta_copy(module)
    seen: dict[str, tuple[int, int]] = {}

    def hook(name: str):  # noqa: ANN202
        def record(_module: nn.Module, args: tuple) -> None:
            seen.setdefault(name, tuple(args[0].shape[-2:]))

        return record

    convs = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    handles = [m.register_forward_pre_hook(hook(n)) for n, m in convs.items()]
    try:
        with torch.no_grad():
            model(meta_input(model, size))
    finally:
        for handle in handles:
            handle.remove()
    rows = []
    for name, conv in convs.items():
        atrous = max(conv.dilation) > 1
        dense = max(conv.kernel_size) > 1
        if name not in seen or not (atrous or (include_dense and dense)):
            continue
        rows.append(
            PaddingRow(
                name=name,
                branch=branch_of(module, name),
                kernel=tuple(conv.kernel_size),
                dilation=tuple(conv.dilation),
                padding=tuple(conv.padding) if not isinstance(conv.padding, str) else (-1, -1),
                stride=tuple(conv.stride),
                map_size=seen[name],
                share=_conv_share(conv, seen[name]),
            )
        )
    return rows


def parse_schedule(text: str) -> tuple[int, ...]:
    """``"d2x6+d3x6+d5x4"`` -> six 2s, six 3s, four 5s (one rate per 3x3 convolution)."""
    rates: list[int] = []
    for part in text.replace(" ", "").split("+"):
        rate, _, count = part.lower().removeprefix("d").partition("x")
        try:
            rates += [int(rate)] * (int(count) if count else 1)
        except ValueError:
            raise ConfigError(f"rate schedule {text!r}: {part!r} is not of the form d<rate>x<count>") from None
    if not rates or min(rates) < 1:
        raise ConfigError(f"rate schedule {text!r}: needs at least one positive rate")
    return tuple(rates)


def schedule_padding(rates: Sequence[int] | str, input_size: Sequence[int], output_stride: int = 8) -> float:
    """Mean share of taps on padding of a schedule of 3x3 convolutions (padding = rate) on the
    ``input_size / output_stride`` map: what a context branch of those rates reads.

    All convolutions read maps of one size, so the mean over convolutions is the share of all taps.
    """
    h, w = check_size(input_size)
    rates = parse_schedule(rates) if isinstance(rates, str) else tuple(rates)
    size = (-(-h // output_stride), -(-w // output_stride))
    return sum(padding_share(size, 3, r) for r in rates) / len(rates)
