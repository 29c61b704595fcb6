#!/bin/sh
# Run a command as if on an AVX2-only CPU (flags avx2 fma f16c: no AVX-512, no VNNI, no bf16), by hand:
#   benchmarks/as_avx2.sh dsnet bench dsnet_head64 --size 360 480 --precision fp32,bf16 --seconds 3
# PyTorch's oneDNN (convolutions, bf16/int8 products), MKL (fp32 products) and ATen's own vector kernels are
# capped at AVX2, and so is OpenVINO's CPU plugin (its oneDNN honours ONEDNN_MAX_CPU_ISA: its fp32 and INT8
# latencies rise under the cap); dsnet reads the CPU flags from DSNET_CPU_FLAGS instead of /proc/cpuinfo, so
# its choices (auto precision, emulation notes, OpenVINO bf16 refused) are the AVX2 machine's. Not capped:
# NumPy's OpenBLAS (left alone) and ONNX Runtime (MLAS picks its kernels from cpuid: the same latency with
# and without the cap). A capped run approximates the instruction set, not the clock, caches or memory of a
# real AVX2 machine: say which figures came from one.
exec env ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2 \
    DSNET_CPU_FLAGS="avx2 fma f16c" "$@"
