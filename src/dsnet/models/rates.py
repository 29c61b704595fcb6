"""Atrous-rate schedules of the context branch in the paper's notation (Table 1).

``d2x6+d3x6+d5x4`` reads "six convolutions at rate 2, then six at rate 3, then four at rate 5":
the atrous 3x3 convolutions of the context branch in forward order, i.e. the three of every
MFACB of layer3, then of layer4, then the one of the dilated bottleneck layer5. DSNet-head128
has 3 + 2 MFACBs and one bottleneck, 16 convolutions, and its schedule is exactly that string.

A schedule maps onto :class:`DSNetArch` when it has the branch's number of convolutions and
gives the three convolutions of each MFACB one rate (DSNet's MFACBs always have equal rates).
"""

from __future__ import annotations

import re
from dataclasses import replace

from .dsnet import DSNetArch

__all__ = ["parse_rates", "format_rates", "arch_rates", "with_rates"]

_TERM = re.compile(r"d(\d+)x(\d+)")


def parse_rates(schedule: str) -> list[int]:
    """``'d2x3+d5x2'`` -> ``[2, 2, 2, 5, 5]``; a clear error naming the bad term."""
    rates: list[int] = []
    for term in schedule.replace(" ", "").split("+"):
        m = _TERM.fullmatch(term)
        if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
            raise ValueError(
                f"rate schedule {schedule!r}: bad term {term!r}; write terms dRATExCOUNT joined by '+', "
                "e.g. 'd2x6+d3x6+d5x4'"
            )
        rates += [int(m.group(1))] * int(m.group(2))
    return rates


def format_rates(rates: list[int] | tuple[int, ...]) -> str:
    """``[2, 2, 2, 5, 5]`` -> ``'d2x3+d5x2'`` (runs of equal rates)."""
    terms: list[list[int]] = []
    for rate in rates:
        if terms and terms[-1][0] == rate:
            terms[-1][1] += 1
        else:
            terms.append([rate, 1])
    return "+".join(f"d{r}x{n}" for r, n in terms)


def arch_rates(arch: DSNetArch) -> list[int]:
    """Per-convolution rates of the context branch (three per MFACB, then layer5's one)."""
    mfacbs = (*arch.context_stage3_dilations, *arch.context_stage4_dilations)
    return [rate for rate in mfacbs for _ in range(3)] + [arch.context_stage5_dilation]


def with_rates(arch: DSNetArch, schedule: str) -> DSNetArch:
    """``arch`` with the context-branch rates of ``schedule`` (same number of convolutions)."""
    rates = parse_rates(schedule)
    n3, n4 = len(arch.context_stage3_dilations), len(arch.context_stage4_dilations)
    expected = 3 * (n3 + n4) + 1
    if len(rates) != expected:
        raise ValueError(
            f"rate schedule {schedule!r} has {len(rates)} convolutions; this context branch has {expected} "
            f"({n3} + {n4} MFACBs of three, and layer5's one), e.g. {format_rates(arch_rates(arch))!r}"
        )
    triples = [rates[i : i + 3] for i in range(0, 3 * (n3 + n4), 3)]
    uneven = [i for i, t in enumerate(triples) if len(set(t)) != 1]
    if uneven:
        raise ValueError(
            f"rate schedule {schedule!r} gives MFACB {uneven[0] + 1} the rates {triples[uneven[0]]}; "
            "each MFACB takes one rate for its three convolutions"
        )
    per_block = tuple(t[0] for t in triples)
    return replace(
        arch,
        context_stage3_dilations=per_block[:n3],
        context_stage4_dilations=per_block[n3:],
        context_stage5_dilation=rates[-1],
    )
