"""The ``dsnet`` command: its parser (one module per command group registers its commands) and ``main``,
which runs one command with the checks, exit statuses and clean-up every command shares."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from ..devices import check_device, use_threads
from ..engine.observe import logging_scope
from ..engine.workdir import TRAIN_LOG
from ..errors import DSNetError
from ..fileio import DISPOSABLE_FILES, NewOutputs
from ..torchrun import is_main_process
from .ablate import add_ablate_command
from .analysis import add_analysis_commands
from .bench import add_bench_command
from .evaluate import add_eval_command
from .export import add_export_command
from .models import add_model_commands
from .predict import add_predict_command
from .reporting import report_error
from .serve import add_serve_command
from .train import add_training_commands

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dsnet", description="DSNet semantic segmentation")
    parser.add_argument("--version", action="version", version=f"dsnet {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_model_commands(sub)
    add_training_commands(sub)
    add_ablate_command(sub)
    add_eval_command(sub)
    add_predict_command(sub)
    add_bench_command(sub)
    add_export_command(sub)
    add_serve_command(sub)
    add_analysis_commands(sub)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """The arguments; ``key=value`` overrides may come before or after the options (argparse leaves the
    later ones over: they are collected here)."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        if hasattr(args, "overrides") and all("=" in x and not x.startswith("-") for x in extra):
            args.overrides = list(args.overrides) + extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(build_parser(), argv)
    args.new_outputs = NewOutputs()
    code = 1
    try:
        with logging_scope():  # the command's handlers and log file end with it
            try:
                check_device(getattr(args, "device", None))  # every command that takes them, before any work
                use_threads(getattr(args, "threads", None))
                code = int(args.func(args))
            except (DSNetError, OSError, ValueError, TypeError) as e:
                report_error(args.command, e, args.debug)
                code = 2
            except KeyboardInterrupt:
                print(f"dsnet {args.command}: interrupted", file=sys.stderr)
                code = 130
    finally:
        if code != 0 and is_main_process():  # a failed command leaves no empty output folder behind
            # an input error (exit 2) was said on stderr in one line: a log holding only it is no result either
            args.new_outputs.remove_unused((*DISPOSABLE_FILES, TRAIN_LOG) if code == 2 else DISPOSABLE_FILES)
    return code
