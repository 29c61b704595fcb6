"""``dsnet train`` and ``dsnet pretrain``: a run from a config, or one continued from its work dir."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..engine.config import load_config
from ..engine.pretrain import evaluate_pretrain_weights, load_pretrain_config, pretrain
from ..engine.run_files import resolve_work_dir, write_json
from ..engine.trainer import TrainingInterrupted, train
from ..engine.workdir import TRAIN_LOG, load_run_config
from ..errors import ConfigError, WeightsNotFoundError
from ..fileio import check_output_files
from ..models import resolve_weights
from . import flags
from .reporting import configure_logging

__all__ = ["add_training_commands"]


def _config_or_override(args: argparse.Namespace) -> None:
    """``--resume W key=value``: argparse takes the first override for the optional CONFIG; give it back."""
    if args.config is not None and "=" in args.config and not Path(args.config).exists():
        args.overrides = [args.config, *args.overrides]
        args.config = None


def _prepare_run(args: argparse.Namespace, load: Callable[..., Any]) -> tuple[Any, Path, Any]:
    """The config of ``dsnet train``/``pretrain`` (file or the resumed run's), its work dir and resume value."""
    _config_or_override(args)
    resume = args.resume
    if args.config is None:
        if resume in (None, "auto"):
            raise ConfigError("give a CONFIG file, or --resume WORK_DIR to continue a run from its saved config")
        cfg = load(None, args.overrides, resume)
    else:
        cfg = load(args.config, args.overrides, None)
        if resume not in (None, "auto") and Path(resume).is_dir() and not args.work_dir:
            cfg.train.work_dir = resume
    if args.work_dir:
        cfg.train.work_dir = args.work_dir
    work_dir = resolve_work_dir(cfg)
    args.new_outputs.watch(work_dir)  # a run that fails before writing anything leaves no empty folder behind
    configure_logging(work_dir / TRAIN_LOG)
    return cfg, work_dir, True if resume == "auto" else resume


def _load_train_config(config: str | None, overrides: list[str], resume: str | None) -> Any:
    return load_config(config, overrides) if config is not None else load_run_config(resume, overrides)


def _run_training(
    args: argparse.Namespace, load: Callable[..., Any], run: Callable[..., dict[str, Any]]
) -> tuple[Path, dict[str, Any] | None, int]:
    """``dsnet train``/``pretrain``: the work dir, the run's summary (``None`` when a signal stopped it) and
    the exit status; says how to continue a stopped run and that a finished one had nothing to do."""
    cfg, work_dir, resume = _prepare_run(args, load)
    try:
        summary = run(cfg, resume=resume, overwrite=args.overwrite, device=args.device)
    except TrainingInterrupted as e:
        print(f"dsnet {args.command}: {e}. Continue with: dsnet {args.command} --resume {e.work_dir}", file=sys.stderr)
        return work_dir, None, 128 + e.signum if e.signum else 1
    if summary.get("already_finished"):
        print(f"dsnet {args.command}: {work_dir} already finished at iteration {summary['iterations']}; nothing to do")
    return work_dir, summary, 0


def cmd_train(args: argparse.Namespace) -> int:
    _, summary, code = _run_training(args, _load_train_config, train)
    if summary is not None and (summary.get("already_finished") or "final" in summary):
        print(f"best mIoU {100 * summary['best_miou']:.2f}% at iteration {summary['best_iteration']}")
    return code


def _pretrain_eval_only(args: argparse.Namespace) -> int:
    """``dsnet pretrain --eval-only``: top-1/top-5 of ``--weights``, saved as WORK_DIR/eval_val.json."""
    _config_or_override(args)
    cfg = load_pretrain_config(args.config, args.overrides, args.resume)
    cfg.train.work_dir = args.work_dir or cfg.train.work_dir
    out = resolve_work_dir(cfg) / "eval_val.json"
    args.new_outputs.watch(out, file=True)
    check_output_files([out], args.overwrite)  # the same existence rule as every output: before the work
    metrics, extra = evaluate_pretrain_weights(cfg, args.weights, args.device)
    print(f"top-1 {100 * metrics.top1:.2f}%  top-5 {100 * metrics.top5:.2f}%  on {metrics.num_images} images")
    write_json(out, {**extra, **metrics.to_dict()})
    print(f"saved {out}")
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    if args.eval_only:
        return _pretrain_eval_only(args)
    if args.weights is not None:  # a new run starts from these weights (never ignored)
        if args.resume is not None:
            raise ConfigError(
                f"--weights {args.weights}: a new run starts from these weights, a resumed run from its checkpoint; "
                "drop --weights to resume, or --resume to start a new run from them"
            )
        if not Path(resolve_weights(args.weights)).is_file():
            raise WeightsNotFoundError(f"{args.weights}: weights file not found (--weights)")

    def load(config: str | None, overrides: list[str], resume: str | None) -> Any:
        cfg = load_pretrain_config(config, overrides, resume)
        if args.weights is not None:
            cfg.model.pretrained = args.weights  # what a config says with model.pretrained
        return cfg

    work_dir, summary, code = _run_training(args, load, pretrain)
    if summary is not None:
        print(f"best val top-1 {100 * summary['best_top1']:.2f}% (weights: {work_dir / 'best.safetensors'})")
    return code


def _add_run_arguments(p: argparse.ArgumentParser, example: str) -> None:
    """The command-line shape shared by ``dsnet train`` and ``dsnet pretrain``."""
    p.add_argument("config", nargs="?", help=f"YAML config, e.g. {example} (omit it with --resume WORK_DIR)")
    flags.add_overrides(p, "optim.lr=0.005")
    flags.add_resume(
        p,
        "continue a run: from a work dir (its config.yaml and last.pth), a checkpoint, or, without a value, the "
        "config's work dir",
        from_where="WORK_DIR_OR_CHECKPOINT",
    )
    flags.add_overwrite(p, "start afresh in a work dir that holds another run's files")
    flags.add_work_dir(p, "output folder (default: runs/<config name>)")
    flags.add_device(p)
    flags.add_threads(p)


def add_training_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``train`` and ``pretrain`` on the ``dsnet`` sub-command parser."""
    p = sub.add_parser(
        "train", help="train with a YAML config (torchrun --nproc-per-node N -m dsnet train ... for DDP)"
    )
    _add_run_arguments(p, "configs/dsnet-head128_4xb6-120k_cityscapes-1024x1024.yaml")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "pretrain", help="ImageNet pre-training of the encoder (same config rules as train; torchrun for DDP)"
    )
    _add_run_arguments(p, "configs/dsnet-imagenet_8xb128-100e_imagenet-224.yaml")
    p.add_argument("--eval-only", action="store_true", help="top-1/top-5 of --weights on the val split")
    flags.add_weights(
        p,
        "classifier weights: the ones --eval-only evaluates, else the ones a new run starts from "
        "(as model.pretrained; e.g. the previous, lower-resolution phase's)",
    )
    p.set_defaults(func=cmd_pretrain)
