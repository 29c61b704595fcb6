"""Theoretical receptive fields on the dataflow graph, with the set of scales every tensor carries.

Why not a chain: DSNet has two branches, concatenations, residual additions and upsampling, so a
feature map is reached by many paths of different lengths. Each path has its own receptive field
(RF) and the map carries all of them at once: MFACB concatenates three cascaded atrous convs to
hold three scales (paper Table 2). Tools that accumulate one RF along one chain report a single,
wrong number for such a network.

How: the model runs once on the ``meta`` device (shapes only) under a ``TorchFunctionMode`` that
sees every tensor operation, the functional ones (``torch.cat``, ``+``, ``F.interpolate``)
included, and propagates, per tensor and per axis:

* ``jump``: the distance in input pixels between neighbouring output pixels (a ``Fraction``);
* ``scales``: the RF sizes of every path from the input to the tensor. A convolution or pooling
  window with kernel ``k`` and dilation ``d`` adds ``(k-1)*d*jump`` and multiplies the jump by its
  stride; padding changes neither (it shifts the output, not the RF). Element-wise operations and
  concatenation take the union of their inputs' scales; a broadcast 1x1 map adds its scales
  unchanged. Resizing divides the jump; bilinear adds the one extra input pixel it reads
  (``+jump_in``), bicubic three, nearest none;
* ``pooled``: the same for paths that pass through adaptive pooling (image- or region-level
  context, as in MSAF and SPASPP's image pooling). A bin of ``ceil(n/s)`` pixels is a window of
  that size, so these sizes depend on the input size and are kept apart from the local ones.

Every module reports the fields of its output (``row.name`` as in ``named_modules()``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from ..errors import ConfigError
from .tracing import branch_of, meta_copy, meta_input

__all__ = ["RFRow", "receptive_fields"]

Sizes = frozenset[Fraction]


@dataclass(frozen=True)
class _Axis:
    jump: Fraction
    scales: Sizes  # local paths
    pooled: Sizes  # paths through adaptive pooling

    def grow(self, extent: Fraction, stride: Fraction = Fraction(1)) -> _Axis:
        """A window of ``extent`` input-map pixels beyond the first one, then a stride."""
        add = extent * self.jump
        scales = frozenset(s + add for s in self.scales)
        return _Axis(self.jump * stride, scales, frozenset(s + add for s in self.pooled))


_Field = tuple[_Axis, _Axis]  # (height, width)


def _union(fields: list[_Field], jumps_from: list[_Field]) -> _Field:
    out = []
    for axis in range(2):
        jump = jumps_from[0][axis].jump if jumps_from else fields[0][axis].jump
        scales = frozenset().union(*(f[axis].scales for f in fields))
        pooled = frozenset().union(*(f[axis].pooled for f in fields))
        out.append(_Axis(jump, scales, pooled))
    return out[0], out[1]


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    values = tuple(value)
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


def _arg(args: tuple, kwargs: dict, index: int, name: str, default: Any) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else default


_INTERP_EXTRA = {"nearest": 0, "nearest-exact": 0, "area": 0, "bilinear": 1, "bicubic": 3}


class _RFMode(TorchFunctionMode):
    """Propagates the fields of every 4-D tensor through every torch function call."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[int, tuple[Tensor, _Field]] = {}  # id -> (tensor kept alive, field)

    def get(self, t: Any) -> _Field | None:
        entry = self.fields.get(id(t)) if isinstance(t, Tensor) else None
        return entry[1] if entry is not None and entry[0] is t else None

    def set(self, t: Tensor, field: _Field) -> None:
        self.fields[id(t)] = (t, field)

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 (torch's signature)
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if not isinstance(out, Tensor) or out.dim() != 4:
            return out
        name = getattr(func, "__name__", str(func))
        inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, Tensor)]
        traced = [(t, f) for t in inputs if (f := self.get(t)) is not None]
        if not traced:
            return out
        x, field = traced[0]
        if name in ("conv2d", "_conv_forward"):
            weight = args[1] if len(args) > 1 else kwargs["weight"]
            kh, kw = weight.shape[-2:]
            stride = _pair(_arg(args, kwargs, 3, "stride", 1))
            dilation = _pair(_arg(args, kwargs, 5, "dilation", 1))
            new = self._window(field, (kh, kw), stride, dilation)
        elif "max_pool2d" in name or name == "avg_pool2d":
            kernel = _pair(_arg(args, kwargs, 1, "kernel_size", None))
            stride_arg = _arg(args, kwargs, 2, "stride", None)
            stride = kernel if stride_arg in (None, []) else _pair(stride_arg)
            dilation = _pair(_arg(args, kwargs, 4, "dilation", 1)) if "max" in name else (1, 1)
            new = self._window(field, kernel, stride, dilation)
        elif name.startswith("adaptive_") and name.endswith("pool2d"):
            new = self._adaptive(field, x.shape[-2:], out.shape[-2:])
        elif name in ("interpolate", "upsample"):
            mode = _arg(args, kwargs, 3, "mode", "nearest")
            new = self._resize(field, x.shape[-2:], out.shape[-2:], _INTERP_EXTRA.get(mode, 1))
        else:
            new = self._pointwise(name, out, traced)
        self.set(out, new)
        return out

    @staticmethod
    def _window(field: _Field, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]) -> _Field:
        return tuple(  # type: ignore[return-value]
            field[a].grow(Fraction((kernel[a] - 1) * dilation[a]), Fraction(stride[a])) for a in range(2)
        )

    @staticmethod
    def _adaptive(field: _Field, size_in: Sequence[int], size_out: Sequence[int]) -> _Field:
        out = []
        for a in range(2):
            n, s = size_in[a], size_out[a]
            extent = Fraction(math.ceil(n / s) - 1)  # the largest bin, PyTorch's binning
            grown = field[a].grow(extent, Fraction(n, s))
            # every size of the output comes from a pooled path now
            out.append(_Axis(grown.jump, frozenset(), grown.scales | grown.pooled))
        return out[0], out[1]

    @staticmethod
    def _resize(field: _Field, size_in: Sequence[int], size_out: Sequence[int], extra: int) -> _Field:
        return tuple(  # type: ignore[return-value]
            field[a].grow(Fraction(extra if 1 < size_in[a] != size_out[a] else 0), Fraction(size_in[a], size_out[a]))
            for a in range(2)
        )

    @staticmethod
    def _pointwise(name: str, out: Tensor, traced: list[tuple[Tensor, _Field]]) -> _Field:
        h, w = out.shape[-2:]
        full = [f for t, f in traced if t.dim() == 4 and tuple(t.shape[-2:]) == (h, w)]
        spatial_ok = all(t.dim() < 4 or t.shape[-2] in (1, h) and t.shape[-1] in (1, w) for t, _ in traced)
        if name == "cat" or name == "concat" or name == "concatenate":
            spatial_ok = spatial_ok and len(full) == len(traced)
        if not spatial_ok:
            shapes = ", ".join(str(tuple(t.shape)) for t, _ in traced)
            raise ConfigError(
                f"receptive fields: {name} turns inputs of shape {shapes} into {tuple(out.shape)}; only "
                "convolutions, pooling, resizing and element-wise or channel-wise operations are supported"
            )
        return _union([f for _, f in traced], full)


