"""Entry points for the command line: load a pre-training config, evaluate weights (``--eval-only``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ...models import load_weights
from ..config import load_config
from ..workdir import load_run_config
from .build import build_classifier, build_cls_datasets
from .config import PretrainConfig, validate_pretrain_config
from .evaluate import ClsMetrics, evaluate_classifier

__all__ = ["load_pretrain_config", "evaluate_pretrain_weights"]


def load_pretrain_config(
    config: str | os.PathLike | None, overrides: list[str] | None = None, resume: str | os.PathLike | None = None
) -> PretrainConfig:
    """The config file with overrides, or, without a file, the config saved in the run being resumed."""
    if config is None:
        if resume is None:
            raise FileNotFoundError("give a CONFIG file, or --resume WORK_DIR to continue a run")
        return load_run_config(resume, overrides, PretrainConfig)
    return load_config(config, overrides, PretrainConfig)


def evaluate_pretrain_weights(
    cfg: PretrainConfig, weights: str | os.PathLike | None = None, device: str | None = None
) -> tuple[ClsMetrics, dict[str, Any]]:
    """Top-1/top-5 of ``weights`` (default: ``model.pretrained``) on the config's validation split."""
    validate_pretrain_config(cfg)
    source = weights or cfg.model.pretrained
    if source is None:
        raise FileNotFoundError("--eval-only needs --weights (or model.pretrained)")
    cfg.model.pretrained = None
    model = build_classifier(cfg)
    report = load_weights(model, Path(source))
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(dev)
    e = cfg.eval
    metrics = evaluate_classifier(
        model,
        build_cls_datasets(cfg, train=False)["val"],
        device=dev,
        batch_size=e.batch_size,
        num_workers=e.num_workers,
        max_samples=cfg.train.max_val_samples,
        progress="eval" if cfg.train.progress else False,
    )
    assert metrics is not None  # no stop callback
    return metrics, {"weights": str(source), "loaded": len(report.loaded)}
