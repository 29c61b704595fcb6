"""``dsnet ablate``: train several variants with one config and budget, then compare them in one table.

Each variant trains in its own folder ``WORK_DIR/<variant>`` with the config's every setting but
``model.name``. The command is resumable: a variant whose run finished is not retrained, a
stopped one resumes from its ``last.pth``, so re-running the same command continues where it
stopped. The config is saved as ``WORK_DIR/ablation_config.yaml``; a later call with another
config (other than the variant list) is refused unless ``overwrite``, so a table never mixes
budgets. ``shard=(i, n)`` trains every n-th variant from the i-th only and writes no table: run one
shard per GPU, then the plain command (all trained) measures and writes the comparison. The table
shows every finished variant of the work dir, also those a re-run with fewer variants did not name.

Once every variant is trained: params and paper GFLOPs of the inference model at the FPS size,
FPS of all variants in one process with their timing rounds interleaved
(:func:`dsnet.bench.compare.compare_speed`), the final-iteration and best validation mIoU of each
run, written as ``ablation.json``, ``ablation.md`` and ``ablation.png``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from ..analysis import profile
from ..bench.compare import compare_speed
from ..constants import round_up
from ..errors import ConfigError
from ..fileio import atomic_write, check_writable
from ..models import create_model, get_model_info
from ..models.registry import resolve_model_name
from ..torchrun import Shard
from .ablate_report import format_markdown, plot_ablation
from .build import build_split
from .config import Config, config_to_dict
from .config_checks import validate_config
from .run_files import write_json
from .trainer import train
from .workdir import LAST_CHECKPOINT

__all__ = ["run_ablation", "variant_config", "resolve_variants"]

logger = logging.getLogger("dsnet")

SAVED_CONFIG = "ablation_config.yaml"


def resolve_variants(variants: Sequence[str]) -> list[str]:
    """Registered names for ``variants`` (aliases accepted); an error for unknown or repeated ones."""
    names = [resolve_model_name(v.strip()) for v in variants if v.strip()]
    if not names:
        raise ConfigError("--variants: give at least one model name (dsnet list --ablations shows them)")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"--variants: {', '.join(repeated)} given twice")
    return names


def variant_config(cfg: Config, variant: str, work_dir: Path) -> Config:
    """``cfg`` for one variant: its model name and its sub folder, everything else unchanged."""
    sub = copy.deepcopy(cfg)
    sub.model.name = variant
    sub.train.work_dir = str(work_dir / variant)
    sub.name = f"{cfg.name}/{variant}"
    return sub


def _comparable(cfg: Config) -> dict[str, Any]:
    d = config_to_dict(cfg)
    d["model"].pop("name", None)
    d["train"].pop("work_dir", None)
    return d


def _check_saved_config(cfg: Config, work_dir: Path, overwrite: bool) -> None:
    """Refuse a work dir that was started with another config (unless ``overwrite``); save this one."""
    saved_path = work_dir / SAVED_CONFIG
    current = _comparable(cfg)
    if saved_path.is_file() and not overwrite:
        saved = yaml.safe_load(saved_path.read_text()) or {}
        diff = sorted(
            f"{section}.{key}"
            for section in set(saved) | set(current)
            for key in set(saved.get(section) or {}) | set(current.get(section) or {})
            if isinstance(current.get(section), dict)
            and (saved.get(section) or {}).get(key) != (current.get(section) or {}).get(key)
        )
        if diff:
            raise ConfigError(
                f"{work_dir}: its variants were trained with another config (differs in {', '.join(diff)}); "
                "use the same config, another --work-dir, or --overwrite to retrain them all"
            )
    text = yaml.safe_dump(current, sort_keys=False)
    atomic_write(saved_path, lambda tmp: Path(tmp).write_text(text))


def _train_variant(cfg: Config, overwrite: bool, device: str | None) -> None:
    work = Path(cfg.train.work_dir or "")
    resume = (work / LAST_CHECKPOINT).is_file() and not overwrite
    logger.info("ablate: %s %s -> %s", "resuming" if resume else "training", cfg.model.name, work)
    train(cfg, resume=True if resume else None, overwrite=overwrite, device=device)


def _eval_size(cfg: Config) -> tuple[int, int]:
    """The size the model sees on the first validation image (at the first ``eval.scales`` entry, as
    :mod:`dsnet.inference` resizes it), rounded up to the input multiple."""
    image = build_split(cfg, cfg.data.val_split, False)[0][0]
    scale = cfg.eval.scales[0] if cfg.eval.scales else 1.0
    h, w = (max(8, round(int(n) * scale)) for n in image.shape[-2:])
    m = get_model_info(cfg.model.name).input_multiple
    return round_up(h, m), round_up(w, m)


def _read_summary(work: Path, variant: str) -> dict[str, Any]:
    path = work / "summary.json"
    if not path.is_file():
        raise ConfigError(f"{work}: no summary.json, so {variant} has not finished training")
    return json.loads(path.read_text())


def _table_variants(names: list[str], work_dir: Path) -> list[str]:
    """``names``, then every other variant whose run in ``work_dir`` finished (one config for them all:
    see :func:`_check_saved_config`), in the earlier table's order, so that re-running the command with
    fewer variants never drops finished rows from the table."""
    earlier: list[str] = []
    # no earlier table (or not one of ours): the folders alone say what finished
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        earlier = [str(r["variant"]) for r in json.loads((work_dir / "ablation.json").read_text())["rows"]]
    folders = sorted(d.name for d in work_dir.iterdir() if d.is_dir()) if work_dir.is_dir() else []
    extra: list[str] = []
    for name in [*earlier, *folders]:
        if name in names or name in extra or not (work_dir / name / "summary.json").is_file():
            continue
        try:
            registered = resolve_model_name(name) == name
        except ConfigError:
            registered = False
        if registered:
            extra.append(name)
    if extra:
        logger.info("ablate: the table also shows the finished variant(s) %s of %s", ", ".join(extra), work_dir)
    return [*names, *extra]


def run_ablation(
    cfg: Config,
    variants: Sequence[str],
    work_dir: str | Path,
    *,
    overwrite: bool = False,
    device: str | None = None,
    shard: Shard | None = None,
    fps_size: Sequence[int] | None = None,
    fps_seconds: float = 3.0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train ``variants`` with ``cfg`` (see the module docstring); returns the comparison (or, for a
    shard, the variants it trained)."""
    names = resolve_variants(variants)
    work_dir = Path(work_dir)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    configs = {v: variant_config(cfg, v, work_dir) for v in names}
    for sub in configs.values():
        validate_config(sub)  # every variant's settings are checked before the first one trains
    check_writable(work_dir)
    _check_saved_config(cfg, work_dir, overwrite)

    todo = names if shard is None else names[shard[0] :: shard[1]]
    for i, variant in enumerate(todo, start=1):
        if progress:
            progress(f"variant {i}/{len(todo)}: {variant}")
        _train_variant(configs[variant], overwrite, device)
    if shard is not None:
        return {"trained": todo, "work_dir": str(work_dir)}

    names = _table_variants(names, work_dir)
    size = tuple(fps_size) if fps_size else _eval_size(configs[names[0]])
    rows = []
    for variant in names:
        summary = _read_summary(work_dir / variant, variant)
        cost = profile(create_model(variant, num_classes=cfg.model.num_classes, aux_heads=False), size)
        final = summary.get("final") or {}
        info = get_model_info(variant)
        rows.append(
            {
                "variant": variant,
                "change": f"{info.ablation.axis} = {info.ablation.value}" if info.ablation else "(base)",
                "miou": final.get("miou"),
                "best_miou": summary.get("best_miou"),
                "best_iteration": summary.get("best_iteration"),
                "iterations": summary.get("iterations"),
                "params": cost["params"],
                "paper_gflops": cost["paper_gflops"],
                "work_dir": str(work_dir / variant),
            }
        )
    if progress:
        progress(f"timing {len(names)} variants at {size[0]}x{size[1]}, interleaved")
    models = {v: create_model(v, num_classes=cfg.model.num_classes, aux_heads=False) for v in names}
    speed = compare_speed(models, size, device=device, target_seconds=fps_seconds, progress=progress)
    for row in rows:
        row.update(speed[row["variant"]])
    result = {
        "config": cfg.name,
        "dataset": cfg.data.dataset,
        "iterations": cfg.train.iters,
        "batch_size": cfg.data.batch_size,
        "size": list(size),
        "device": device,
        "rows": rows,
    }
    write_json(work_dir / "ablation.json", result)
    text = format_markdown(result)
    atomic_write(work_dir / "ablation.md", lambda tmp: Path(tmp).write_text(text + "\n"))
    plot_ablation(result, work_dir / "ablation.png")
    result["outputs"] = [str(work_dir / n) for n in ("ablation.md", "ablation.json", "ablation.png")]
    return result
