"""Small helpers for a run's files: the work dir of a config, JSON output, durations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import atomic_write
from .config import Config

__all__ = ["resolve_work_dir", "write_json", "fmt_seconds"]


def resolve_work_dir(cfg: Config) -> Path:
    """``train.work_dir``, or ``runs/<config name>``."""
    return Path(cfg.train.work_dir or Path("runs") / cfg.name)


def write_json(path: Path, data: Any) -> Path:
    text = json.dumps(data, indent=1, default=_json_default)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _json_default(x: Any) -> Any:
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(type(x).__name__)


def fmt_seconds(s: float) -> str:
    s = int(max(s, 0))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"
