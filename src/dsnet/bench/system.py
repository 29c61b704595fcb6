"""What a benchmark ran on: device, CPU features, library versions, and the machine's matrix-product peak in
each precision (fp32 through NumPy's BLAS; bf16 and INT8 through PyTorch's oneDNN kernels), so each backend's
convolution throughput can be read as a share of the peak of its own precision."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..hardware import cpu_flags

__all__ = ["cpu_flags", "machine_info", "matmul_peaks", "sgemm_peak_gflops"]

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


def _rate(step: Callable[[], Any], ops: float, seconds: float, bursts: int = 3) -> float:
    """The best of ``bursts`` rates, each over ``seconds / bursts``: a peak, so the fastest phase counts."""
    step()  # warm-up
    best = 0.0
    for _ in range(bursts):
        count, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / bursts or count == 0:
            step()
            count += 1
        best = max(best, ops * count / elapsed / 1e9)
    return best


def torch_mm_peak_gflops(dtype: torch.dtype, n: int = 2048, seconds: float = 1.5) -> float:
    """Matrix-product throughput of ``dtype`` through PyTorch on the CPU (torch's thread count)."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(dtype)
    b = torch.randn(n, n, generator=g).to(dtype)
    return _rate(lambda: torch.mm(a, b), 2 * n**3, seconds)


def bf16_peak_gflops(n: int = 2048, seconds: float = 1.5) -> float:
    """bf16 matrix-product throughput through PyTorch on the CPU (torch's thread count)."""
    return torch_mm_peak_gflops(torch.bfloat16, n, seconds)


def int8_peak_gops(n: int = 2048, seconds: float = 1.5) -> float | None:
    """int8 x int8 -> int32 matrix-product throughput (``torch._int_mm``, oneDNN: VNNI/AMX where present);
    None where this PyTorch has no CPU kernel for it."""
    g = torch.Generator().manual_seed(0)
    a = torch.randint(-128, 128, (n, n), generator=g, dtype=torch.int8)
    b = torch.randint(-128, 128, (n, n), generator=g, dtype=torch.int8)
    try:
        return _rate(lambda: torch._int_mm(a, b), 2 * n**3, seconds)
    except (RuntimeError, NotImplementedError, AttributeError):
        return None


def matmul_peaks(seconds: float = 1.5) -> dict[str, float]:
    """GFLOP/s (GOP/s for int8) of a 2048^3 matrix product per precision, the best of three bursts, measured
    now on this machine: ``fp32`` (the better of NumPy's BLAS and torch: OpenBLAS may use AVX2 kernels on a
    CPU with AVX-512), ``bf16`` (torch), ``int8`` (torch, when it has the kernel)."""
    numpy_fp32 = max(sgemm_peak_gflops(n=2048, seconds=seconds / 3) for _ in range(3))
    fp32 = max(numpy_fp32, torch_mm_peak_gflops(torch.float32, seconds=seconds))
    peaks = {"fp32": fp32, "bf16": bf16_peak_gflops(seconds=seconds)}
    int8 = int8_peak_gops(seconds=seconds)
    if int8 is not None:
        peaks["int8"] = int8
    return peaks