def _num(x: Fraction) -> int | float:
    return int(x) if x.denominator == 1 else float(x)


@dataclass(frozen=True)
class RFRow:
    """The receptive field of one module's output.

    ``scales``/``pooled`` are the RF sizes (input pixels, along the height) of the local paths
    and of the paths through adaptive pooling; ``scales_w``/``pooled_w`` the same along the
    width (they differ only where a layer or a pooling bin is not square). ``jump`` is the
    output's stride in input pixels (height, width). ``branch`` names DSNet's part (``spatial``,
    ``context``, ``fusion``, ``stem``, ``detail``, ``decoder``), empty for other models.
    ``calls`` counts the module's calls in one forward pass: a module used several times (DSNet's
    shared ``relu``) reports its last call.
    """

    name: str
    type: str
    branch: str
    shape: tuple[int, ...]
    jump: tuple[int | float, int | float]
    scales: tuple[int | float, ...]
    scales_w: tuple[int | float, ...]
    pooled: tuple[int | float, ...]
    pooled_w: tuple[int | float, ...]
    calls: int = 1

    @property
    def rf(self) -> int | float:
        """The largest local receptive field (height); 0 if every path goes through adaptive pooling."""
        return max(self.scales, default=0)

    @property
    def rf_w(self) -> int | float:
        return max(self.scales_w, default=0)

    @property
    def pooled_rf(self) -> int | float | None:
        """The largest receptive field of a path through adaptive pooling (height), None without one."""
        return max(self.pooled, default=None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "branch": self.branch,
            "shape": list(self.shape),
            "jump": list(self.jump),
            "rf": [self.rf, self.rf_w],
            "scales": list(self.scales),
            "scales_w": list(self.scales_w),
            "pooled": list(self.pooled),
            "pooled_w": list(self.pooled_w),
            "calls": self.calls,
        }


