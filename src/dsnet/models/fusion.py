"""Ways to fuse the context branch into the spatial branch (paper Table 4): MSAF, Add, AFF, iAFF.

Every fusion is a module called ``fusion(spatial, context)`` that returns a map of the same shape,
so the network uses any of them at its three lateral connections (``aff1..3``).

The attention fusions share one output form, ``2*a*spatial + 2*(1-a)*context`` with ``a`` in
[0, 1]: the reference's MSAF (and the AFF code of Dai et al. it derives from) has the factor 2,
and with it every attention fusion equals ``Add`` at ``a = 1/2``. AFF and iAFF follow Dai et al.,
"Attentional Feature Fusion" (WACV 2021): the attention is their multi-scale channel attention
(MS-CAM, a pixel-wise bottleneck plus a global one, summed, sigmoid); iAFF computes a first
fusion with one MS-CAM and feeds it to a second MS-CAM that gives the final weight. The
bottlenecks are MSAF's own (``_attention_bottleneck``), so AFF's ``local_att``/``global_att`` have
the shapes and names of MSAF's and load from a DSNet checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn

from .blocks import MSAF, _attention_bottleneck

__all__ = ["AddFusion", "AFF", "IAFF", "FUSIONS", "build_fusion"]


class AddFusion(nn.Module):
    """Element-wise addition (Table 4's "Add"): no parameters."""

    def forward(self, spatial: Tensor, context: Tensor) -> Tensor:
        return spatial + context


class AFF(nn.Module):
    """Attentional feature fusion: ``a = sigmoid(local(s + c) + global(s + c))``.

    Args:
        channels: width of both inputs.
        reduction: bottleneck reduction (inter = channels // reduction), 4 as in MSAF.
    """

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        inter = channels // reduction
        self.local_att = _attention_bottleneck(channels, inter, None)
        self.global_att = _attention_bottleneck(channels, inter, 1)
        self.sigmoid = nn.Sigmoid()

    def attention(self, spatial: Tensor, context: Tensor) -> Tensor:
        """The weight ``a`` in [0, 1] given to the spatial input."""
        xa = spatial + context
        return self.sigmoid(self.local_att(xa) + self.global_att(xa))

    def forward(self, spatial: Tensor, context: Tensor) -> Tensor:
        return _blend(spatial, context, self.attention(spatial, context))


class IAFF(AFF):
    """Iterative AFF: a first AFF gives an initial fusion, whose MS-CAM (``local_att2``,
    ``global_att2``) gives the final weight."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__(channels, reduction)
        inter = channels // reduction
        self.local_att2 = _attention_bottleneck(channels, inter, None)
        self.global_att2 = _attention_bottleneck(channels, inter, 1)

    def attention(self, spatial: Tensor, context: Tensor) -> Tensor:
        first = _blend(spatial, context, super().attention(spatial, context))
        return self.sigmoid(self.local_att2(first) + self.global_att2(first))


def _blend(spatial: Tensor, context: Tensor, a: Tensor) -> Tensor:
    return 2 * spatial * a + 2 * context * (1 - a)


def _msaf(channels: int, reduction: int, region_sizes: Sequence[int]) -> nn.Module:
    return MSAF(channels, reduction, region_sizes)


def _add(channels: int, reduction: int, region_sizes: Sequence[int]) -> nn.Module:
    return AddFusion()


def _aff(channels: int, reduction: int, region_sizes: Sequence[int]) -> nn.Module:
    return AFF(channels, reduction)


def _iaff(channels: int, reduction: int, region_sizes: Sequence[int]) -> nn.Module:
    return IAFF(channels, reduction)


#: name -> constructor ``(channels, reduction, region_sizes)``; ``msaf`` is DSNet's.
FUSIONS: dict[str, Callable[[int, int, Sequence[int]], nn.Module]] = {
    "msaf": _msaf,
    "add": _add,
    "aff": _aff,
    "iaff": _iaff,
}


def build_fusion(kind: str, channels: int, reduction: int = 4, region_sizes: Sequence[int] = (4, 8, 16)) -> nn.Module:
    """A fusion module of ``kind`` (a key of :data:`FUSIONS`)."""
    if kind not in FUSIONS:
        raise ValueError(f"unknown fusion {kind!r}; choose from {list(FUSIONS)}")
    return FUSIONS[kind](channels, reduction, region_sizes)
