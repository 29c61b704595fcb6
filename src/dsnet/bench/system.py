"""What a benchmark ran on: device, CPU features, library versions, and the machine's matrix-product peak in
each precision (fp32 through NumPy's BLAS and PyTorch; bf16 and INT8 through PyTorch's oneDNN kernels), so each
backend's convolution throughput can be read as a share of the peak of its own precision."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from ..hardware import CPU_FLAGS_ENV, cpu_flags, cpu_flags_overridden

__all__ = ["cpu_flags", "machine_info", "matmul_peaks", "sgemm_peak_gflops", "PEAK_PRECISIONS"]

_LIBRARIES = ("torch", "numpy", "onnxruntime", "openvino", "nncf", "tensorrt")
#: environment variables that cap the instruction sets the libraries use (a run made as if on an older CPU)
ISA_CAP_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY", CPU_FLAGS_ENV)


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
        "cpu_flags_overridden": cpu_flags_overridden(),
        "isa_caps": {name: value for name in ISA_CAP_VARIABLES if (value := os.environ.get(name)) is not None},
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "versions": {name: v for name in _LIBRARIES if (v := _version(name)) is not None},
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _rate(step: Callable[[], Any], ops: float, seconds: float, bursts: int = 3) -> float:
    """The best of ``bursts`` rates, each over ``seconds / bursts`` and at least one call: a peak, so the
    fastest phase counts."""
    best = 0.0
    for _ in range(bursts):
        count, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / bursts or count == 0:
            step()
            count += 1
        best = max(best, ops * count / elapsed / 1e9)
    return best


def _sized_rate(product: Callable[[int], Callable[[], Any]], seconds: float, largest: int = 2048) -> float:
    """The peak rate of ``product(n)`` (a square ``n``-sized matrix product), with ``n`` chosen from a quick
    probe at n=256 so that one product takes at most a twentieth of ``seconds``: bounded on any CPU, the
    emulated paths included (a 2048^3 bf16 product takes 16 s where bf16 is emulated), and as large as that
    allows (up to ``largest``) where the CPU is fast, so the peak is not limited by a small product."""
    probe = product(256)
    probe()  # warm-up: the first call pays for the kernel set-up
    start = time.perf_counter()
    probe()
    per_flop = (time.perf_counter() - start) / (2 * 256**3)
    n = int((seconds / 20 / max(per_flop, 1e-15) / 2) ** (1 / 3)) // 64 * 64
    n = max(128, min(largest, n))
    step = product(n)
    step()  # warm-up at the chosen size
    return _rate(step, 2 * n**3, seconds)


def _numpy_product(n: int) -> Callable[[], Any]:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    return lambda: a @ b


def _torch_product(dtype: torch.dtype) -> Callable[[int], Callable[[], Any]]:
    def product(n: int) -> Callable[[], Any]:
        g = torch.Generator().manual_seed(0)
        if dtype == torch.int8:
            a = torch.randint(-128, 128, (n, n), generator=g, dtype=torch.int8)
            b = torch.randint(-128, 128, (n, n), generator=g, dtype=torch.int8)
            return lambda: torch._int_mm(a, b)
        a = torch.randn(n, n, generator=g).to(dtype)
        b = torch.randn(n, n, generator=g).to(dtype)
        return lambda: torch.mm(a, b)

    return product


def sgemm_peak_gflops(seconds: float = 1.0) -> float:
    """float32 matrix-product throughput of this machine through NumPy's BLAS (GFLOP/s)."""
    return _sized_rate(_numpy_product, seconds)


def torch_mm_peak_gflops(dtype: torch.dtype, seconds: float = 1.0) -> float:
    """Matrix-product throughput of ``dtype`` through PyTorch on the CPU (torch's thread count), GFLOP/s."""
    return _sized_rate(_torch_product(dtype), seconds)


def int8_peak_gops(seconds: float = 1.0) -> float | None:
    """int8 x int8 -> int32 matrix-product throughput (``torch._int_mm``, oneDNN: VNNI/AMX where present);
    None where this PyTorch has no CPU kernel for it."""
    try:
        return _sized_rate(_torch_product(torch.int8), seconds)
    except (RuntimeError, NotImplementedError, AttributeError):
        return None


#: the precisions whose matrix-product peak :func:`matmul_peaks` can measure
PEAK_PRECISIONS = ("fp32", "bf16", "int8")


def matmul_peaks(precisions: Iterable[str] = PEAK_PRECISIONS, seconds: float = 1.5) -> dict[str, float]:
    """GFLOP/s (GOP/s for int8) of a square matrix product in each of ``precisions`` (those of
    :data:`PEAK_PRECISIONS`; others are ignored), measured now on this machine, each in about ``seconds``
    whatever the CPU: ``fp32`` (the better of NumPy's BLAS and torch: OpenBLAS may use AVX2 kernels on a CPU
    with AVX-512), ``bf16`` (torch), ``int8`` (torch, when it has the kernel). Only what is asked is timed:
    an emulated bf16 or int8 product costs a slow CPU minutes at the sizes a fast one needs."""
    wanted = [p for p in PEAK_PRECISIONS if p in set(precisions)]
    peaks: dict[str, float] = {}
    for precision in wanted:
        if precision == "fp32":
            peaks["fp32"] = max(sgemm_peak_gflops(seconds / 2), torch_mm_peak_gflops(torch.float32, seconds / 2))
        elif precision == "bf16":
            peaks["bf16"] = torch_mm_peak_gflops(torch.bfloat16, seconds)
        elif (int8 := int8_peak_gops(seconds)) is not None:
            peaks["int8"] = int8
    return peaks
