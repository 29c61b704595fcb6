"""The comparison ``dsnet ablate`` writes: a Markdown table and a plot (mIoU against GFLOPs and FPS)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .observe import new_figure, save_figure

__all__ = ["format_markdown", "plot_ablation"]


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def format_markdown(result: dict[str, Any]) -> str:
    """The rows of :func:`dsnet.engine.ablate.run_ablation` as a Markdown table with its setting."""
    h, w = result["size"]
    lines = [
        f"{result['dataset']} val, {result['iterations']} iterations of batch {result['batch_size']} per variant "
        f"(config {result['config']}); params and paper GFLOPs of the inference model and FPS (batch 1, "
        f"eager, variants interleaved) at {h}x{w} on {result['device']}.",
        "",
        "| variant | change | mIoU (final) | best mIoU (iter) | params | paper GFLOPs | FPS |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        best = f"{_pct(r['best_miou'])} ({r['best_iteration']})"
        lines.append(
            f"| `{r['variant']}` | {r['change']} | {_pct(r['miou'])} | {best} | {r['params']:,} | "
            f"{r['paper_gflops']:.2f} | {r['fps']:.2f} |"
        )
    return "\n".join(lines)


def plot_ablation(result: dict[str, Any], out_path: Path) -> Path:
    """Bars of final mIoU per variant, and mIoU against paper GFLOPs and against FPS."""
    rows = result["rows"]
    names = [r["variant"] for r in rows]
    miou = [100 * (r["miou"] or 0.0) for r in rows]
    fig, axes = new_figure(1, 3, figsize=(16, 4.5), gridspec_kw={"width_ratios": [1.4, 1, 1]})
    axes[0].barh(range(len(rows)), miou, color="tab:blue")
    axes[0].set_yticks(range(len(rows)), names, fontsize=8)
    axes[0].invert_yaxis()
    axes[0].set_xlabel("val mIoU (%), final iteration")
    for i, v in enumerate(miou):
        axes[0].text(v, i, f" {v:.1f}", va="center", fontsize=8)
    for ax, key, label in ((axes[1], "paper_gflops", "paper GFLOPs"), (axes[2], "fps", "FPS")):
        xs = [r[key] for r in rows]
        ax.scatter(xs, miou)
        for x, y, name in zip(xs, miou, names):
            ax.annotate(name.split("_", 2)[-1], (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(f"{label} at {result['size'][0]}x{result['size'][1]}")
        ax.set_ylabel("val mIoU (%)")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{result['config']}: {result['iterations']} iterations per variant on {result['dataset']}")
    return save_figure(fig, out_path)
