"""Every CPU kind gets a bounded, honest `dsnet bench` and the same choices: the CPU flags can be overridden
(DSNET_CPU_FLAGS) so the AVX2-only machine's behaviour is tested on any machine; bench measures only the
peaks of the precisions it times, bounds every row by --seconds and marks emulated precisions."""

from __future__ import annotations

import json
import time

import pytest
import torch

import dsnet.bench.runner as runner
import dsnet.bench.system as system
from dsnet.bench import format_report, run_bench
from dsnet.bench.variants import VARIANTS, BenchVariant
from dsnet.cli import main
from dsnet.hardware import CPU_FLAGS_ENV, cpu_flags, emulated_precision, resolve_amp, resolve_precision

AVX2_ONLY = "avx2 fma f16c"
FIVE_KINDS = {
    "epyc_bf16": ("avx2 fma avx512f avx512_vnni avx512_bf16", "bf16"),
    "sapphire_rapids": ("avx2,fma,avx512f,avx512_vnni,avx512_bf16,amx_int8,amx_bf16", "bf16"),
    "xeon_vnni": ("avx2 fma avx512f avx512_vnni", "fp32"),
    "avx2_only": (AVX2_ONLY, "fp32"),
    "none": ("", "fp32"),
}
TINY = {"target_seconds": 0.05, "warmup": 1, "rounds": 2}


@pytest.mark.parametrize("kind", FIVE_KINDS)
def test_flags_from_the_environment_drive_every_auto_choice(kind, monkeypatch):
    flags, expected = FIVE_KINDS[kind]
    monkeypatch.setenv(CPU_FLAGS_ENV, flags)
    assert set(cpu_flags()) == set(flags.replace(",", " ").split())
    assert resolve_precision("auto", "cpu", "torch")[0] == expected
    assert resolve_precision("auto", "cpu", "openvino")[0] == expected
    assert resolve_precision("auto", "cpu", "onnxruntime")[0] == "fp32"
    assert resolve_amp("auto", "cpu")[0] == ("bf16" if expected == "bf16" else "none")
    assert emulated_precision("bf16", "cpu") == (expected != "bf16")
    assert not emulated_precision("fp32", "cpu")


def test_unset_override_reads_this_machine(monkeypatch, tmp_path):
    monkeypatch.delenv(CPU_FLAGS_ENV, raising=False)
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 fma f16c avx512f\n")
    assert cpu_flags(str(cpuinfo)) == ["avx2", "fma", "f16c", "avx512f"]
    monkeypatch.setenv(CPU_FLAGS_ENV, AVX2_ONLY)
    assert cpu_flags(str(cpuinfo)) == ["avx2", "fma", "f16c"]  # the override wins over the file


def test_bench_measures_the_peak_only_of_the_precisions_it_times(monkeypatch):
    measured: list[str] = []

    def fake(name: str, rate: float):
        def measure(*args, **kwargs) -> float:
            measured.append(name)
            return rate

        return measure

    monkeypatch.setattr(system, "sgemm_peak_gflops", fake("numpy_fp32", 100.0))
    monkeypatch.setattr(system, "torch_mm_peak_gflops", lambda dtype, seconds=1.0: fake(str(dtype), 120.0)())
    monkeypatch.setattr(system, "int8_peak_gops", fake("int8", 400.0))
    report = run_bench("dsnet_head64", (32, 64), precisions=("fp32",), **TINY)
    assert sorted(measured) == ["numpy_fp32", "torch.float32"]  # no bf16, no int8 product timed
    assert report.machine["matmul_peak_gflops"] == {"fp32": 120.0}
    row = report.rows[0]
    assert row.share_of_peak == pytest.approx(row.achieved_conv_gflops / 120.0)
    measured.clear()
    monkeypatch.setenv(CPU_FLAGS_ENV, "avx2 fma avx512f avx512_bf16")
    report = run_bench("dsnet_head64", (32, 64), precisions=("bf16",), **TINY)
    assert measured == ["torch.bfloat16"] and set(report.machine["matmul_peak_gflops"]) == {"bf16"}
    measured.clear()
    run_bench("dsnet_head64", (32, 64), precisions=("fp32",), measure_peaks=False, **TINY)
    assert measured == []


def test_a_peak_is_bounded_on_a_slow_product():
    """A product at a few GFLOP/s (emulated bf16) is sized down from the probe instead of taking 2048^3."""
    calls: list[int] = []

    def slow_product(n: int):
        def step() -> None:
            calls.append(n)
            time.sleep(2 * n**3 / 5e9)  # 5 GFLOP/s

        return step

    start = time.perf_counter()
    rate = system._sized_rate(slow_product, seconds=0.3)
    assert time.perf_counter() - start < 3.0  # a 2048^3 product alone would take 3.4 s here
    assert max(calls) < 2048 and rate == pytest.approx(5.0, rel=0.5)


