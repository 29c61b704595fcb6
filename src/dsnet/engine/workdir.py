"""A training run's work dir: one run at a time (lock file), no silent overwrite, resume resolution.

* A lock (``fcntl.flock`` on ``.dsnet.lock``, released by the OS when the process dies) refuses a
  second concurrent run in the same folder.
* A new run refuses a folder that holds another run's checkpoints unless told to resume or to
  overwrite.
* Resuming truncates ``metrics.jsonl`` to the checkpoint's iteration (no repeated iterations) and
  removes temporary files left by a write that was killed.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..errors import WorkDirError
from ..fileio import atomic_write, check_writable, remove_stale_temp_files
from ..locking import FolderLock
from .config import Config, apply_overrides, config_from_dict, load_config
from .distributed import DistEnv, all_ranks_agree
from .state import load_training_state

__all__ = ["RunDir", "LAST_CHECKPOINT", "RUN_FILES", "TRAIN_LOG", "load_run_config"]

LAST_CHECKPOINT = "last.pth"
#: the run's log
TRAIN_LOG = "train.log"
#: Files and folders a training run writes (removed by ``--overwrite``).
RUN_FILES = (
    LAST_CHECKPOINT,
    "nonfinite.pth",
    "best.safetensors",
    "final.safetensors",
    "best_metrics.json",
    "summary.json",
    "metrics.jsonl",
    "config.yaml",
    "curves.png",
    "class_iou.png",
    TRAIN_LOG,
    "tensorboard",
)
_CHECKPOINTS = (LAST_CHECKPOINT, "best.safetensors", "final.safetensors")


class RunDir:
    """The work dir of one training run (see the module docstring)."""

    def __init__(self, path: str | os.PathLike, command: str = "train") -> None:
        self.path = Path(path)
        self.command = command  # the ``dsnet`` command whose runs live here (named in the refusal)
        self._lock: FolderLock | None = None

    @property
    def last_checkpoint(self) -> Path:
        return self.path / LAST_CHECKPOINT

    def holds_run(self) -> bool:
        """True when a previous run left checkpoints here."""
        return any((self.path / name).exists() for name in _CHECKPOINTS)

    def lock(self) -> None:
        """Take the folder for this process; :class:`WorkDirError` when another run holds it."""
        if self._lock is None:
            self._lock = FolderLock(self.path)
        holder = self._lock.acquire()
        if holder is not None:
            raise WorkDirError(
                f"{self.path}: another dsnet run is using this work dir ({holder}); wait for it to finish "
                f"or choose another --work-dir"
            )

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.release()

    def claim(self, env: DistEnv, *, resuming: bool, overwrite: bool) -> None:
        """Rank 0 checks, locks and tidies the folder; every rank learns whether that worked."""
        error: Exception | None = None
        if env.is_main:
            try:
                check_writable(self.path)
                self.lock()
                if not resuming:
                    self.refuse_foreign_run(overwrite)
                self.remove_stale_temp_files()
            except Exception as e:  # raised below, after the other ranks heard of it
                error = e
        if not all_ranks_agree(error is None, env):
            self.unlock()
            if error is not None:
                raise error
            raise WorkDirError(f"{self.path}: rank 0 could not take the work dir (see its error)")

    def refuse_foreign_run(self, overwrite: bool) -> None:
        """Before a new (not resumed) run: clear the folder when ``overwrite``, else refuse it."""
        if not self.holds_run():
            return
        if not overwrite:
            raise WorkDirError(
                f"{self.path}: holds another run's checkpoints ({', '.join(self._present())}); continue it with "
                f"`dsnet {self.command} --resume {self.path}`, start afresh with --overwrite, "
                "or choose another --work-dir"
            )
        for name in RUN_FILES:
            target = self.path / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()

    def _present(self) -> list[str]:
        return [name for name in _CHECKPOINTS if (self.path / name).exists()]

    def remove_stale_temp_files(self) -> list[Path]:
        return remove_stale_temp_files(self.path)

    def truncate_metrics(self, iteration: int, drop_val_at_iteration: bool = False) -> int:
        """Drop ``metrics.jsonl`` records after ``iteration`` (a resumed run writes them again), and the
        validation record of ``iteration`` itself when ``drop_val_at_iteration`` (the resumed run redoes it)."""
        path = self.path / "metrics.jsonl"
        if not path.exists():
            return 0
        lines = path.read_text().splitlines()
        keep = [ln for ln in lines if ln.strip() and _kept(json.loads(ln), iteration, drop_val_at_iteration)]
        dropped = len([ln for ln in lines if ln.strip()]) - len(keep)
        if dropped:
            atomic_write(path, lambda tmp: Path(tmp).write_text("".join(ln + "\n" for ln in keep)))
        return dropped

    def resolve_resume(self, resume: str | os.PathLike | bool) -> Path:
        """The checkpoint to resume from: ``True`` means this folder's ``last.pth``."""
        path = self.last_checkpoint if resume is True else Path(resume)
        if path.is_dir():
            path = path / LAST_CHECKPOINT
        if not path.is_file():
            raise WorkDirError(
                f"{path}: no checkpoint to resume from (a run saves {LAST_CHECKPOINT} every "
                f"train.checkpoint_interval iterations and when it is stopped)"
            )
        return path


def _kept(record: dict[str, Any], iteration: int, drop_val_at_iteration: bool) -> bool:
    it = record.get("iter", 0)
    return it < iteration or (it == iteration and not (drop_val_at_iteration and record.get("kind") == "val"))


def load_run_config(resume: str | os.PathLike, overrides: list[str] | None = None, cls: type[Any] = Config) -> Any:
    """The config a run was started with, for ``dsnet train --resume WORK_DIR`` (no config file).

    ``resume`` is a work dir (its ``config.yaml``) or a training checkpoint (the config saved in
    it); ``overrides`` apply on top; ``train.work_dir`` becomes the run's folder.
    """
    path = Path(resume)
    if path.is_dir():
        config_file = path / "config.yaml"
        if not config_file.is_file():
            raise WorkDirError(f"{path}: not a dsnet run folder (no config.yaml); give the config file too")
        cfg = load_config(config_file, overrides, cls)
        cfg.train.work_dir = str(path)
        return cfg
    state = load_training_state(path)
    cfg = apply_overrides(config_from_dict(state.get("config") or {}, cls), overrides or [])
    cfg.train.work_dir = str(path.parent)
    return cfg
