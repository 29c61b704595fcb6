"""Fold BatchNorm into the convolution that feeds it, found by dataflow (torch.fx), not by names.

Why fx: a pair is foldable only when the BN's input *is* the conv's output and nothing else
reads that output. Attribute names cannot say that (DSNet's ``AuxiliaryHead.bn1`` normalises
the head's input, ``SegmentationHead`` pairs ``conv1`` with ``bn2``), a traced graph can. Each
submodule is traced on its own, from the top down; a module fx cannot trace (``DSNet.forward``
checks the input shape in Python) is not traced itself, its children are. A BN that follows a
conv across such an untraceable boundary is therefore left alone: missing a pair is safe,
folding a wrong one is not.
"""

from __future__ import annotations

from collections import Counter

import torch
from torch import fx, nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["find_conv_bn_pairs", "fold_batchnorm"]

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _pairs_in_graph(graph: fx.Graph, root: nn.Module, prefix: str) -> list[tuple[str, str]]:
    calls = Counter(node.target for node in graph.nodes if node.op == "call_module")
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(root.get_submodule(node.target), _BatchNorm):
            continue
        src = node.args[0] if node.args else None
        if not (isinstance(src, fx.Node) and src.op == "call_module"):
            continue
        conv = root.get_submodule(src.target)
        # the conv output must feed this BN only, and each module must run once (no weight sharing)
        if isinstance(conv, _CONVS) and len(src.users) == 1 and calls[src.target] == calls[node.target] == 1:
            pairs.append((prefix + src.target, prefix + node.target))
    return pairs


def find_conv_bn_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """``(conv name, bn name)`` for every BN whose only input is a conv output read by nothing else."""
    pairs: list[tuple[str, str]] = []

    def visit(module: nn.Module, prefix: str) -> None:
        if isinstance(module, (*_CONVS, _BatchNorm)) or not any(True for _ in module.children()):
            return
        try:
            graph = fx.Tracer().trace(module)
        except Exception:  # untraceable forward (Python control flow on tensors): look one level down
            for name, child in module.named_children():
                visit(child, f"{prefix}{name}.")
            return
        pairs.extend(_pairs_in_graph(graph, module, prefix))

    visit(model, "")
    return pairs


@torch.no_grad()
def _fold_into(conv: nn.Module, bn: _BatchNorm) -> None:
    """Rescale ``conv`` so that ``conv'(x) == bn(conv(x))`` with ``bn`` in inference mode (float64 maths)."""
    w = conv.weight
    scale = (bn.running_var.double() + bn.eps).rsqrt()
    if bn.weight is not None:
        scale = scale * bn.weight.double()
    shift = -bn.running_mean.double() * scale
    if bn.bias is not None:
        shift = shift + bn.bias.double()
    bias = shift if conv.bias is None else conv.bias.double() * scale + shift
    shape = (-1,) + (1,) * (w.dim() - 1)
    conv.weight.copy_((w.double() * scale.reshape(shape)).to(w.dtype))
    if conv.bias is None:
        conv.bias = nn.Parameter(bias.to(dtype=w.dtype, device=w.device))
    else:
        conv.bias.copy_(bias.to(conv.bias.dtype))


def fold_batchnorm(model: nn.Module) -> list[tuple[str, str]]:
    """Fold every foldable conv->BN pair of ``model`` in place (BN becomes ``nn.Identity``).

    Only BNs with running statistics are folded (one that normalises with batch statistics has
    nothing fixed to fold). Returns the folded ``(conv, bn)`` names.
    """
    folded = []
    for conv_name, bn_name in find_conv_bn_pairs(model):
        bn = model.get_submodule(bn_name)
        if bn.running_mean is None or bn.running_var is None:
            continue
        _fold_into(model.get_submodule(conv_name), bn)
        parent_name, _, child = bn_name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, nn.Identity())
        folded.append((conv_name, bn_name))
    return folded
