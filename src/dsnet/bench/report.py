"""``dsnet bench`` output: a plain-text table and JSON rows."""

from __future__ import annotations

import shlex

from .runner import BenchReport, BenchRow

__all__ = ["format_report"]


def _f(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _overridden(machine: dict) -> str:
    caps = machine.get("isa_caps") or {}
    if not caps:
        return ""
    return " (capped: " + " ".join(f"{k}={shlex.quote(v)}" for k, v in caps.items()) + ")"


def _precision(row: BenchRow) -> str:
    return row.precision + ("*" if row.emulated and not row.error else "")


def format_report(report: BenchReport) -> str:
    m = report.machine
    h, w = report.size
    lines = [
        f"{report.model} at {h}x{w}, batch {report.batch_size}, {report.num_classes} classes "
        f"({'weights ' + report.weights if report.weights else 'random weights'}): {report.params:,} params, "
        f"{report.paper_gflops:.2f} paper GFLOPs, {report.conv_gmacs:.2f} conv GMACs",
        f"device {m['device']} ({m.get('gpu') or m['cpu']}), {m['torch_threads']} torch threads, "
        f"CPU flags: {' '.join(m['cpu_flags']) or 'none found'}{_overridden(m)}",
        "versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
    ]
    peaks = m.get("matmul_peak_gflops") or ({"fp32": m["sgemm_peak_gflops"]} if "sgemm_peak_gflops" in m else {})
    if peaks:
        listed = ", ".join(f"{k} {v:.1f}" for k, v in peaks.items())
        lines.append(f"matrix-product peak (the best of NumPy and torch; this machine, now), GFLOP/s: {listed}")
    header = (
        f"{'backend':<18} {'prec':<5} {'iters':>5} {'median ms':>10} {'p90 ms':>9} {'FPS':>8} "
        f"{'x eager':>8} {'conv GFLOP/s':>12} {'of peak':>8} {'peak MiB':>9}"
    )
    lines += ["", header, "-" * len(header)]
    for r in report.rows:
        if r.error:
            lines.append(f"{r.backend:<18} {_precision(r):<5} unavailable: {r.error}")
            continue
        lines.append(
            f"{r.backend:<18} {_precision(r):<5} {r.iterations:>5} {_f(r.latency_ms_median, '.1f'):>10} "
            f"{_f(r.latency_ms_p90, '.1f'):>9} {_f(r.fps, '.2f'):>8} {_f(r.speedup_vs_eager, '.2f'):>8} "
            f"{_f(r.achieved_conv_gflops, '.1f'):>12} {_share(r.share_of_peak):>8} {_f(r.peak_memory_mib, '.0f'):>9}"
        )
    lines += [f"note: {note}" for note in report.notes]
    lines.append("of peak: conv GFLOP/s over the matrix-product peak of the row's precision (int8: GOP/s).")
    lines.append("peak MiB: CUDA max allocated per backend on a GPU; on the CPU the process's max RSS so far.")
    return "\n".join(lines)
