"""The table of the paper's ablation variants: what each changes, its size and cost, the paper's figures.

Params and paper GFLOPs are computed (inference model, no auxiliary heads; thop convention, see
:mod:`dsnet.analysis.complexity`); the paper's columns are copied from its Tables 1, 4 and 6
(Cityscapes val mIoU with and without ImageNet pre-training, FPS on an RTX 4090).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..models import ABLATION_BASE, create_model, get_model_info, list_ablations
from .complexity import profile

__all__ = ["ablation_rows", "format_ablation_table"]

# The base network's figures in the ablation tables (Tables 1, 4, 6: 80.4 % and 81.9 FPS; Table 1: 77.9 % w/o.p).
_BASE_PAPER = {"paper_miou": 80.4, "paper_miou_scratch": 77.9, "paper_fps": 81.9}


def ablation_rows(
    names: Sequence[str] | None = None, size: Sequence[int] = (1024, 2048), num_classes: int = 19
) -> list[dict[str, Any]]:
    """One row per variant (default: the base, then every ablation): name, change, params, GFLOPs, paper figures."""
    rows = []
    for name in names if names is not None else [ABLATION_BASE, *list_ablations()]:
        info = get_model_info(name)
        cost = profile(create_model(name, num_classes=num_classes, aux_heads=False), size)
        ab = info.ablation
        row: dict[str, Any] = {
            "model": info.name,
            "table": ab.table if ab else "base",
            "change": f"{ab.axis} = {ab.value}" if ab else "(DSNet)",
            "params": cost["params"],
            "paper_gflops": cost["paper_gflops"],
            "paper_miou": ab.paper_miou if ab else None,
            "paper_miou_scratch": ab.paper_miou_scratch if ab else None,
            "paper_fps": ab.paper_fps if ab else None,
            "note": ab.note if ab else "",
        }
        if info.name == ABLATION_BASE:
            row.update(_BASE_PAPER)
        rows.append(row)
    return rows


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_ablation_table(rows: Sequence[dict[str, Any]], size: Sequence[int], *, markdown: bool = False) -> str:
    """Rows of :func:`ablation_rows` as a Markdown table or aligned text."""
    header = ["model", "paper table", "change", "params", "paper GFLOPs", "paper mIoU", "w/o pre-train", "paper FPS"]
    body = [
        [
            f"`{r['model']}`" if markdown else r["model"],
            r["table"],
            r["change"],
            f"{r['params']:,}",
            f"{r['paper_gflops']:.2f}",
            _num(r["paper_miou"], ".1f"),
            _num(r["paper_miou_scratch"], ".1f"),
            _num(r["paper_fps"], ".1f"),
        ]
        for r in rows
    ]
    h, w = size
    title = f"Ablation variants at {h}x{w} (inference model; paper: Cityscapes val mIoU %, RTX 4090 FPS)"
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(x) for x in col) for col in zip(header, *body)]
    fmt = "  ".join(f"{{:<{n}}}" if i < 3 else f"{{:>{n}}}" for i, n in enumerate(widths))
    lines = [title, fmt.format(*header), "-" * (sum(widths) + 2 * (len(widths) - 1))]
    lines += [fmt.format(*row) for row in body]
    return "\n".join(lines)
