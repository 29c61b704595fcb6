"""Early checks of ``--device`` and ``--threads``: one clear line before any work instead of a traceback
from deep inside torch (a leaf module: imports nothing of dsnet but its errors); and torch's thread count."""

from __future__ import annotations

import torch

from .errors import ConfigError

__all__ = ["available_devices", "check_device", "check_threads", "use_threads"]


def available_devices() -> list[str]:
    """The devices this PyTorch build can use here: ``cpu``, then ``cuda``/``cuda:N``, ``mps``, ``xpu``."""
    found = ["cpu"]
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        found += ["cuda"] + [f"cuda:{i}" for i in range(count)] if count > 1 else ["cuda"]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        found.append("xpu")
    return found


def _why_unavailable(kind: str) -> str:
    if kind == "cuda":
        if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
            return "this PyTorch build has no CUDA"
        return "no CUDA GPU found (driver or CUDA_VISIBLE_DEVICES?)"
    return f"this machine or PyTorch build has no {kind}"


def check_device(device: str | torch.device | None, option: str = "--device") -> str | torch.device | None:
    """``device`` unchanged when this machine can run on it (None: the command's default), else a
    :class:`ConfigError` in one line naming it, why, and the available devices."""
    if device is None or device == "auto":
        return device
    available = ", ".join(available_devices())
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"{option} {device}: not a device name; available: {available}") from None
    kind = parsed.type
    if kind == "cpu":
        return device
    module = getattr(torch, kind, None) if kind != "mps" else getattr(torch.backends, "mps", None)
    is_available = getattr(module, "is_available", None)
    if not callable(is_available) or not is_available():
        reason = _why_unavailable(kind) if callable(is_available) else "not supported by this program"
        raise ConfigError(f"{option} {device}: not available ({reason}); available: {available}")
    count = getattr(module, "device_count", None)
    if parsed.index is not None and callable(count) and parsed.index >= count():
        raise ConfigError(f"{option} {device}: only {count()} {kind} device(s) here; available: {available}")
    return device


def check_threads(threads: int | None, option: str = "--threads") -> int | None:
    """``threads`` unchanged when None (the default) or at least 1, else a :class:`ConfigError`."""
    if threads is not None and threads < 1:
        raise ConfigError(f"{option} {threads}: needs a number of threads >= 1 (leave it out for the default)")
    return threads


def use_threads(threads: int | None, option: str = "--threads") -> None:
    """Set torch's process-wide CPU thread count to ``threads`` (checked as :func:`check_threads` does);
    None leaves torch's own choice. Runtimes (ONNX Runtime, OpenVINO) take their count separately."""
    if check_threads(threads, option) is not None:
        torch.set_num_threads(threads)
