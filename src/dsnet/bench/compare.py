"""Speed of several models side by side: one process, the paper's protocol, models interleaved.

Used by ``dsnet ablate``: each model is timed forward-only at batch 1 (eager PyTorch, the
plain module as the authors time it), and the models' timing rounds alternate, so their FPS
ratios hold on a machine whose speed drifts.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from .runner import per_call_estimate, time_interleaved, warm_up

__all__ = ["compare_speed"]


@torch.inference_mode()
def compare_speed(
    models: Mapping[str, nn.Module],
    size: Sequence[int],
    *,
    device: str | torch.device = "cpu",
    target_seconds: float = 3.0,
    warmup: int = 3,
    rounds: int = 5,
    progress: Callable[[str], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """``{name: {"fps", "latency_ms_median", "timed_calls"}}`` for each model (eval mode, batch 1)."""
    device = torch.device(device)
    x = torch.randn(1, 3, int(size[0]), int(size[1]), device=device)
    steps: dict[str, Callable[[], Any]] = {}
    estimates: dict[str, float] = {}
    for name, model in models.items():
        model = model.eval().to(device)
        steps[name] = lambda model=model: model(x)
        if progress:
            progress(f"warming up {name}")
        estimates[name] = per_call_estimate(warm_up(steps[name], warmup, target_seconds / 2, device))
    times = time_interleaved(
        steps, device, target_seconds=target_seconds, rounds=rounds, progress=progress, estimates=estimates
    )
    return {
        name: {
            "fps": len(t) / sum(t),
            "latency_ms_median": 1e3 * statistics.median(t),
            "timed_calls": len(t),
        }
        for name, t in times.items()
    }
