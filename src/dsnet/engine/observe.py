"""Run observability on rank 0: log file, JSON-lines metrics, TensorBoard, end-of-run plots."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from tqdm import tqdm

T = TypeVar("T")

__all__ = [
    "setup_logging",
    "logging_scope",
    "progress_bar",
    "format_train_log",
    "RunRecorder",
    "plot_training_curves",
    "plot_class_iou",
    "plot_run",
    "read_metrics",
    "new_figure",
    "save_figure",
    "plot_curves",
]


class _CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the record, not the stream it was created
    with: a caller that swaps stderr (pytest, a notebook) never gets records sent to a closed file."""

    @property  # type: ignore[override]
    def stream(self):  # type: ignore[no-untyped-def]
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:  # the base class assigns it once; stderr is looked up instead
        pass


def setup_logging(log_file: Path | None, is_main: bool, name: str = "dsnet") -> logging.Logger:
    """Console + ``log_file`` on the main rank; warnings only elsewhere. For applications (the CLI):
    the library itself never configures logging. Pair it with :func:`logging_scope` to undo it."""
    logger = logging.getLogger(name)
    logger.handlers.clear()  # detached, not closed: they may be the caller's, which logging_scope puts back
    logger.propagate = False
    logger.setLevel(logging.INFO if is_main else logging.WARNING)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    console = _CurrentStderrHandler()
    console.setFormatter(fmt)
    logger.addHandler(console)
    if is_main and log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(log_file)
        fh.setFormatter(fmt)
        logger.addHandler(fh)
    return logger


@contextmanager
def logging_scope(name: str = "dsnet") -> Iterator[logging.Logger]:
    """Restore the ``name`` logger as it was on entry, closing the handlers added inside (log files).

    One CLI command configures logging for its own run; a process that runs several (tests, a
    notebook calling ``dsnet.cli.main``) keeps no open log file and no handler of a finished run.
    """
    logger = logging.getLogger(name)
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    try:
        yield logger
    finally:
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def progress_bar(iterable: Iterable[T], desc: str, *, enabled: bool = True, **kwargs: Any) -> Iterable[T]:
    """``iterable`` wrapped in a tqdm bar when ``enabled`` (rank 0 of an interactive run), else as is."""
    if not enabled:
        return iterable
    return tqdm(iterable, desc=desc, dynamic_ncols=True, **kwargs)


def format_train_log(iteration: int, total: int, avg: dict[str, float], seconds_per_iter: float) -> str:
    """The training log line: losses, LR, speed and the time left."""
    eta = int(max((total - iteration) * seconds_per_iter, 0))
    return (
        f"iter {iteration}/{total} loss {avg['loss']:.4f} (main {avg.get('loss_main', float('nan')):.4f} "
        f"aux_p {avg.get('loss_aux_p', float('nan')):.4f} aux_d {avg.get('loss_aux_d', float('nan')):.4f}) "
        f"lr {avg['lr']:.3e} {avg['images_per_s']:.1f} img/s eta {eta // 3600:d}:{eta % 3600 // 60:02d}:{eta % 60:02d}"
    )


class RunRecorder:
    """Appends scalars to ``metrics.jsonl`` and TensorBoard (when available and enabled)."""

    def __init__(self, work_dir: Path, tensorboard: bool = True) -> None:
        self.work_dir = work_dir
        self.path = work_dir / "metrics.jsonl"
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(log_dir=str(work_dir / "tensorboard"))
            except Exception as e:  # tensorboard missing or broken: keep the JSON log
                logging.getLogger("dsnet").warning("TensorBoard disabled: %s", e)

    def log(self, kind: str, iteration: int, values: dict[str, Any]) -> None:
        record = {"kind": kind, "iter": iteration, **values}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(f"{kind}/{key}", value, iteration)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def new_figure(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """``plt.subplots(*args, **kwargs)`` on the file-only Agg backend (nothing is shown)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def save_figure(fig: Any, out_path: Path) -> Path:
    """Lay out, write as PNG and close ``fig``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return out_path


Records = list[dict[str, Any]]


def plot_curves(metrics_path: Path, out_path: Path, draw: Callable[[Any, Records, Records], None]) -> Path | None:
    """Three panels of training curves from ``metrics.jsonl`` as one PNG: ``draw(axes, train records, validation
    records)`` fills them, each gets an iteration axis and a grid; ``None`` when the file holds no record."""
    records = read_metrics(metrics_path)
    train = [r for r in records if r["kind"] == "train"]
    val = [r for r in records if r["kind"] == "val"]
    if not train and not val:
        return None
    fig, axes = new_figure(1, 3, figsize=(15, 4))
    draw(axes, train, val)
    for ax in axes:
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    return save_figure(fig, out_path)


def plot_training_curves(metrics_path: Path, out_path: Path) -> Path | None:
    """Loss terms, learning rate and validation mIoU against iterations, as one PNG."""
    return plot_curves(metrics_path, out_path, _draw_segmentation_curves)


def _draw_segmentation_curves(axes: Any, train: Records, val: Records) -> None:
    if train:
        its = [r["iter"] for r in train]
        for key in ("loss", "loss_main", "loss_aux_p", "loss_aux_d"):
            if key in train[0]:
                axes[0].plot(its, [r[key] for r in train], label=key)
        axes[0].set_title("training loss")
        axes[0].legend()
        axes[1].plot(its, [r["lr"] for r in train])
        axes[1].set_title("learning rate")
    if val:
        axes[2].plot([r["iter"] for r in val], [100 * r["miou"] for r in val], marker="o", label="mIoU")
        if "miou_reference" in val[0]:
            axes[2].plot(
                [r["iter"] for r in val], [100 * r["miou_reference"] for r in val], marker="x", label="mIoU (ref.)"
            )
        axes[2].set_title("validation mIoU (%)")
        axes[2].legend()


def plot_class_iou(iou: Sequence[float | None], class_names: Sequence[str], out_path: Path, title: str = "") -> Path:
    """Per-class IoU bar chart (classes absent from GT and prediction are drawn empty)."""
    values = np.array([np.nan if v is None else float(v) for v in iou]) * 100
    fig, ax = new_figure(figsize=(min(max(8, 0.45 * len(values)), 40), 4.5))
    ax.bar(range(len(values)), np.nan_to_num(values), color="tab:blue")
    ax.set_xticks(range(len(values)))
    ax.set_xticklabels(class_names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("IoU (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title or f"per-class IoU, mIoU {np.nanmean(values):.1f}%", fontsize=10, wrap=True)
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, out_path)


def plot_run(work_dir: Path, final_iou: Sequence[float | None] | None, class_names: Sequence[str], title: str) -> None:
    """The end-of-run figures: ``curves.png`` from ``metrics.jsonl`` and, after a validation, ``class_iou.png``."""
    if final_iou is not None:
        plot_class_iou(list(final_iou), class_names, work_dir / "class_iou.png", title=title)
    plot_training_curves(work_dir / "metrics.jsonl", work_dir / "curves.png")
