"""The pre-training curves: loss, train and val top-1/top-5, learning rate against iterations."""

from __future__ import annotations

from pathlib import Path

from ..observe import read_metrics

__all__ = ["plot_pretrain_curves"]


def plot_pretrain_curves(metrics_path: Path, out_path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    train = [r for r in records if r["kind"] == "train"]
    val = [r for r in records if r["kind"] == "val"]
    if not train and not val:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
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
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    axes[0].legend()
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return out_path
