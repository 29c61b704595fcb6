"""Test doubles shared by the training tests."""

from __future__ import annotations

import importlib.util
import json
import signal
import sys
from pathlib import Path
from types import ModuleType

import yaml

from dsnet.engine.pretrain import PretrainTrainer
from dsnet.engine.trainer import Trainer


class _StopAtStep:
    """Mixin for a trainer: simulates Ctrl-C / SIGTERM arriving during iteration ``stop_at``."""

    stop_at = 3

    def _step(self, batches):  # type: ignore[no-untyped-def]
        out = super()._step(batches)  # type: ignore[misc]
        if self.iteration == self.stop_at:  # type: ignore[attr-defined]
            self._stop_signal = signal.SIGTERM
        return out


class StopAt(_StopAtStep, Trainer):
    """The segmentation trainer, stopped by a signal during iteration ``stop_at``."""


class PretrainStopAt(_StopAtStep, PretrainTrainer):
    """The pre-training trainer, stopped by a signal during iteration ``stop_at``."""


class Killed(BaseException):
    """Stands for a kill -9: nothing of the run's own clean-up that writes files runs after it."""


class _KilledInValidation:
    """Mixin for a trainer: the process dies (as with kill -9) during the validation of iteration ``kill_at``."""

    kill_at = 2

    def _evaluate(self):  # type: ignore[no-untyped-def]
        if self.iteration == self.kill_at:  # type: ignore[attr-defined]
            raise Killed(f"killed while validating iteration {self.kill_at}")
        return super()._evaluate()  # type: ignore[misc]


class KilledInValidation(_KilledInValidation, Trainer):
    """The segmentation trainer, killed outright during the validation of iteration ``kill_at``."""


class PretrainKilledInValidation(_KilledInValidation, PretrainTrainer):
    """The pre-training trainer, killed outright during the validation of iteration ``kill_at``."""


def same_run_records(a: Path, b: Path) -> bool:
    """Whether two work dirs' ``metrics.jsonl`` hold the same records, timings aside."""

    def records(work: Path) -> list[dict]:
        rows = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines() if line.strip()]
        return [{k: v for k, v in r.items() if k != "images_per_s"} for r in rows]

    return records(a) == records(b)


def write_tiny_config(
    path: Path,
    root: Path,
    *,
    iters: int,
    val_interval: int,
    workers: int = 0,
    tensorboard: bool = False,
    max_val_samples: int | None = None,
) -> Path:
    """A training config small enough for a test: dsnet_head64 on 64x64 crops of a CamVid-layout ``root``."""
    cfg = {
        "model": {"name": "dsnet_head64", "num_classes": 11},
        "data": {
            "dataset": "camvid",
            "root": str(root),
            "crop_size": [64, 64],
            "base_size": 96,
            "batch_size": 2,
            "num_workers": workers,
        },
        "loss": {"ohem_min_kept": 2000},
        # fp32: bf16 autocast (the default where the CPU has it) costs more than it saves on 64-px crops;
        # optim.amp=auto has its own tests
        "optim": {"lr": 0.01, "warmup_iters": 2, "amp": "none"},
        "train": {
            "iters": iters,
            "log_interval": 1,
            "val_interval": val_interval,
            "checkpoint_interval": 2,
            "max_val_samples": max_val_samples,
            "progress": False,
            "tensorboard": tensorboard,
        },
        "eval": {"num_workers": 0},
    }
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def load_script(path: Path) -> ModuleType:
    """A script that is not part of the package (benchmarks/*.py), imported as a module for its functions."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there while the script executes
    spec.loader.exec_module(module)
    return module
