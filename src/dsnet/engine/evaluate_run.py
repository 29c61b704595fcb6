"""Evaluate saved weights on a config's dataset split and write the results (JSON and a plot)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from ..fileio import check_writable
from ..models import (
    AUX_HEAD_PREFIXES,
    DECODER_PREFIXES,
    check_num_classes,
    checkpoint_num_classes,
    create_model,
    load_weights,
    normalize_state_dict,
    read_checkpoint,
)
from .build import build_split
from .config import Config
from .config_checks import validate_config
from .distributed import cleanup, init_distributed
from .evaluator import evaluate_with_config
from .observe import plot_class_iou
from .run_files import resolve_work_dir, write_json

__all__ = ["evaluate_weights"]


def _segmentation_weights(weights: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's tensors; an encoder-only (ImageNet) checkpoint cannot be evaluated."""
    sd = normalize_state_dict(read_checkpoint(weights), str(weights))
    if not any(k.startswith(DECODER_PREFIXES) and not k.startswith(AUX_HEAD_PREFIXES) for k in sd):
        raise CheckpointError(
            f"{weights}: an encoder-only checkpoint (no decoder or classifier weights, e.g. ImageNet "
            f"pre-training); evaluation needs segmentation weights, e.g. a run's best.safetensors"
        )
    return sd


def evaluate_weights(
    cfg: Config,
    weights: str | os.PathLike,
    *,
    split: str | None = None,
    out: str | os.PathLike | None = None,
    device: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Evaluate ``weights`` with the dataset and ``eval`` settings of ``cfg``.

    Writes the results to ``out`` (default ``WORK_DIR/eval_<split>.json``) and a per-class IoU
    plot beside it; returns the results (metrics, confusion matrix, settings, output paths).
    The output folder is checked for writing before the evaluation starts.
    """
    validate_config(cfg)
    split = split or cfg.data.val_split
    out_path = Path(out) if out else resolve_work_dir(cfg) / f"eval_{split}.json"
    env = init_distributed(device)
    try:
        if env.is_main:
            check_writable(out_path.parent)
        state = _segmentation_weights(weights)  # a wrong or missing file is named before the dataset scan
        check_num_classes(checkpoint_num_classes(state), cfg.model.num_classes, weights, "model.num_classes")
        dataset = build_split(cfg, split, train=False)
        model = create_model(cfg.model.name, num_classes=cfg.model.num_classes, aux_heads=False)
        load_weights(model, state, part="full", source=str(weights), fine_tuning=False)  # logs its report
        model.to(env.device).eval()
        metrics = evaluate_with_config(
            model, dataset, cfg, device=env.device, progress=f"eval {split}" if progress and env.is_main else False
        )
        result = {
            "model": cfg.model.name,
            "weights": str(weights),
            "dataset": cfg.data.dataset,
            "split": split,
            "eval": {
                k: getattr(cfg.eval, k)
                for k in ("mode", "crop_size", "stride", "scales", "flip", "short_side", "random_crop")
            },
            "world_size": env.world_size,
            "class_names": list(dataset.label_space.classes),
            **metrics.to_dict(),
        }
        if env.is_main:
            write_json(out_path, result)
            plot_class_iou(
                result["iou"],
                result["class_names"],
                out_path.with_suffix(".png"),
                title=f"{cfg.model.name} on {cfg.data.dataset} {split}: mIoU {100 * metrics.miou:.2f}%",
            )
            result["outputs"] = [str(out_path), str(out_path.with_suffix(".png"))]
        result["metrics"] = metrics
        return result
    finally:
        cleanup(env)
