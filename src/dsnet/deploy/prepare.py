"""``prepare``: the inference form of a trained DSNet, as transforms of a copy of the same module."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from .fold import fold_batchnorm
from .pooling import replace_adaptive_pools

__all__ = ["PrepareReport", "prepare", "prepare_with_report"]


@dataclass
class PrepareReport:
    """What :func:`prepare_with_report` changed: folded ``(conv, bn)`` pairs, dropped heads, swapped pools."""

    folded: list[tuple[str, str]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    pools_replaced: int = 0
    channels_last: bool = False


def prepare_with_report(
    model: nn.Module,
    *,
    fold_bn: bool = True,
    drop_aux: bool = True,
    exportable_pooling: bool = True,
    channels_last: bool = False,
) -> tuple[nn.Module, PrepareReport]:
    """A transformed deep copy of ``model`` in eval mode, and what was done to it.

    Args:
        fold_bn: fold each BatchNorm that directly follows a convolution into it (see
            :mod:`dsnet.deploy.fold`); a BN with no conv before it (``AuxiliaryHead.bn1``) stays.
        drop_aux: remove the training-only auxiliary heads (``seghead_p``/``seghead_d``).
        exportable_pooling: replace ``nn.AdaptiveAvgPool2d`` by the matrix form, which is exact
            and exportable at any input size (see :mod:`dsnet.deploy.pooling`).
        channels_last: store 4-D weights channels-last (faster convolutions on some CPUs/GPUs).
    The input model is left untouched.
    """
    out = copy.deepcopy(model).eval()
    report = PrepareReport(channels_last=channels_last)
    if drop_aux:
        for name in ("seghead_p", "seghead_d"):
            if getattr(out, name, None) is not None:
                setattr(out, name, None)
                report.dropped.append(name)
    if fold_bn:
        report.folded = fold_batchnorm(out)
    if exportable_pooling:
        report.pools_replaced = replace_adaptive_pools(out)
    if channels_last:
        out = out.to(memory_format=torch.channels_last)
    return out, report


def prepare(
    model: nn.Module,
    fold_bn: bool = True,
    drop_aux: bool = True,
    channels_last: bool = False,
    exportable_pooling: bool = True,
) -> nn.Module:
    """The deploy form of ``model`` (a transformed deep copy in eval mode); see :func:`prepare_with_report`."""
    return prepare_with_report(
        model, fold_bn=fold_bn, drop_aux=drop_aux, exportable_pooling=exportable_pooling, channels_last=channels_last
    )[0]
