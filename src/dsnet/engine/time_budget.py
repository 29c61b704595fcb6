"""``train.minutes``: a run length in wall-clock minutes, turned into an iteration count before training
starts, from this machine's measured speed (each stage's step and the periodic validation).

The measurement runs a few real steps and restores the model, optimiser, EMA and RNG states afterwards,
so the run that follows is exactly the run ``train.iters=N`` gives; N is written to ``config.yaml``, and a
resumed run keeps it.

A few steps can mislead: on a 2-core AMD EPYC under sustained load a 60-minute run took 1.27 s per step
against the 1.115 s measured in its first minute (14 % over the budget). So the pace is checked once, at a
tenth of the plan: if the iterations done so far say the run would end more than 1 % off the budget, N is
re-set from that pace (:func:`replan_iterations`), logged and rewritten to ``config.yaml``; the learning-rate
schedule follows the new N from there on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["BudgetPlan", "PACE_CHECK_AT", "plan_iterations", "replan_iterations"]

#: the share of the planned iterations after which the pace is checked (runs of 20 iterations or more)
PACE_CHECK_AT = 0.1


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
) -> int:
    """The iteration count that fills what is left of ``plan.budget_s`` at the pace of the run so far.

    ``done`` iterations are behind, at ``pace_s`` seconds each (measured in the first stage, validations
    excluded); later stages keep their measured ratio to the first. ``spent_s``: the budget used so far
    (set-up and measurement included). At least one more iteration, so a late check never ends a run at once.
    """
    ratio = pace_s / plan.step_s[0]
    bounds = [0.0, *stage_starts, 1.0]
    per_iteration = sum((bounds[k + 1] - bounds[k]) * t * ratio for k, t in enumerate(plan.step_s))
    left = plan.budget_s * (1 - margin) - spent_s
    more = math.floor((left - plan.validation_s) / (per_iteration + plan.validation_s / val_interval))
    return done + max(1, more)
