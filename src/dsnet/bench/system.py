"""What a benchmark ran on: device, CPU features, library versions, and the machine's sgemm peak."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import time
from typing import Any

import numpy as np
import torch

from ..hardware import cpu_flags

__all__ = ["cpu_flags", "machine_info", "sgemm_peak_gflops"]

_LIBRARIES = ("torch", "numpy", "onnxruntime", "openvino", "nncf", "tensorrt")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "device": str(device),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_flags": cpu_flags(),
        "versions": {name: v for name in _LIBRARIES if (v := _version(name)) is not None},
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def sgemm_peak_gflops(n: int = 1024, seconds: float = 1.0) -> float:
    """float32 matrix-product throughput of this machine through NumPy's BLAS (2*n^3 FLOPs each)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b  # warm-up
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        a @ b
        count += 1
    return 2 * n**3 * count / elapsed / 1e9
