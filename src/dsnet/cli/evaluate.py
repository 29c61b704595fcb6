"""``dsnet eval``: the mIoU of weights on a config's validation set, with its per-class table."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..engine.config import load_config
from ..engine.evaluate_run import evaluate_weights
from ..engine.metrics import format_table
from ..engine.run_files import resolve_work_dir
from ..errors import ConfigError
from ..fileio import check_output_files
from . import flags
from .reporting import configure_logging

__all__ = ["add_eval_command"]


def cmd_eval(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    split = args.split or cfg.data.val_split
    out = Path(args.out) if args.out else resolve_work_dir(cfg) / f"eval_{split}.json"
    if out.suffix != ".json":
        raise ConfigError(f"-o {out}: eval writes a .json file (and a .png beside it); name it so")
    args.new_outputs.watch(out, file=True)
    check_output_files([out, out.with_suffix(".png")], args.overwrite)  # before the evaluation
    configure_logging(None)
    start = time.perf_counter()  # a bar on a terminal: train.progress is the training's (the recipes turn it off)
    result = evaluate_weights(cfg, args.weights, split=split, out=out, device=args.device, progress=sys.stderr.isatty())
    seconds = time.perf_counter() - start
    if "outputs" in result:  # the main rank
        metrics = result["metrics"]
        print(format_table(metrics, result["class_names"]))
        print(
            f"images: {metrics.num_images}"
            + (f", {metrics.num_skipped} bad ones dropped" if metrics.num_skipped else "")
            + f" in {seconds:.1f} s ({metrics.num_images / max(seconds, 1e-9):.2f} img/s, loading included)"
        )
        print("written: " + ", ".join(result["outputs"]))
    return 0


def add_eval_command(sub: argparse._SubParsersAction) -> None:
    """Register ``eval`` on the ``dsnet`` sub-command parser."""
    p = sub.add_parser("eval", help="evaluate weights on a config's validation set (mIoU)")
    p.add_argument("config")
    flags.add_overrides(p, "eval.flip=true")
    flags.add_weights(p, "checkpoint: ours or the authors' (any layout)", required=True)
    p.add_argument("--split", default=None, help="dataset split (default: data.val_split)")
    flags.add_out(
        p,
        "results file, .json, with its per-class IoU plot beside it as .png (default: WORK_DIR/eval_<split>.json)",
        metavar="FILE",
    )
    flags.add_overwrite(p, "replace existing result files (refused otherwise)")
    flags.add_device(p)
    flags.add_threads(p)
    p.set_defaults(func=cmd_eval)
