"""The ``dsnet`` command. Thin: parses arguments and calls the Python API."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .analysis import profile
from .cli_ablate import add_ablate_parser, cmd_list_ablations
from .cli_analysis import add_analysis_commands
from .cli_deploy import add_deploy_commands
from .cli_serve import add_serve_command
from .devices import check_device, check_threads
from .engine.config import load_config
from .engine.evaluate_run import evaluate_weights
from .engine.metrics import format_table
from .engine.observe import logging_scope, setup_logging
from .engine.pretrain import evaluate_pretrain_weights, load_pretrain_config, pretrain
from .engine.run_files import resolve_work_dir, write_json
from .engine.trainer import TrainingInterrupted, train
from .engine.workdir import TRAIN_LOG, load_run_config
from .errors import ConfigError, DSNetError, WeightsNotFoundError
from .fileio import DISPOSABLE_FILES, NewOutputs, check_output_files
from .models import create_model, get_model_info, get_weights, list_models, list_weights, resolve_weights


def _fmt_results(name: str) -> str:
    info = get_model_info(name)
    parts = []
    for r in info.results:
        fps = f" @{r.fps:g} FPS ({r.gpu})" if r.fps else ""
        parts.append(f"{r.dataset} {r.miou:g}%{fps}")
    return "; ".join(dict.fromkeys(parts))


def cmd_list(args: argparse.Namespace) -> int:
    if args.ablations:
        return cmd_list_ablations(args)
    size = tuple(args.size)
    header = f"{'model':<15} {'params':>12} {'paper GFLOPs':>13} {'GMACs':>9}  paper results (val mIoU)"
    print(f"DSNet variants, {args.num_classes} classes, input {size[0]}x{size[1]} (params without aux heads)")
    print(header)
    print("-" * len(header))
    for name in list_models():
        p = profile(create_model(name, num_classes=args.num_classes), size)
        print(f"{name:<15} {p['params']:>12,} {p['paper_gflops']:>13.2f} {p['macs'] / 1e9:>9.2f}  {_fmt_results(name)}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    info = get_model_info(args.model)
    args.num_classes = args.num_classes or info.default_num_classes
    model = create_model(args.model, num_classes=args.num_classes)
    p = profile(model, tuple(args.size or info.default_size), by_module=True)
    if args.json:
        print(json.dumps({"model": info.name, "num_classes": args.num_classes, **p}, indent=1))
        return 0
    h, w = p["size"]
    print(f"{info.name}: {info.description}")
    print(f"  input                {h}x{w}, {args.num_classes} classes (H, W multiples of {info.input_multiple})")
    print(f"  params (inference)   {p['params']:,}")
    print(f"  params (with aux)    {p['params_with_aux']:,}")
    print(f"  conv MACs            {p['macs'] / 1e9:.2f} G  ({p['gflops']:.2f} GFLOPs, decimal)")
    print(f"  paper GFLOPs         {p['paper_gflops']:.2f}  (thop MACs / 2^30, the paper's convention)")
    if info.paper_params_m is not None:
        print(f"  paper params         {info.paper_params_m} M")
    if info.paper_gflops is not None and info.paper_gflops_size:
        ph, pw = info.paper_gflops_size
        print(f"  paper GFLOPs (table) {info.paper_gflops} at {ph}x{pw}")
    for r in info.results:
        fps = f", {r.fps} FPS on {r.gpu}" if r.fps else ""
        print(f"  paper result         {r.dataset}: {r.miou}% mIoU at {r.resolution[0]}x{r.resolution[1]}{fps}")
    print(f"  normalisation        mean {info.mean}, std {info.std} (RGB, 0-1)")
    total = sum(p["macs_by_module"].values()) or 1
    share = sorted(p["macs_by_module"].items(), key=lambda kv: -kv[1])
    print("  conv MACs by module  " + ", ".join(f"{k} {100 * v / total:.1f}%" for k, v in share if v))
    return 0


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
    _configure_logging(work_dir / TRAIN_LOG)
    return cfg, work_dir, True if resume == "auto" else resume


def _config_or_override(args: argparse.Namespace) -> None:
    """``--resume W key=value``: argparse takes the first override for the optional CONFIG; give it back."""
    if args.config is not None and "=" in args.config and not Path(args.config).exists():
        args.overrides = [args.config, *args.overrides]
        args.config = None


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


def cmd_pretrain(args: argparse.Namespace) -> int:
    if args.eval_only:
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


def cmd_eval(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    split = args.split or cfg.data.val_split
    out = Path(args.out) if args.out else resolve_work_dir(cfg) / f"eval_{split}.json"
    if out.suffix != ".json":
        raise ConfigError(f"-o {out}: eval writes a .json file (and a .png beside it); name it so")
    args.new_outputs.watch(out, file=True)
    check_output_files([out, out.with_suffix(".png")], args.overwrite)  # before the evaluation
    _configure_logging(None)
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


def _is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def _configure_logging(log_file: Path | None) -> None:
    main = _is_main_process()
    setup_logging(log_file if main else None, main)


def _report_error(command: str, error: BaseException, debug: bool) -> None:
    """One line on stderr (a traceback with --debug), also written to the run's log file."""
    message = str(error).strip() or type(error).__name__
    if isinstance(error, OSError) and not isinstance(error, DSNetError) and error.filename:
        message = f"{error.filename}: {error.strerror or message}"
    line = f"dsnet {command}: error: {message}"
    if debug:
        traceback.print_exception(error)
    print(line, file=sys.stderr)
    logger = logging.getLogger("dsnet")
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.emit(logger.makeRecord("dsnet", logging.ERROR, __file__, 0, line, None, None))