def _sleeping_backend(calls: list[float], seconds: float) -> BenchVariant:
    def build(model, example, precision):
        def run(x: torch.Tensor) -> torch.Tensor:
            calls.append(time.perf_counter())
            time.sleep(seconds)
            return torch.zeros(1, 19, *x.shape[-2:])

        return run

    return BenchVariant("sleepy", "a backend slower than --seconds", build=build)


def test_seconds_bound_a_slow_row(monkeypatch):
    calls: list[float] = []
    monkeypatch.setitem(VARIANTS, "sleepy", _sleeping_backend(calls, 0.2))
    report = run_bench(
        "dsnet_head64", (32, 64), backends=("eager", "sleepy"), target_seconds=0.1, warmup=10, rounds=5,
        measure_peaks=False,
    )  # fmt: skip
    rows = {r.backend: r for r in report.rows}
    assert len(calls) == 2 and rows["sleepy"].iterations == 1  # one warm-up call, one timed pass
    assert rows["eager"].iterations >= 1
    assert any("single pass" in note and "sleepy fp32" in note for note in report.notes)
    calls.clear()
    monkeypatch.setattr(runner, "_SET_UP_NEGLIGIBLE_S", 0.1)  # a first pass this long stands as the timing
    report = run_bench("dsnet_head64", (32, 64), backends=("sleepy",), target_seconds=0.1, measure_peaks=False)
    assert len(calls) == 1 and report.rows[0].iterations == 1
    assert report.rows[0].latency_ms_median >= 200


def test_emulated_precision_is_marked_and_still_run(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv(CPU_FLAGS_ENV, AVX2_ONLY)
    report = run_bench(
        "dsnet_head64", (32, 64), backends=("eager",), precisions=("fp32", "bf16"), measure_peaks=False, **TINY
    )
    rows = {r.precision: r for r in report.rows}
    assert rows["bf16"].emulated and rows["bf16"].fps and not rows["bf16"].error  # run as asked
    assert not rows["fp32"].emulated
    text = format_report(report)
    assert "bf16*" in text and "fp32*" not in text
    assert "note: bf16* emulated on this cpu (CPU flags: avx2 fma f16c" in text
    assert "CPU flags: avx2 fma f16c (capped: " in text and "DSNET_CPU_FLAGS='avx2 fma f16c')" in text
    out = tmp_path / "bench.json"
    args = ["bench", "dsnet_head64", "--size", "32", "64", "--precision", "fp32,bf16", "--seconds", "0.05"]
    assert main([*args, "--json", "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert [r["emulated"] for r in json.loads(captured.out)] == [False, True]
    assert "dsnet bench: bf16* emulated on this cpu" in captured.err
    saved = json.loads(out.read_text())
    assert saved["machine"]["cpu_flags_overridden"] and saved["notes"]
    monkeypatch.setenv(CPU_FLAGS_ENV, "avx2 fma avx512f avx512_bf16")
    report = run_bench("dsnet_head64", (32, 64), precisions=("bf16",), measure_peaks=False, **TINY)
    assert not report.rows[0].emulated and not any("emulated" in note for note in report.notes)


def test_openvino_bf16_without_native_bf16_is_unavailable_not_mislabelled(monkeypatch):
    """OpenVINO would silently compute fp32 under a bf16 hint on such a CPU: the row says so instead."""
    monkeypatch.setenv(CPU_FLAGS_ENV, AVX2_ONLY)
    report = run_bench(
        "dsnet_head64", (32, 64), backends=("openvino",), precisions=("bf16",), measure_peaks=False, **TINY
    )
    assert "OpenVINO computes bf16 only on CPUs with avx512_bf16 or amx_bf16" in report.rows[0].error


def test_int8_without_vnni_says_it_gains_little(monkeypatch):
    why = resolve_precision("int8", "cpu", "openvino", ["avx2", "fma", "f16c"])[1]
    assert why.startswith("asked for; no VNNI or AMX on this CPU")
    assert resolve_precision("int8", "cpu", "openvino", ["avx2", "avx512f", "avx512_vnni"])[1] == "asked for"
    monkeypatch.setenv(CPU_FLAGS_ENV, AVX2_ONLY)
    monkeypatch.setitem(VARIANTS, "fake-int8", BenchVariant("fake-int8", "", precision="int8", build=lambda m, x, p: m))
    report = run_bench("dsnet_head64", (32, 64), backends=("fake-int8",), measure_peaks=False, **TINY)
    assert report.rows[0].precision == "int8" and not report.rows[0].emulated
    assert any(note.startswith("int8 without VNNI or AMX (CPU flags: avx2 fma f16c)") for note in report.notes)