def _row(name: str, module: nn.Module, branch: str, out: Tensor, field: _Field, calls: int) -> RFRow:
    h, w = field
    return RFRow(
        name=name,
        type=type(module).__name__,
        branch=branch,
        shape=tuple(out.shape[1:]),
        jump=(_num(h.jump), _num(w.jump)),
        scales=tuple(_num(s) for s in sorted(h.scales)),
        scales_w=tuple(_num(s) for s in sorted(w.scales)),
        pooled=tuple(_num(s) for s in sorted(h.pooled)),
        pooled_w=tuple(_num(s) for s in sorted(w.pooled)),
        calls=calls,
    )


def _first_tensor(output: Any) -> Tensor | None:
    for item in tree_flatten(output)[0]:
        if isinstance(item, Tensor):
            return item
    return None


def _base_field() -> _Field:
    axis = _Axis(Fraction(1), frozenset({Fraction(1)}), frozenset())
    return axis, axis


def receptive_fields(module: nn.Module, input_size: Sequence[int], *, within: str | None = None) -> list[RFRow]:
    """Theoretical receptive fields of every module of ``module`` for an ``(H, W)`` input.

    Returns one :class:`RFRow` per module that ran (the root is named ``""``), in
    ``named_modules()`` order. With ``within="layer3"`` only that submodule and its children are
    reported, measured in pixels of *its* input (e.g. Table 2 of the paper inside a stage).
    The model runs once on a meta-device copy in eval mode: ``module`` itself is not touched.
    """
    model = meta_copy(module)
    names = dict(model.named_modules())
    if within is not None and within not in names:
        raise ConfigError(f"receptive fields: no submodule {within!r} in {type(module).__name__}")
    mode = _RFMode()
    outputs: dict[str, tuple[Tensor, _Field]] = {}
    calls: dict[str, int] = {}

    def restart(_module: nn.Module, args: tuple) -> tuple:
        # measure from this module's input: fresh aliases of the inputs with a pixel-sized field
        fresh = tuple(a.view_as(a) if isinstance(a, Tensor) else a for a in args)
        for a in fresh:
            if isinstance(a, Tensor) and a.dim() == 4:
                mode.set(a, _base_field())
        return fresh

    def record(name: str):  # noqa: ANN202
        def hook(_module: nn.Module, _args: tuple, output: Any) -> None:
            out = _first_tensor(output)
            field = mode.get(out)
            if out is not None and field is not None and out.dim() == 4:
                outputs[name] = (out, field)
                calls[name] = calls.get(name, 0) + 1

        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in names.items()]
    if within is not None:
        handles.append(names[within].register_forward_pre_hook(restart))
    x = meta_input(model, input_size)
    try:
        with mode, torch.no_grad():
            mode.set(x, _base_field())
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    rows = []
    for name, sub in names.items():
        if name not in outputs:
            continue
        if within and not (name == within or name.startswith(within + ".")):
            continue
        out, field = outputs[name]
        rows.append(_row(name, sub, branch_of(module, name), out, field, calls[name]))
    return rows
