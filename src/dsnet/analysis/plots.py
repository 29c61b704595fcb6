"""Figures of the receptive-field analyses: ERF heat maps (one and side by side) and padding shares.

Drawn with matplotlib's object API on an Agg canvas (no pyplot state, no display needed) and
written atomically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..fileio import atomic_write
from .erf import ERFResult

__all__ = ["erf_image", "plot_erf", "plot_erf_grid", "plot_padding"]


def erf_image(scores: np.ndarray) -> np.ndarray:
    """The map as drawn: ``log10(scores + 1)`` rescaled to [0, 1] (RepLKNet's display scale)."""
    data = np.log10(np.asarray(scores, dtype=np.float64) + 1.0)
    peak = data.max() if data.size else 0.0
    return data / peak if peak > 0 else data


def _save(fig, path: str | Path) -> Path:  # noqa: ANN001 (a matplotlib Figure)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))


def _ratio_text(result: ERFResult) -> str:
    parts = []
    for t, value in result.ratios().items():
        parts.append(f"t={t:g}: " + ("-" if value is None else f"{100 * value[1]:.1f}%"))
    return "  ".join(parts)


def _draw(ax, label: str, result: ERFResult):  # noqa: ANN001, ANN202
    image = ax.imshow(erf_image(result.scores), cmap="RdYlGn", vmin=0.0, vmax=1.0)
    ax.set_title(label, fontsize=9)
    ax.set_xlabel(_ratio_text(result), fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])
    return image


def plot_erf(result: ERFResult, path: str | Path, title: str) -> Path:
    """One heat map, its high-contribution area ratios underneath."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2, 4.4))
    ax = fig.add_subplot(1, 1, 1)
    fig.colorbar(_draw(ax, title, result), ax=ax, fraction=0.046, pad=0.04)
    return _save(fig, path)


def plot_erf_grid(results: Sequence[tuple[str, ERFResult]], path: str | Path) -> Path:
    """The heat maps of several models or weights side by side, on one colour scale."""
    from matplotlib.figure import Figure

    n = len(results)
    fig = Figure(figsize=(3.6 * n + 0.6, 4.2))
    axes = [fig.add_subplot(1, n, i + 1) for i in range(n)]
    image = None
    for ax, (label, result) in zip(axes, results):
        image = _draw(ax, label, result)
    if image is not None:
        fig.colorbar(image, ax=axes, fraction=0.02, pad=0.02, label="log10(ERF + 1), scaled to max 1")
    return _save(fig, path)


def plot_padding(shares: Mapping[str, Mapping[str, float]], path: str | Path, title: str) -> Path:
    """Grouped bars: for every row (a convolution or a schedule), the share of taps on padding per input size."""
    from matplotlib.figure import Figure

    labels = list(shares)
    sizes = list(dict.fromkeys(s for row in shares.values() for s in row))
    fig = Figure(figsize=(max(6.0, 0.45 * len(labels) + 2), 4.6))
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / max(len(sizes), 1)
    x = np.arange(len(labels))
    for i, size in enumerate(sizes):
        values = [100 * shares[label].get(size, np.nan) for label in labels]
        ax.bar(x + (i - (len(sizes) - 1) / 2) * width, values, width, label=f"input {size}")
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("kernel taps on padding (%)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)
