"""What the hardware computes natively, read from its feature flags (never from a model name), and the
precision choices that follow from it. A leaf module: it imports nothing of dsnet but its errors."""

from __future__ import annotations

import os

import torch

from .errors import ConfigError

__all__ = [
    "cpu_flags",
    "cpu_flags_overridden",
    "emulated_precision",
    "CPU_FLAGS_ENV",
    "native_bf16",
    "native_int8",
    "resolve_amp",
    "resolve_precision",
    "AMP_CHOICES",
    "PRECISION_CHOICES",
]

#: names the CPU flags to use instead of this machine's (space- or comma-separated), e.g. ``"avx2 fma f16c"``: to
#: see by hand what dsnet chooses on another CPU; pair it with ``ONEDNN_MAX_CPU_ISA`` and friends so that the
#: libraries compute as that CPU would (benchmarks/as_avx2.sh)
CPU_FLAGS_ENV = "DSNET_CPU_FLAGS"
_FLAGS_OF_INTEREST = (
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_int8",
    "amx_bf16",
)
#: CPU flags of instructions that compute bf16 products natively (AVX-512 BF16 dot products, AMX tiles)
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
#: CPU flags of instructions that compute int8 dot products natively (VNNI, AMX tiles)
INT8_CPU_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
#: the values of ``optim.amp``
AMP_CHOICES = ("auto", "none", "bf16", "fp16")
#: the values of ``--precision`` wherever a trained model runs (predict, bench, serve)
PRECISION_CHOICES = ("auto", "fp32", "bf16", "int8")
#: what each inference backend can run (int8: an OpenVINO model quantized by NNCF)
BACKEND_PRECISIONS = {"torch": ("fp32", "bf16"), "openvino": ("fp32", "bf16", "int8"), "onnxruntime": ("fp32",)}


def cpu_flags_overridden() -> bool:
    """Whether :data:`CPU_FLAGS_ENV` replaces this machine's CPU flags (a run made as if on another CPU)."""
    return os.environ.get(CPU_FLAGS_ENV) is not None


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> list[str]:
    """The vector/matrix features that decide fp32, bf16 and INT8 speed (Linux /proc/cpuinfo; [] elsewhere),
    or those named by the environment variable :data:`CPU_FLAGS_ENV` where it is set. Every choice dsnet makes
    by the CPU (``auto`` precisions, emulation warnings) reads the flags here."""
    override = os.environ.get(CPU_FLAGS_ENV)
    if override is not None:
        present = set(override.replace(",", " ").split())
        return [flag for flag in _FLAGS_OF_INTEREST if flag in present]
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    present = set(line.split(":", 1)[1].split())
                    return [flag for flag in _FLAGS_OF_INTEREST if flag in present]
    except OSError:
        pass
    return []


def native_bf16(device: torch.device | str, flags: list[str] | None = None) -> bool:
    """Whether ``device`` computes bf16 natively: a CPU with AVX-512 BF16 or AMX (``flags`` default to this
    machine's), a CUDA GPU that reports bf16 support (Ampere and later)."""
    device = torch.device(device)
    if device.type == "cpu":
        present = cpu_flags() if flags is None else flags
        return any(flag in present for flag in BF16_CPU_FLAGS)
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False))
    return False


def native_int8(flags: list[str] | None = None) -> bool:
    """Whether this CPU has int8 dot-product instructions (VNNI or AMX); without them INT8 gains little."""
    present = cpu_flags() if flags is None else flags
    return any(flag in present for flag in INT8_CPU_FLAGS)


def emulated_precision(precision: str, device: torch.device | str, flags: list[str] | None = None) -> bool:
    """Whether ``precision`` runs here only through an emulated path, slower than fp32: bf16 on a CPU without
    AVX-512 BF16 or AMX (PyTorch then converts and computes in fp32, at a few GFLOP/s)."""
    return precision == "bf16" and not native_bf16(device, flags)


def resolve_precision(
    precision: str,
    device: torch.device | str,
    backend: str,
    flags: list[str] | None = None,
    quantized: bool = False,
) -> tuple[str, str]:
    """The precision a model runs in for ``--precision precision`` on ``backend`` and ``device``, and why.

    ``auto`` is the fastest precision whose accuracy the project checks (benchmarks/precision_accuracy.py)
    and that the hardware computes natively: bf16 on CPUs with AVX-512 BF16 or AMX and on GPUs with bf16,
    for the backends that have a bf16 path (torch, OpenVINO); fp32 elsewhere, since emulated bf16 is slower
    than fp32. INT8 needs calibration images, so ``auto`` never quantizes; it only runs a model that is
    already quantized (``quantized``: an INT8 OpenVINO export), which is INT8 whatever is asked.
    """
    if precision not in PRECISION_CHOICES:
        raise ConfigError(f"precision {precision!r} must be one of {', '.join(PRECISION_CHOICES)}")
    device = torch.device(device)
    supported = BACKEND_PRECISIONS.get(backend, ("fp32",))
    if quantized:
        if precision not in ("auto", "int8"):
            raise ConfigError(f"the model is quantized to INT8; --precision {precision} needs a float model")
        return "int8", "the model is an INT8 export"
    if precision == "auto":
        if "bf16" in supported and native_bf16(device, flags):
            what = "the CPU flags say" if device.type == "cpu" else "the GPU has"
            return "bf16", f"auto: {what} native bf16"
        why = f"{backend} has no bf16 path" if "bf16" not in supported else f"no native bf16 on this {device.type}"
        return "fp32", f"auto: {why}"
    if precision not in supported:
        where = ", ".join(b for b, p in BACKEND_PRECISIONS.items() if precision in p)
        raise ConfigError(f"precision {precision} does not run on backend {backend!r} (it runs on: {where})")
    if backend == "openvino" and emulated_precision(precision, device, flags):
        raise ConfigError("precision bf16: OpenVINO computes bf16 only on CPUs with avx512_bf16 or amx_bf16")
    if emulated_precision(precision, device, flags):
        return "bf16", f"asked for; emulated on this {device.type} (slower than fp32)"
    if precision == "int8" and device.type == "cpu" and not native_int8(flags):
        return "int8", "asked for; no VNNI or AMX on this CPU: INT8 gains far less over fp32 than where they exist"
    return precision, "asked for"


def resolve_amp(amp: str, device: torch.device | str, flags: list[str] | None = None) -> tuple[str, str]:
    """The autocast setting a run uses for ``optim.amp=amp`` on ``device``, and why, in a few words.

    ``auto`` is bf16 where the device computes it natively (bf16 training steps are about 2x faster there
    and reach the same accuracy), else ``none`` (fp32): emulated bf16 is slower than fp32.
    """
    if amp not in AMP_CHOICES:
        raise ConfigError(f"optim.amp={amp!r} must be one of {', '.join(AMP_CHOICES)}")
    device = torch.device(device)
    if amp == "bf16" and emulated_precision("bf16", device, flags):
        return amp, (
            f"set in the config; emulated on this {device.type} (no native bf16): steps are several times slower "
            "than fp32; optim.amp=auto or none trains in fp32"
        )
    if amp != "auto":
        return amp, "set in the config"
    if native_bf16(device, flags):
        what = "the CPU flags" if device.type == "cpu" else "the GPU"
        return "bf16", f"auto: {what} say native bf16"
    return "none", f"auto: no native bf16 on this {device.type}, fp32"
