"""``train.minutes``: a run length in wall-clock minutes, turned into an iteration count before training
starts, from this machine's measured speed (each stage's step and the periodic validation).

The measurement runs a few real steps and restores the model, optimiser, EMA and RNG states afterwards,
so the run that follows is exactly the run ``train.iters=N`` gives; N is written to ``config.yaml``, and a
resumed run keeps it.

A few steps can mislead: on a 2-core AMD EPYC under sustained load a 60-minute run took 1.27 s per step
against the 1.115 s measured in its first minute (14 % over the budget), and a machine can slow down later
too (another run there drifted from 0.94 s per step in its first tenth to 1.04 in its last fifth: 61.6 minutes).
So the pace is checked at a tenth, half and four fifths of the plan (:class:`PaceMonitor`; each time over
the iterations since the last check, validations excluded): if it says the run would end more than 1 % off
the budget, N is re-set from that pace (:func:`replan_iterations`), logged and rewritten to ``config.yaml``;
the learning-rate schedule follows the new N from there on.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

__all__ = ["BudgetPlan", "PACE_CHECKS_AT", "PaceMonitor", "plan_iterations", "replan_iterations"]

#: the shares of the planned iterations after which the pace is checked (runs of 20 iterations or more)
PACE_CHECKS_AT = (0.1, 0.5, 0.8)


@dataclass(frozen=True)
class BudgetPlan:
    """What a time budget became: the iteration count and the figures it came from."""

    iterations: int
    budget_s: float
    spent_s: float  # before training starts (set-up and the measurement itself)
    step_s: tuple[float, ...]  # seconds per iteration in each stage
    validation_s: float  # seconds per validation
    validations: int

    def describe(self) -> str:
        steps = ", ".join(f"{s:.3f}" for s in self.step_s)
        return (
            f"train.minutes={self.budget_s / 60:g}: {self.iterations} iterations "
            f"(s/iteration by stage: {steps}; {self.validations} validations of {self.validation_s:.1f} s; "
            f"{self.spent_s:.0f} s spent on set-up and measuring)"
        )


def plan_iterations(
    budget_s: float,
    spent_s: float,
    step_s: list[float],
    stage_starts: list[float],
    validation_s: float,
    val_interval: int,
    margin: float = 0.02,
) -> BudgetPlan:
    """The largest iteration count whose steps and validations fit in what is left of ``budget_s``.

    ``stage_starts``: the fraction of the run where each stage after the first begins (``data.stages``);
    ``step_s`` has one entry per stage (the first for the ``data`` sizes). A validation runs every
    ``val_interval`` iterations and at the end. ``margin`` of the budget is kept for writing the weights,
    plots and the time not measured.
    """
    if len(step_s) != len(stage_starts) + 1:
        raise ValueError(f"{len(step_s)} step times for {len(stage_starts) + 1} stages")
    bounds = [0.0, *stage_starts, 1.0]
    per_iteration = sum((bounds[k + 1] - bounds[k]) * t for k, t in enumerate(step_s))
    left = budget_s * (1 - margin) - spent_s
    # n * per_iteration + (n / val_interval + 1) * validation_s <= left
    n = math.floor((left - validation_s) / (per_iteration + validation_s / val_interval))
    if n < 1:
        raise ValueError(
            f"a budget of {budget_s / 60:g} minutes leaves no time to train "
            f"({spent_s:.0f} s spent, {per_iteration:.2f} s per iteration, {validation_s:.1f} s per validation)"
        )
    validations = n // val_interval + (0 if n % val_interval == 0 else 1)
    return BudgetPlan(n, budget_s, spent_s, tuple(step_s), validation_s, validations)


def replan_iterations(
    plan: BudgetPlan,
    done: int,
    pace_s: float,
    spent_s: float,
    stage_starts: list[float],
    val_interval: int,
    margin: float = 0.02,
    stage: int = 0,
) -> int:
    """The iteration count that fills what is left of ``plan.budget_s`` at the pace of the run so far.

    ``done`` iterations are behind; ``pace_s`` seconds per iteration were measured in stage ``stage``
    (validations excluded), and every stage keeps its measured ratio to that one. ``spent_s``: the budget
    used so far (set-up and measurement included). At least one more iteration, so a late check never ends a
    run at once.
    """
    step_s = [t * pace_s / plan.step_s[stage] for t in plan.step_s]
    left = plan.budget_s * (1 - margin) - spent_s

    def cost(n: int) -> float:  # the iterations after ``done`` up to ``n``, each in its stage, and validations
        bounds = [done, *(max(done, min(n, round(s * n))) for s in stage_starts), n]
        steps = sum((bounds[k + 1] - bounds[k]) * t for k, t in enumerate(step_s))
        return steps + ((n - done) / val_interval + 1) * plan.validation_s

    low, high = done + 1, done + 2 + math.ceil(max(left, 0.0) / min(step_s))  # cost(high) > left
    while high - low > 1:  # cost grows with n: the largest n with cost(n) <= left, or done + 1
        middle = (low + high) // 2
        low, high = (middle, high) if cost(middle) <= left else (low, middle)
    return low


class PaceMonitor:
    """When a ``train.minutes`` run checks its pace, and that pace: the seconds per iteration since the last
    check (since the end of the first step for the first), validations excluded. A window that crosses into
    another ``data.stages`` entry is not judged (its steps have two costs); the next window starts there."""

    def __init__(self, checks_at: tuple[float, ...] = PACE_CHECKS_AT) -> None:
        self._checks_at = list(checks_at)
        self._clock, self._start, self._paused = 0.0, 0, 0.0

    def pause(self, seconds: float) -> None:
        """Time that is not training (a validation): left out of the pace."""
        self._paused += seconds

    def after_step(self, iteration: int, total_iters: int, stage_starts: list[int]) -> tuple[float, int] | None:
        """(seconds per iteration, stage index) when ``iteration`` is a check point, else None."""
        now = time.perf_counter()
        if not self._start:  # the first step: the first window starts at its end
            self._clock, self._start, self._paused = now, iteration, 0.0
            return None
        if not self._checks_at or iteration < max(2, round(self._checks_at[0] * total_iters)):
            return None
        while self._checks_at and iteration >= round(self._checks_at[0] * total_iters):
            self._checks_at.pop(0)
        stage = sum(iteration > start for start in stage_starts)  # the stage of the step just done
        same_stage = stage == sum(self._start >= start for start in stage_starts)
        pace = (now - self._clock - self._paused) / (iteration - self._start)
        self._clock, self._start, self._paused = now, iteration, 0.0
        return (pace, stage) if same_stage else None
