"""``dsnet ablate``: train several variants with one config and budget, then compare them.

``--shard I/N`` trains every N-th variant from the I-th only (one process per GPU); the plain command
afterwards measures and writes the comparison.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..engine.ablate import run_ablation
from ..engine.config import load_config
from ..engine.trainer import TrainingInterrupted
from ..errors import ConfigError
from ..torchrun import Shard
from . import flags
from .reporting import configure_logging

__all__ = ["add_ablate_command"]


def _parse_shard(text: str | None) -> Shard | None:
    """``--shard I/N``: the I-th of N shards (None: train every variant)."""
    if text is None:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text!r}: write I/N, e.g. 0/4 for the first of four processes") from None
    if not 0 <= i < n:
        raise ConfigError(f"--shard {text!r}: need 0 <= I < N")
    return Shard(i, n)


def _print_rows(result: dict) -> None:
    for r in result["rows"]:
        miou = "-" if r["miou"] is None else f"{100 * r['miou']:.2f}"
        print(
            f"{r['variant']:<40} mIoU {miou:>6}  params {r['params']:>10,}  "
            f"GFLOPs {r['paper_gflops']:>8.2f}  FPS {r['fps']:>7.2f}"
        )
    print("written: " + ", ".join(result["outputs"]))


def cmd_ablate(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    work_dir = Path(args.work_dir or Path("runs") / f"ablate-{cfg.name}")
    args.new_outputs.watch(work_dir)  # removed again if the command fails before any result
    configure_logging(work_dir / "ablate.log")
    try:
        result = run_ablation(
            cfg,
            args.variants.split(","),
            work_dir,
            overwrite=args.overwrite,
            device=args.device,
            shard=_parse_shard(args.shard),
            fps_size=args.fps_size,
            fps_seconds=args.fps_seconds,
            progress=lambda msg: print(f"ablate: {msg}", file=sys.stderr),
        )
    except TrainingInterrupted as e:
        print(f"dsnet ablate: {e}. Continue: run the same dsnet ablate command again", file=sys.stderr)
        return 128 + e.signum if e.signum else 1
    if "rows" not in result:
        print(f"dsnet ablate: trained {', '.join(result['trained'])} in {result['work_dir']}")
        return 0
    _print_rows(result)
    return 0


def add_ablate_command(sub: argparse._SubParsersAction) -> None:
    """Register ``ablate`` on the ``dsnet`` sub-command parser."""
    p = sub.add_parser(
        "ablate",
        help="train several variants with one config and budget, then compare mIoU, params, GFLOPs and FPS",
        description="Each variant trains in WORK_DIR/<variant>; re-running the command resumes (finished "
        "variants are not retrained). When all are trained: WORK_DIR/ablation.md, ablation.json, ablation.png.",
    )
    p.add_argument("config", help="YAML training config shared by every variant (model.name is replaced)")
    flags.add_overrides(p, "train.iters=500")
    p.add_argument("--variants", required=True, help="comma-separated model names (dsnet list --ablations)")
    flags.add_work_dir(p, "output folder (default: runs/ablate-<config name>)")
    flags.add_overwrite(p, "retrain every variant from scratch")
    flags.add_device(p)
    flags.add_threads(p)
    p.add_argument("--shard", default=None, metavar="I/N", help="train only variants I, I+N, ... (one per GPU)")
    p.add_argument("--fps-size", nargs=2, type=int, default=None, metavar=("H", "W"), help="default: eval size")
    p.add_argument("--fps-seconds", type=float, default=3.0, help="timed seconds per variant (default 3)")
    p.set_defaults(func=cmd_ablate)
