"""Training checkpoints: everything needed to resume bit for bit, loadable with weights_only=True."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError
from ..fileio import atomic_write, read_torch_file

__all__ = ["capture_rng_state", "restore_rng_state", "save_training_state", "load_training_state"]

FORMAT = "dsnet-train-state-v1"


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy, torch (CPU and CUDA) RNG states as tensors and plain values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_as_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(x: Any) -> Any:
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def save_training_state(path: str | Path, **state: Any) -> Path:
    """Atomically write a resumable training state (model, optimizer, iteration, RNG, ...)."""
    path = Path(path)
    payload = {"format": FORMAT, **state}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
    return path


def load_training_state(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    state = read_torch_file(path, what="training checkpoint")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a dsnet training state (expected format {FORMAT!r}); to start from weights only, "
            f"set model.pretrained instead of --resume"
        )
    return state
