"""What ``dsnet bench`` times: variants of running a model, each a runner from :func:`dsnet.deploy.build_runner`.

A variant is bench's own only in what it compares: the eager module against its deploy form (BN folded,
channels_last, compiled) and the runtimes (ONNX Runtime, OpenVINO, OpenVINO INT8). Each builds its runner with
the same builder ``dsnet predict`` and ``dsnet serve`` use, so a row times the code a prediction runs; the
runtimes get a static export at the timed shape and torch's thread count, so the comparison is fair. A variant
that cannot run here raises :class:`BackendUnavailable` with the reason, and the bench reports it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch
from torch import Tensor, nn

from ..deploy import RUNTIME_BACKENDS, Runner, build_runner
from ..errors import DSNetError

__all__ = ["VARIANTS", "BackendUnavailable", "BenchVariant", "list_variants", "register_variant"]

#: random inputs calibrate the INT8 variant: its speed does not depend on the calibration data
_INT8_CALIBRATION = 4


class BackendUnavailable(DSNetError):
    """This variant cannot run here (missing library, device or precision); the message says why."""


@dataclass(frozen=True)
class BenchVariant:
    """A way to run the model that the bench times: a runner backend with :func:`build_runner` options, or
    (for a runtime of one's own) ``build(model, example, precision) -> runner``."""

    name: str
    description: str
    #: the runner backend (``torch``, ``onnxruntime``, ``openvino``): what ``--precision auto`` resolves by
    backend: str = "torch"
    #: the precision the variant always runs in (e.g. "int8"); None: the requested --precision
    precision: str | None = None
    #: keyword options of build_runner (fold, channels_last, compile)
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    build: Callable[[nn.Module, Tensor, str], Runner] | None = None

    def runner(self, model: nn.Module, example: Tensor, precision: str) -> Runner:
        """The variant of ``model`` ready to time on batches shaped like ``example``, in ``precision``."""
        if self.build is not None:
            return self.build(model, example, precision)
        runtime = self.backend in RUNTIME_BACKENDS
        calibration = None
        if precision == "int8":
            generator = torch.Generator().manual_seed(0)
            calibration = [torch.randn(example.shape, generator=generator).numpy() for _ in range(_INT8_CALIBRATION)]
        try:
            runner = build_runner(
                model,
                self.backend,
                precision,
                example.device,
                threads=torch.get_num_threads() if runtime else None,
                calibration=calibration,
                export_shape=tuple(example.shape) if runtime else None,
                **self.options,
            )
        except (DSNetError, ImportError) as e:  # a precision it lacks, an optional runtime not installed
            raise BackendUnavailable(str(e)) from e
        if self.options.get("compile"):
            try:
                with torch.no_grad():
                    runner(example)  # compile now, not inside the timed loop
            except Exception as e:  # no compiler toolchain, unsupported op ...
                first = str(e).splitlines()[0][:200] if str(e) else ""
                raise BackendUnavailable(f"torch.compile failed: {type(e).__name__}: {first}") from e
        return runner


VARIANTS: dict[str, BenchVariant] = {}


def register_variant(variant: BenchVariant) -> BenchVariant:
    """Add ``variant`` to what ``dsnet bench --backends`` can name."""
    VARIANTS[variant.name] = variant
    return variant


def list_variants() -> list[str]:
    return list(VARIANTS)


for _variant in (
    BenchVariant("eager", "the plain module: BN unfolded, NCHW (what the authors time)", options={"fold": False}),
    BenchVariant(
        "channels_last",
        "the plain module in channels_last memory format",
        options={"fold": False, "channels_last": True},
    ),
    BenchVariant("compile", "torch.compile of the plain module (inductor)", options={"fold": False, "compile": True}),
    BenchVariant(
        "fold",
        "BN folded into the convolutions, aux heads dropped (dsnet.deploy.prepare)",
        options={"fold": True, "channels_last": False},
    ),
    BenchVariant(
        "fold_channels_last",
        "BN folded and channels_last (what dsnet predict runs on the CPU)",
        options={"fold": True, "channels_last": True},
    ),
    BenchVariant("onnxruntime", "the ONNX export in ONNX Runtime (CPU, fp32, torch's thread count)", "onnxruntime"),
    BenchVariant("openvino", "the OpenVINO IR (fp32 or bf16 by its precision hint, torch's thread count)", "openvino"),
    BenchVariant(
        "openvino-int8",
        "OpenVINO INT8 (NNCF post-training quantization; speed only: random calibration)",
        "openvino",
        precision="int8",
    ),
):
    register_variant(_variant)
