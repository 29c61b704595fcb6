"""Small helpers for a run's files: the work dir of a config, JSON output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..fileio import atomic_write
from .config import config_to_dict

__all__ = ["resolve_work_dir", "write_config", "write_json"]


def resolve_work_dir(cfg: Any) -> Path:
    """``train.work_dir``, or ``runs/<config name>``."""
    return Path(cfg.train.work_dir or Path("runs") / cfg.name)


def write_config(path: Path, cfg: Any) -> Path:
    """The resolved config as YAML (what ``dsnet train --resume WORK_DIR`` reads back)."""
    text = yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_json(path: Path, data: Any) -> Path:
    text = json.dumps(data, indent=1, default=_json_default)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _json_default(x: Any) -> Any:
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(type(x).__name__)
