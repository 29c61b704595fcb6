"""What the hardware computes natively, read from its feature flags (never from a model name), and the
precision choices that follow from it. A leaf module: it imports nothing of dsnet but its errors."""

from __future__ import annotations

import torch

from .errors import ConfigError

__all__ = ["cpu_flags", "native_bf16", "resolve_amp", "AMP_CHOICES"]

_FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16")
#: CPU flags of instructions that compute bf16 products natively (AVX-512 BF16 dot products, AMX tiles)
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
#: the values of ``optim.amp``
AMP_CHOICES = ("auto", "none", "bf16", "fp16")


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> list[str]:
    """The vector/matrix features that decide fp32, bf16 and INT8 speed (Linux /proc/cpuinfo; [] elsewhere)."""
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


def resolve_amp(amp: str, device: torch.device | str, flags: list[str] | None = None) -> tuple[str, str]:
    """The autocast setting a run uses for ``optim.amp=amp`` on ``device``, and why, in a few words.

    ``auto`` is bf16 where the device computes it natively (bf16 training steps are about 2x faster there
    and reach the same accuracy), else ``none`` (fp32): emulated bf16 is slower than fp32.
    """
    if amp not in AMP_CHOICES:
        raise ConfigError(f"optim.amp={amp!r} must be one of {', '.join(AMP_CHOICES)}")
    device = torch.device(device)
    if amp != "auto":
        return amp, "set in the config"
    if native_bf16(device, flags):
        what = "the CPU flags" if device.type == "cpu" else "the GPU"
        return "bf16", f"auto: {what} say native bf16"
    return "none", f"auto: no native bf16 on this {device.type}, fp32"
