"""The benchmark protocol: backends interleaved round-robin in one process, so ratios hold on a noisy machine.

* ``paper``: forward only, batch 1 by default, 10 warm-ups, iterations calibrated to about
  ``target_seconds`` per backend, FPS = iterations / time (the reference's speed protocol).
* ``e2e``: decode a PNG, normalise, forward, argmax, copy to NumPy: what a user's pipeline pays.

Each backend's iterations are split into rounds and the rounds alternate between backends, so a
slow phase of the machine hits every backend alike.
"""

from __future__ import annotations

import math
import os
import resource
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import cv2
import numpy as np
import torch

from ..analysis import profile
from ..constants import IMAGENET_MEAN, IMAGENET_STD
from ..deploy import Runner
from ..errors import ConfigError
from ..hardware import cpu_flags, emulated_precision, native_int8, resolve_precision
from ..inference import argmax_channels
from ..models import checkpoint_num_classes, create_model, get_model_info, normalize_state_dict, read_checkpoint
from .system import PEAK_PRECISIONS, machine_info, matmul_peaks
from .variants import VARIANTS, BackendUnavailable

__all__ = ["BenchRow", "BenchReport", "run_bench", "time_interleaved", "warm_up"]

K = TypeVar("K")
#: a first pass longer than this is mostly computation, not kernel set-up, so it can stand as a timing
_SET_UP_NEGLIGIBLE_S = 1.0


@dataclass
class BenchRow:
    backend: str
    precision: str
    protocol: str
    iterations: int = 0
    latency_ms_median: float | None = None
    latency_ms_p90: float | None = None
    fps: float | None = None
    speedup_vs_eager: float | None = None
    achieved_conv_gflops: float | None = None
    #: achieved_conv_gflops over this machine's matrix-product peak in the row's own precision
    share_of_peak: float | None = None
    peak_memory_mib: float | None = None
    #: the precision runs here only through an emulated path, slower than fp32 (bf16 without native bf16)
    emulated: bool = False
    error: str | None = None


@dataclass
class BenchReport:
    model: str
    size: tuple[int, int]
    batch_size: int
    params: int
    paper_gflops: float
    conv_gmacs: float
    machine: dict[str, Any]
    rows: list[BenchRow] = field(default_factory=list)
    num_classes: int = 19
    weights: str | None = None
    #: one-line remarks on what the rows mean here (an emulated precision, a slow row timed once)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rows": [asdict(r) for r in self.rows]}


def _build_model(name: str, num_classes: int | None, weights: str | os.PathLike | None) -> torch.nn.Module:
    """The inference model (no auxiliary heads): random, or with ``weights`` and their class count."""
    if weights is None:
        return create_model(name, num_classes=num_classes or 19, aux_heads=False).eval()
    state = normalize_state_dict(read_checkpoint(weights), str(weights))
    found = checkpoint_num_classes(state)
    if found is None:
        raise ConfigError(f"{weights}: no classifier (lastlayer.conv2.weight) found; is it a full DSNet checkpoint?")
    if num_classes is not None and num_classes != found:
        raise ConfigError(f"{weights}: the checkpoint has {found} classes, not {num_classes}")
    return create_model(name, num_classes=found, weights=state, aux_heads=False, fine_tuning=False).eval()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _e2e(run: Runner, png: bytes, device: torch.device) -> Callable[[], Any]:
    """decode -> normalise -> forward -> argmax -> NumPy, for one encoded image."""
    mean = np.asarray(IMAGENET_MEAN, np.float32) * 255
    std = np.asarray(IMAGENET_STD, np.float32) * 255
    buffer = np.frombuffer(png, np.uint8)

    def step() -> Any:
        bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
        rgb = (cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) - mean) / std
        x = torch.from_numpy(rgb.transpose(2, 0, 1)).unsqueeze(0).to(device)
        return argmax_channels(run(x)).to(torch.uint8).cpu().numpy()

    return step