def _add_run_arguments(p: argparse.ArgumentParser, example: str) -> None:
    """The command-line shape shared by ``dsnet train`` and ``dsnet pretrain``."""
    p.add_argument(
        "config",
        nargs="?",
        help=f"YAML config, e.g. {example} (omit it with --resume WORK_DIR)",
    )
    p.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. optim.lr=0.005")
    p.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        metavar="WORK_DIR_OR_CHECKPOINT",
        help="continue a run: from a work dir (its config.yaml and last.pth), a checkpoint, or, without a "
        "value, the config's work dir",
    )
    p.add_argument("--overwrite", action="store_true", help="start afresh in a work dir that holds another run's files")
    p.add_argument("--work-dir", metavar="DIR", help="output folder (default: runs/<config name>)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")


def cmd_weights(args: argparse.Namespace) -> int:
    names = list_weights(args.model)
    if not names:
        print(f"no shipped weights{' for ' + args.model if args.model else ''}")
        return 0
    for name in names:
        weights = get_weights(name)
        try:
            print(weights.summary())
        except WeightsNotFoundError as e:
            print(f"{name}: {weights.model} ({e})")
        print(f"  {weights.path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dsnet", description="DSNet semantic segmentation")
    parser.add_argument("--version", action="version", version=f"dsnet {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p_list = sub.add_parser("list", help="table of the model variants")
    p_list.add_argument("--size", nargs=2, type=int, default=(1024, 2048), metavar=("H", "W"))
    p_list.add_argument("--num-classes", type=int, default=19)
    p_list.add_argument("--ablations", action="store_true", help="the paper's ablation variants instead")
    p_list.add_argument("--markdown", action="store_true", help="with --ablations: a Markdown table")
    p_list.set_defaults(func=cmd_list)

    p_info = sub.add_parser("info", help="parameters and compute of one variant")
    p_info.add_argument("model", help=f"one of {', '.join(list_models(task=None))}")
    p_info.add_argument(
        "--size", nargs=2, type=int, default=None, metavar=("H", "W"), help="default 1024 2048, 224 224"
    )
    p_info.add_argument("--num-classes", type=int, default=None, help="default 19 (ImageNet classifiers 1000)")
    p_info.add_argument("--json", action="store_true", help="machine-readable output")
    p_info.set_defaults(func=cmd_info)

    p_weights = sub.add_parser("weights", help="the weights shipped with the package (names for --weights)")
    p_weights.add_argument("--model", default=None, help="only the weights of this model variant")
    p_weights.set_defaults(func=cmd_weights)

    p_train = sub.add_parser(
        "train",
        help="train with a YAML config (torchrun --nproc-per-node N -m dsnet train ... for DDP)",
    )
    _add_run_arguments(p_train, "configs/dsnet-head128_4xb6-120k_cityscapes-1024x1024.yaml")
    p_train.set_defaults(func=cmd_train)

    p_pre = sub.add_parser(
        "pretrain",
        help="ImageNet pre-training of the encoder (same config rules as train; torchrun for DDP)",
    )
    _add_run_arguments(p_pre, "configs/dsnet-imagenet_8xb128-100e_imagenet-224.yaml")
    p_pre.add_argument("--eval-only", action="store_true", help="top-1/top-5 of --weights on the val split")
    p_pre.add_argument(
        "--weights",
        default=None,
        help="classifier weights: the ones --eval-only evaluates, else the ones a new run starts from "
        "(as model.pretrained; e.g. the previous, lower-resolution phase's)",
    )
    p_pre.set_defaults(func=cmd_pretrain)

    add_ablate_parser(sub)

    p_eval = sub.add_parser("eval", help="evaluate weights on a config's validation set (mIoU)")
    p_eval.add_argument("config")
    p_eval.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. eval.flip=true")
    p_eval.add_argument("--weights", required=True, help="checkpoint: ours or the authors' (any layout)")
    p_eval.add_argument("--split", default=None, help="dataset split (default: data.val_split)")
    p_eval.add_argument(
        "-o",
        "--out",
        default=None,
        metavar="FILE",
        help="results file, .json, with its per-class IoU plot beside it as .png (default: WORK_DIR/eval_<split>.json)",
    )
    p_eval.add_argument("--overwrite", action="store_true", help="replace existing result files (refused otherwise)")
    p_eval.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p_eval.set_defaults(func=cmd_eval)

    add_deploy_commands(sub)
    add_serve_command(sub)
    add_analysis_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # overrides (key=value) may come before or after options: collect the leftovers
    args, extra = parser.parse_known_args(argv)
    if extra:
        if hasattr(args, "overrides") and all("=" in x and not x.startswith("-") for x in extra):
            args.overrides = list(args.overrides) + extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.new_outputs = NewOutputs()
    code = 1
    try:
        with logging_scope():  # the command's handlers and log file end with it
            try:
                check_device(getattr(args, "device", None))  # every command that takes them, before any work
                check_threads(getattr(args, "threads", None))
                code = int(args.func(args))
            except (DSNetError, OSError, ValueError, TypeError) as e:
                _report_error(args.command, e, args.debug)
                code = 2
            except KeyboardInterrupt:
                print(f"dsnet {args.command}: interrupted", file=sys.stderr)
                code = 130
    finally:
        if code != 0 and _is_main_process():  # a failed command leaves no empty output folder behind
            # an input error (exit 2) was said on stderr in one line: a log holding only it is no result either
            args.new_outputs.remove_unused((*DISPOSABLE_FILES, TRAIN_LOG) if code == 2 else DISPOSABLE_FILES)
    return code


if __name__ == "__main__":
    sys.exit(main())
