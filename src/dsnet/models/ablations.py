"""The paper's ablations (Tables 1, 4, 5, 6) as registered variants of DSNet-head128.

DSNet-head128 is the base because it is the network the paper ablates: every ablation table
lists "DSNet" at 80.4 % Cityscapes val mIoU and 81.9 FPS, which are head128's figures (Table 9).
Names read ``dsnet_head128_<field>-<value>``, ``<field>`` being the :class:`DSNetArch` field the
variant changes, so each name says what differs from the base; the base row of every table is
``dsnet_head128`` itself. ``dsnet list --ablations`` shows them (``list_models`` leaves them out).

The paper's Table 5 experiment used a reduced network (four MFACBs, 50k iterations), so its
figures do not apply to ``dsnet_head128_context_block-basic``, which swaps the blocks inside the
full DSNet; no paper mIoU is attached to it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .rates import with_rates
from .registry import Ablation, ModelInfo, get_model_info
from .variants import _variant

__all__ = ["ABLATION_BASE", "ablation_name"]

ABLATION_BASE = "dsnet_head128"


def ablation_name(field: str, value: str, base: str = ABLATION_BASE) -> str:
    """The registered name of the ablation that sets ``field`` to ``value``."""
    return f"{base}_{field}-{value}"


def _register(field: str, value: str, table: str, description: str, **paper: Any) -> None:
    base = get_model_info(ABLATION_BASE)
    arch = with_rates(base.arch, value) if field == "rates" else replace(base.arch, **{field: value})
    _variant(
        ModelInfo(
            name=ablation_name(field, value),
            description=f"{ABLATION_BASE} with {description} (paper {table})",
            arch=arch,
            mean=base.mean,
            std=base.std,
            input_multiple=base.input_multiple,
            ablation=Ablation(ABLATION_BASE, field, value, table, **paper),
        )
    )


# Table 4: the three lateral fusions.
_register("fusion", "add", "Table 4", "element-wise addition instead of MSAF", paper_miou=79.7, paper_fps=90.5)
_register("fusion", "aff", "Table 4", "AFF (Dai et al. 2021) instead of MSAF", paper_miou=80.1, paper_fps=87.6)
_register("fusion", "iaff", "Table 4", "iterative AFF instead of MSAF", paper_miou=80.0, paper_fps=81.1)

# Table 6: the context module.
_register("context", "none", "Table 6", "no context module (no SPASPP)", paper_miou=77.3, paper_fps=91.8)
_register("context", "dappm", "Table 6", "DDRNet's DAPPM instead of SPASPP", paper_miou=79.3, paper_fps=80.2)
_register("context", "aspp", "Table 6", "parallel ASPP instead of SPASPP", paper_miou=79.7, paper_fps=82.3)

# Table 1: atrous-rate schedules of the context branch (DSNet's own: d2x6+d3x6+d5x4) ...
for _schedule, _with, _without in (
    ("d2x3+d3x3+d15x10", 78.7, 78.3),
    ("d2x3+d3x3+d12x10", 79.0, 78.2),
    ("d2x3+d3x3+d5x10", 80.0, 77.9),
    ("d2x6+d4x6+d6x4", 80.1, 77.8),
):
    _register(
        "rates",
        _schedule,
        "Table 1",
        f"context-branch rates {_schedule}",
        paper_miou=_with,
        paper_miou_scratch=_without,
    )

# ... and one branch alone (Table 1 rows 1-2, reported without ImageNet pre-training only).
_register("branches", "context", "Table 1", "the context branch only", paper_miou_scratch=74.2)
_register("branches", "spatial", "Table 1", "the spatial branch only", paper_miou_scratch=71.9)

# Table 5: BasicBlocks instead of MFACBs in the context branch.
_register(
    "context_block",
    "basic",
    "Table 5",
    "dilated BasicBlocks instead of MFACBs in the context branch",
    note="the paper's Table 5 ran a reduced network (69.28 vs 70.28 % mIoU), not comparable",
)