def _time_calls(step: Callable[[], Any], count: int, device: torch.device) -> list[float]:
    out = []
    for _ in range(count):
        start = time.perf_counter()
        step()
        _sync(device)
        out.append(time.perf_counter() - start)
    return out


def warm_up(step: Callable[[], Any], count: int, seconds: float, device: torch.device) -> list[float]:
    """Run ``step`` ``count`` times, or fewer once ``seconds`` have passed (at least once): a slow step (an
    emulated precision, a large input) costs a bounded time. Returns the seconds of each call."""
    times: list[float] = []
    start = time.perf_counter()
    while not times or (len(times) < count and time.perf_counter() - start < seconds):
        times += _time_calls(step, 1, device)
    return times


def per_call_estimate(warm_up_times: Sequence[float]) -> float:
    """Seconds of one warm call, from :func:`warm_up`'s times (the first call pays for kernel selection)."""
    warm = list(warm_up_times[1:]) or list(warm_up_times)
    return statistics.median(warm[-3:])


def time_interleaved(
    steps: Mapping[K, Callable[[], Any]],
    device: torch.device,
    *,
    target_seconds: float,
    rounds: int = 5,
    progress: Callable[[str], None] | None = None,
    estimates: Mapping[K, float] | None = None,
) -> dict[K, list[float]]:
    """Seconds per call of every step: each calibrated to about ``target_seconds`` (at least one call, so a step
    slower than that is timed once, not ``rounds`` times), run in up to ``rounds`` rounds that alternate between
    the steps (so a slow phase of the machine hits them all alike). ``estimates``: seconds per call already
    known (from :func:`warm_up`); the others are calibrated by one call."""
    known = dict(estimates or {})
    per_call = {key: known[key] if key in known else _time_calls(s, 1, device)[0] for key, s in steps.items()}
    plan = {key: max(1, math.ceil(target_seconds / max(per_call[key], 1e-6))) for key in steps}  # fill the target
    times: dict[K, list[float]] = {key: [] for key in steps}
    for r in range(rounds):
        due = {key: plan[key] // rounds + (1 if r < plan[key] % rounds else 0) for key in steps}
        if not any(due.values()):
            break
        if progress:
            progress(f"round {r + 1}/{rounds}")
        for key, step in steps.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            times[key] += _time_calls(step, due[key], device)
    return times


def _check_precision(backend: str, precision: str, device: torch.device) -> None:
    """The precision checks ``dsnet predict`` applies (e.g. OpenVINO computes bf16 only where the CPU has it,
    and would run fp32 under a bf16 label elsewhere), as a row's ``unavailable`` reason."""
    if precision in ("fp16", "int8"):  # fp16: a torch cast, checked by the backend; int8: its own backends
        return
    try:
        resolve_precision(precision, device, backend)
    except ConfigError as e:
        raise BackendUnavailable(str(e)) from None


def _emulation_note(precision: str, device: torch.device) -> str:
    flags = " ".join(cpu_flags()) or "none found"
    return (
        f"{precision}* emulated on this {device.type} (CPU flags: {flags}; no avx512_bf16 or amx_bf16): "
        f"slower than fp32, timed as asked (for parity checks); --precision auto never runs it"
    )


@dataclass
class _Timing:
    """What the rows still need: interleaved steps (with their warm-up estimates) and rows timed by one pass."""

    steps: dict[tuple[str, str], Callable[[], Any]] = field(default_factory=dict)
    estimates: dict[tuple[str, str], float] = field(default_factory=dict)
    slow: dict[tuple[str, str], list[float]] = field(default_factory=dict)


def _new_report(
    model_name: str, model: torch.nn.Module, size: tuple[int, int], batch_size: int, device: torch.device, weights: Any
) -> tuple[BenchReport, dict[str, Any]]:
    cost = profile(model, size, batch_size=batch_size)
    report = BenchReport(
        get_model_info(model_name).name,
        size,
        batch_size,
        cost["params"],
        cost["paper_gflops"],
        cost["macs"] / 1e9,
        machine_info(device),
        num_classes=int(model.num_classes),
        weights=str(weights) if weights is not None else None,
    )
    return report, cost


def _prepare_rows(
    report: BenchReport,
    model: torch.nn.Module,
    example: torch.Tensor,
    backends: Sequence[str],
    precisions: Sequence[str],
    protocol: str,
    warmup: int,
    target_seconds: float,
    progress: Callable[[str], None] | None,
) -> _Timing:
    """A row per (variant, precision), its runner built and warmed up; a variant that cannot run says why."""
    device = example.device
    image = np.random.default_rng(0).integers(0, 256, (*example.shape[-2:], 3), dtype=np.uint8)
    png = cv2.imencode(".png", image)[1].tobytes()
    timing = _Timing()
    for asked in precisions:
        for name in backends:
            variant = VARIANTS[name]
            precision = resolve_precision("auto", device, variant.backend)[0] if asked == "auto" else asked
            label = variant.precision or precision  # a quantized variant has its own precision
            if any(r.backend == name and r.precision == label for r in report.rows):
                continue
            row = BenchRow(name, label, protocol, emulated=emulated_precision(label, device))
            report.rows.append(row)
            try:
                _check_precision(variant.backend, label, device)
                run = variant.runner(model, example, label)
            except BackendUnavailable as e:
                row.error = str(e)
                continue
            step = (lambda run=run: run(example)) if protocol == "paper" else _e2e(run, png, device)
            if progress:
                progress(f"warming up {name} {label}" + (" (emulated here: slow)" if row.emulated else ""))
            warm = warm_up(step, warmup, target_seconds / 2, device)
            if len(warm) == 1 and warm[0] >= max(target_seconds, _SET_UP_NEGLIGIBLE_S):
                timing.slow[(name, label)] = warm  # one pass is over the row's budget: that pass is its timing
            else:
                timing.estimates[(name, label)] = per_call_estimate(warm)
                timing.steps[(name, label)] = step
    return timing


def _hardware_notes(report: BenchReport, device: torch.device) -> None:
    """Notes on rows whose precision this hardware runs slowly (emulated bf16, INT8 without VNNI)."""
    emulated = sorted({r.precision for r in report.rows if r.emulated and not r.error})
    for precision in emulated:
        report.notes.append(_emulation_note(precision, device))
    if device.type == "cpu" and not native_int8() and any(r.precision == "int8" and not r.error for r in report.rows):
        report.notes.append(
            f"int8 without VNNI or AMX (CPU flags: {' '.join(cpu_flags()) or 'none found'}): its dot products "
            "take AVX2 multiply-adds, so INT8 gains far less over fp32 here than on CPUs with them"
        )


def _peaks(report: BenchReport, timed: set[str], progress: Callable[[str], None] | None) -> dict[str, float]:
    """The matrix-product peak of each precision the rows were timed in (recorded in the report's machine)."""
    if not timed & set(PEAK_PRECISIONS):
        return {}
    if progress:
        progress(f"matrix-product peak of {', '.join(p for p in PEAK_PRECISIONS if p in timed)}")
    peaks = matmul_peaks(timed)
    report.machine["matmul_peak_gflops"] = {k: round(v, 1) for k, v in peaks.items()}
    if "fp32" in peaks:
        report.machine["sgemm_peak_gflops"] = report.machine["matmul_peak_gflops"]["fp32"]
    return peaks


def _fill_rows(
    report: BenchReport,
    times: Mapping[tuple[str, str], list[float]],
    conv_macs: float,
    peaks: Mapping[str, float],
    device: torch.device,
) -> None:
    """Latency, FPS, throughput, share of peak, memory and speed-up of every timed row."""
    for row in report.rows:
        key = (row.backend, row.precision)
        if key not in times:
            continue
        t = sorted(times[key])
        row.iterations = len(t)
        row.latency_ms_median = 1e3 * statistics.median(t)
        row.latency_ms_p90 = 1e3 * t[min(len(t) - 1, int(0.9 * len(t)))]
        row.fps = report.batch_size * len(t) / sum(t)
        row.achieved_conv_gflops = 2 * conv_macs / (row.latency_ms_median / 1e3) / 1e9
        if row.precision in peaks:
            row.share_of_peak = row.achieved_conv_gflops / peaks[row.precision]
        row.peak_memory_mib = (
            torch.cuda.max_memory_allocated(device) / 2**20
            if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        )
    eager = {r.precision: r.fps for r in report.rows if r.backend == "eager" and r.fps}
    base = eager.get("fp32") or next(iter(eager.values()), None)
    for row in report.rows:
        if row.fps and base:
            row.speedup_vs_eager = row.fps / base


@torch.inference_mode()
def run_bench(
    model_name: str,
    size: Sequence[int],
    *,
    backends: Sequence[str] = ("eager",),
    precisions: Sequence[str] = ("fp32",),
    protocol: str = "paper",
    num_classes: int | None = None,
    weights: str | os.PathLike | None = None,
    batch_size: int = 1,
    device: str | torch.device = "cpu",
    target_seconds: float = 6.0,
    warmup: int = 10,
    rounds: int = 5,
    measure_peaks: bool = True,
    progress: Callable[[str], None] | None = None,
) -> BenchReport:
    """Time ``model_name`` at ``size`` on every (backend, precision); see the module docstring.

    ``weights``: time a trained model (its class count is the checkpoint's; a different
    ``num_classes`` is an error); without it a randomly initialised one with ``num_classes`` (19).
    ``precisions``: fp32, bf16, fp16 (CUDA), or ``auto``: each backend in what ``dsnet predict
    --precision auto`` would run it in (see :func:`dsnet.hardware.resolve_precision`).
    ``target_seconds`` bounds every row: its warm-up (``warmup`` calls or half of it, at least one call) and
    its timed calls (enough to fill it, at least one), so a slow row (an emulated precision) costs one or two
    passes, not minutes. A precision this device only emulates is run as asked and marked ``emulated``.
    ``measure_peaks``: time the machine's matrix-product peak of each precision the rows run in (about
    1.5 s each, on any CPU), so each row reports its convolution throughput as a share of that peak.
    """
    if protocol not in ("paper", "e2e"):
        raise ValueError(f"protocol must be 'paper' or 'e2e', got {protocol!r}")
    unknown = [b for b in backends if b not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown backend(s) {unknown}; available: {', '.join(VARIANTS)}")
    device = torch.device(device)
    h, w = int(size[0]), int(size[1])
    model = _build_model(model_name, num_classes, weights)
    report, cost = _new_report(model_name, model, (h, w), batch_size, device, weights)
    model = model.to(device)
    example = torch.randn(batch_size, 3, h, w, device=device)
    timing = _prepare_rows(report, model, example, backends, precisions, protocol, warmup, target_seconds, progress)
    _hardware_notes(report, device)
    timed = {precision for _, precision in [*timing.steps, *timing.slow]}
    peaks = _peaks(report, timed, progress) if measure_peaks and device.type == "cpu" else {}
    times = time_interleaved(
        timing.steps,
        device,
        target_seconds=target_seconds,
        rounds=rounds,
        progress=progress,
        estimates=timing.estimates,
    )
    times.update(timing.slow)
    once = [f"{b} {p}" for (b, p), t in times.items() if len(t) == 1]
    if once:
        report.notes.append(
            f"timed by a single pass (one pass takes longer than --seconds {target_seconds:g}; its first pass "
            f"when that alone was over it): {', '.join(once)}"
        )
    _fill_rows(report, times, cost["macs"], peaks, device)
    return report
