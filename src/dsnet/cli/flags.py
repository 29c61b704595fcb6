"""The flags several ``dsnet`` commands take, each declared here once, so they parse alike everywhere.

A command passes the help text it shows (it often names that command's default or file kind) and, where
the flag's shape differs (required or not, a default, an alias), the variant; the name, type and meaning
stay one. ``tests/test_cli_flags.py`` checks that no command declares one of these flags itself.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from ..deploy import BACKENDS
from ..hardware import PRECISION_CHOICES
from ..models import list_models

#: ``dsnet predict``'s (and ``serve``'s) precision when none is asked for
PREDICT_PRECISION = "fp32"

DEVICE_HELP = "cuda or cpu (default: cuda if available)"
TORCH_THREADS_HELP = "torch CPU threads (default: torch's)"
RUNTIME_THREADS_HELP = "CPU threads of torch and of the runtime"
PREDICTOR_PRECISION_HELP = (
    "auto: bf16 where the CPU/GPU computes it natively (torch, openvino), else fp32; int8: openvino, "
    f"an INT8 export or --calib (default: {PREDICT_PRECISION})"
)

Size = tuple[int, int]


def add_model(p: argparse.ArgumentParser, names: Sequence[str] | None = None, *, listed: bool = True) -> None:
    """The registered model positional: ``names`` (default: the segmentation models) listed in its help."""
    help = f"one of {', '.join(list_models() if names is None else names)}" if listed else None
    p.add_argument("model", help=help)


def add_overrides(p: argparse.ArgumentParser, example: str) -> None:
    """The ``key=value`` overrides after a config (``example``: one for this command's help)."""
    p.add_argument("overrides", nargs="*", help=f"section.key=value overrides, e.g. {example}")


def add_device(p: argparse.ArgumentParser, default: str | None = None, help: str = DEVICE_HELP) -> None:
    """``--device``: checked up front by :func:`dsnet.cli.command.main` for every command that takes it."""
    p.add_argument("--device", default=default, help=help)


def add_threads(p: argparse.ArgumentParser, help: str = TORCH_THREADS_HELP) -> None:
    """``--threads``: torch's CPU thread count, set by :func:`dsnet.cli.command.main` before the command runs."""
    p.add_argument("--threads", type=int, default=None, help=help)


def add_overwrite(p: argparse.ArgumentParser, help: str) -> None:
    """``--overwrite``: the one way past the existence rule of a command's outputs."""
    p.add_argument("--overwrite", action="store_true", help=help)


def add_out(
    p: argparse.ArgumentParser,
    help: str,
    *,
    metavar: str,
    required: bool = False,
    aliases: Sequence[str] = (),
    dest: str = "out",
) -> None:
    """``-o``/``--out`` (plus a command's older spellings in ``aliases``): a FILE or DIR the command writes."""
    p.add_argument("-o", "--out", *aliases, dest=dest, required=required, default=None, metavar=metavar, help=help)


def add_work_dir(p: argparse.ArgumentParser, help: str) -> None:
    """``--work-dir``: where a training command writes its run."""
    p.add_argument("--work-dir", metavar="DIR", help=help)


def add_resume(p: argparse.ArgumentParser, help: str, *, from_where: str | None = None) -> None:
    """``--resume``: continue earlier work. A switch, or, with ``from_where`` (its metavar), an optional
    value naming where to continue from (``auto`` when given without one)."""
    switch: dict[str, Any] = {"action": "store_true"}
    from_value: dict[str, Any] = {"nargs": "?", "const": "auto", "default": None, "metavar": from_where}
    p.add_argument("--resume", **(switch if from_where is None else from_value), help=help)


def add_weights(p: argparse.ArgumentParser, help: str, *, required: bool = False, several: bool = False) -> None:
    """``--weights``: a file or the name of shipped weights (``several``: one or more of them)."""
    p.add_argument("--weights", nargs="+" if several else None, required=required, default=None, help=help)


def add_num_classes(p: argparse.ArgumentParser, default: int | None = None, help: str | None = None) -> None:
    """``--num-classes``: the head's class count where no weights give it."""
    p.add_argument("--num-classes", type=int, default=default, help=help)


def add_size(
    p: argparse.ArgumentParser,
    default: Size | None = None,
    help: str | None = None,
    *,
    required: bool = False,
    repeated: bool = False,
) -> None:
    """``--size H W`` (``repeated``: the flag may be given several times, one size each)."""
    action = "append" if repeated else "store"
    p.add_argument(
        "--size", nargs=2, type=int, action=action, required=required, default=default, metavar=("H", "W"), help=help
    )


def add_json(p: argparse.ArgumentParser, help: str | None = None) -> None:
    """``--json``: machine-readable output on stdout instead of the table."""
    p.add_argument("--json", action="store_true", help=help)


def add_batch_size(p: argparse.ArgumentParser, default: int, help: str | None = None) -> None:
    p.add_argument("--batch-size", type=int, default=default, help=help)


def add_backend(p: argparse.ArgumentParser, help: str) -> None:
    """``--backend``: the runtime a :class:`~dsnet.predict.Predictor` runs on."""
    p.add_argument("--backend", choices=BACKENDS, default=None, help=help)


def add_dataset(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default=None, help="class names/colours/ids of this dataset (default: metadata)")


def add_precision(
    p: argparse.ArgumentParser, help: str, *, choices: Sequence[str] | None = None, default: str | None = None
) -> None:
    """``--precision``: one of ``choices`` (a Predictor's), or, without choices, a comma-separated list."""
    p.add_argument("--precision", choices=choices, default=default, help=help)


def add_calibration(p: argparse.ArgumentParser, help: str, count_help: str) -> None:
    """``--calib DATA`` and ``--calib-count``: the images INT8 quantization calibrates on."""
    p.add_argument("--calib", metavar="DATA", help=help)
    p.add_argument("--calib-count", type=int, default=300, help=count_help)


def add_predictor_precision(p: argparse.ArgumentParser) -> None:
    """``--precision`` and INT8's calibration options, worded alike wherever a trained model runs."""
    add_precision(p, PREDICTOR_PRECISION_HELP, choices=PRECISION_CHOICES)
    add_calibration(
        p,
        "--precision int8: images to calibrate on (folder, glob, .txt)",
        "--calib: images to use (random subset; default 300)",
    )
