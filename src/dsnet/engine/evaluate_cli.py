"""``dsnet eval``: evaluate weights on a config's validation split, print and save the results."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ..models import create_model, load_weights
from .config import load_config
from .distributed import cleanup, init_distributed
from .evaluator import evaluate
from .metrics import format_table
from .observe import plot_class_iou, setup_logging
from .trainer import build_split, resolve_work_dir

__all__ = ["run_evaluation"]


def run_evaluation(
    config: str | Path,
    weights: str | Path,
    *,
    overrides: list[str] | None = None,
    split: str | None = None,
    out: str | Path | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """Evaluate ``weights`` with the dataset and ``eval`` section of ``config``; returns the results."""
    cfg = load_config(config, overrides)
    env = init_distributed(device)
    work_dir = resolve_work_dir(cfg)
    logger = setup_logging(None, env.is_main)
    try:
        split = split or cfg.data.val_split
        dataset = build_split(cfg, split, train=False)
        model = create_model(cfg.model.name, num_classes=cfg.model.num_classes, aux_heads=False)
        report = load_weights(model, weights)
        logger.info("%s", report)
        model.to(env.device).eval()
        progress = None
        if env.is_main and cfg.train.progress:
            from tqdm import tqdm

            def progress(it: Any) -> Any:
                return tqdm(it, desc=f"eval {split}", dynamic_ncols=True)

        metrics, cm = evaluate(
            model,
            dataset,
            cfg.model.num_classes,
            cfg.eval,
            device=env.device,
            ignore_index=int(dataset.info.ignore_index),
            max_samples=cfg.train.max_val_samples,
            seed=cfg.train.seed,
            progress=progress,
        )
        result = {
            "model": cfg.model.name,
            "weights": str(weights),
            "dataset": cfg.data.dataset,
            "split": split,
            "num_images": min(len(dataset), cfg.train.max_val_samples or len(dataset)),
            "eval": {
                k: getattr(cfg.eval, k)
                for k in ("mode", "crop_size", "stride", "scales", "flip", "short_side", "random_crop")
            },
            "world_size": env.world_size,
            "class_names": list(dataset.info.classes),
            **metrics.to_dict(),
            "confusion_matrix": cm.matrix.cpu().tolist(),
        }
        if env.is_main:
            print(format_table(metrics, list(dataset.info.classes)))
            out_path = Path(out) if out else work_dir / f"eval_{split}.json"
            out_path.parent.mkdir(parents=True, exist_ok=True)
            out_path.write_text(json.dumps(result, indent=1))
            plot_class_iou(
                result["iou"],
                result["class_names"],
                out_path.with_suffix(".png"),
                title=f"{cfg.model.name} on {cfg.data.dataset} {split}: mIoU {100 * metrics.miou:.2f}%",
            )
            logging.getLogger("dsnet").info("results written to %s", out_path)
        return result
    finally:
        cleanup()
