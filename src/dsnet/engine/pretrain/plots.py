"""The pre-training curves: loss, train and val top-1/top-5, learning rate against iterations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..observe import plot_curves

__all__ = ["plot_pretrain_curves"]


def plot_pretrain_curves(metrics_path: Path, out_path: Path) -> Path | None:
    """Loss, top-1/top-5 and learning rate against iterations, as one PNG (``None``: nothing logged yet)."""
    return plot_curves(metrics_path, out_path, _draw)


def _draw(axes: Any, train: list[dict[str, Any]], val: list[dict[str, Any]]) -> None:
    if train:
        its = [r["iter"] for r in train]
        axes[0].plot(its, [r["loss"] for r in train], label="train loss")
        axes[1].plot(its, [100 * r["train_top1"] for r in train], label="train top-1 (augmented)")
        axes[2].plot(its, [r["lr"] for r in train])
    if val:
        vits = [r["iter"] for r in val]
        axes[0].plot(vits, [r["loss"] for r in val], marker="o", label="val loss")
        axes[1].plot(vits, [100 * r["top1"] for r in val], marker="o", label="val top-1")
        axes[1].plot(vits, [100 * r["top5"] for r in val], marker="x", label="val top-5")
    for ax, title in zip(axes, ("loss", "accuracy (%)", "learning rate")):
        ax.set_title(title)
    axes[0].legend()
    axes[1].legend()
