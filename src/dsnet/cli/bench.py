"""``dsnet bench``: the speed of a model on several backends and precisions, interleaved in one process."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from ..bench import format_report, list_variants, run_bench
from ..engine.run_files import write_json
from ..errors import ConfigError
from ..fileio import check_output_files
from . import flags

__all__ = ["add_bench_command"]


def cmd_bench(args: argparse.Namespace) -> int:
    if args.out:
        if Path(args.out).suffix != ".json":
            raise ConfigError(f"-o {args.out}: bench writes its report as a .json file; name it so")
        args.new_outputs.watch(args.out, file=True)
        check_output_files([args.out], args.overwrite)  # before the benchmark, not after it
    report = run_bench(
        args.model,
        args.size,
        backends=args.backends.split(","),
        precisions=args.precision.split(","),
        protocol=args.protocol,
        num_classes=args.num_classes,
        weights=args.weights,
        batch_size=args.batch_size,
        device=args.device or ("cuda" if torch.cuda.is_available() else "cpu"),
        target_seconds=args.seconds,
        progress=None if args.json else (lambda msg: print(f"bench: {msg}", file=sys.stderr)),
    )
    if args.out:
        write_json(Path(args.out), report.to_dict())
    if args.json:
        print(json.dumps(report.to_dict()["rows"], indent=1))
        for note in report.notes:
            print(f"dsnet bench: {note}", file=sys.stderr)
    else:
        print(format_report(report))
    return 0


def add_bench_command(sub: argparse._SubParsersAction) -> None:
    """Register ``bench`` on the ``dsnet`` sub-command parser."""
    p = sub.add_parser("bench", help="speed of a model on several backends, interleaved in one process")
    flags.add_model(p, listed=False)
    flags.add_size(p, default=(1024, 2048))
    p.add_argument("--backends", default="eager", help=f"comma-separated, from: {','.join(list_variants())}")
    flags.add_precision(
        p,
        "comma-separated: fp32, bf16, fp16 (GPU), auto (what predict --precision auto runs per backend); "
        "INT8 is the openvino-int8 backend",
        default="fp32",
    )
    p.add_argument("--protocol", choices=("paper", "e2e"), default="paper")
    flags.add_weights(p, "time a trained checkpoint (default: random weights); sets the class count")
    flags.add_num_classes(p, help="without --weights (default 19)")
    flags.add_batch_size(p, 1)
    p.add_argument(
        "--seconds",
        type=float,
        default=6.0,
        help="timed seconds per row, each (backend, precision): its warm-up gets half as much again; a "
        "row slower than this is timed once (default 6)",
    )
    flags.add_threads(p)
    flags.add_device(p)
    flags.add_json(p, "print the rows as JSON instead of the table")
    flags.add_out(p, "also write the whole report to this .json file", metavar="FILE")
    flags.add_overwrite(p, "replace an existing --out file (refused otherwise)")
    p.set_defaults(func=cmd_bench)
