#!/usr/bin/env bash
# The README's speed promises on this CPU, one after another on an otherwise idle machine (run by hand):
#   benchmarks/cpu_kind_figures.sh native                                # this CPU as it is
#   benchmarks/as_avx2.sh benchmarks/cpu_kind_figures.sh avx2-capped     # as if AVX2-only (see as_avx2.sh)
# Writes benchmarks/results/cpu_kinds/LABEL/: cpu.txt (model name, flags, caps), times.tsv (wall seconds of
# each command), the bench reports, the training-throughput report and the demo's log. Needs .venv (make
# install) and ../shared/data/camvid for the training step.
set -euo pipefail
cd "$(dirname "$0")/.."
label=${1:?usage: benchmarks/cpu_kind_figures.sh LABEL}
out=benchmarks/results/cpu_kinds/$label
mkdir -p "$out"
BIN=.venv/bin
export PATH="$PWD/$BIN:$PATH"

{
    grep -m1 "model name" /proc/cpuinfo || true
    grep -m1 "^flags" /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|fma|f16c|avx512f|avx512_vnni|avx_vnni|avx512_bf16|amx_int8|amx_bf16)$' | tr '\n' ' '
    echo
    env | grep -E '^(ONEDNN_MAX_CPU_ISA|MKL_ENABLE_INSTRUCTIONS|ATEN_CPU_CAPABILITY|DSNET_CPU_FLAGS)=' || echo "no caps"
    "$BIN/python" -c "import torch; print('torch cpu capability:', torch.backends.cpu.get_cpu_capability())"
} > "$out/cpu.txt"
touch "$out/times.tsv"  # a command already in it is not run again (delete the file to redo them all)

timed() {  # NAME COMMAND...: runs it, its output to NAME.log, its wall seconds to times.tsv
    local name=$1
    shift
    if grep -q "^$name	" "$out/times.tsv"; then
        return 0
    fi
    local start end
    start=$(date +%s.%N)
    "$@" > "$out/$name.log" 2>&1
    end=$(date +%s.%N)
    printf '%s\t%.1f\n' "$name" "$(echo "$end - $start" | bc)" | tee -a "$out/times.tsv"
}

# the issue's check: fp32 and bf16 (emulated where the CPU lacks native bf16) at 360x480, --seconds 3
timed bench_head64_fp32_bf16 dsnet bench dsnet_head64 --size 360 480 --threads 2 --backends eager,openvino \
    --precision fp32,bf16 --seconds 3 -o "$out/bench_head64_360x480_fp32_bf16.json" --overwrite
# the headline ratios: every deployment backend, fp32 and what `auto` runs (bf16 where native), INT8
timed bench_head128 dsnet bench dsnet_head128 --size 512 1024 --threads 2 \
    --backends eager,fold_channels_last,onnxruntime,openvino,openvino-int8 --precision fp32,auto --seconds 4 \
    -o "$out/bench_head128_512x1024.json" --overwrite
# the training step and the recipe's hour
timed train_throughput "$BIN/python" benchmarks/train_throughput.py --data ../shared/data/camvid \
    -o "$out/train_throughput.json"
# the demo (install done)
timed make_demo make demo
cat "$out/times.tsv"
