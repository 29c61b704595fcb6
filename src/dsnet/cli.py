"""The ``dsnet`` command. Thin: parses arguments and calls the Python API."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

import torch

from . import __version__
from .analysis import profile
from .bench import format_report, list_backends, run_bench
from .cli_ablate import add_ablate_parser, cmd_list_ablations
from .cli_analysis import add_analysis_commands
from .data.calibration import CalibrationSet
from .deploy import PRESETS, export, output_files, quantize_openvino
from .engine.config import load_config
from .engine.evaluate_run import evaluate_weights
from .engine.metrics import format_table
from .engine.observe import setup_logging
from .engine.run_files import resolve_work_dir, write_json
from .engine.trainer import TrainingInterrupted, train
from .engine.workdir import load_run_config
from .errors import ConfigError, DSNetError
from .inference import InferenceOptions
from .models import create_model, get_model_info, list_models
from .predict import OutputWriter, Predictor, check_output_dir, describe, discover_inputs, predict_files


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
    model = create_model(args.model, num_classes=args.num_classes)
    p = profile(model, tuple(args.size), by_module=True)
    info = get_model_info(args.model)
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


def cmd_train(args: argparse.Namespace) -> int:
    resume = args.resume
    if args.config is None:
        if resume in (None, "auto"):
            raise ConfigError("give a CONFIG file, or --resume WORK_DIR to continue a run from its saved config")
        cfg = load_run_config(resume, args.overrides)
    else:
        cfg = load_config(args.config, args.overrides)
        if resume not in (None, "auto") and Path(resume).is_dir() and not args.work_dir:
            cfg.train.work_dir = resume
    if args.work_dir:
        cfg.train.work_dir = args.work_dir
    work_dir = resolve_work_dir(cfg)
    _configure_logging(work_dir / "train.log")
    try:
        summary = train(cfg, resume=True if resume == "auto" else resume, overwrite=args.overwrite, device=args.device)
    except TrainingInterrupted as e:
        print(f"dsnet train: {e}. Continue with: dsnet train --resume {e.work_dir}", file=sys.stderr)
        return 128 + e.signum if e.signum else 1
    if summary.get("already_finished"):
        print(f"dsnet train: {work_dir} already finished at iteration {summary['iterations']}; nothing to do")
        print(f"best mIoU {100 * summary['best_miou']:.2f}% at iteration {summary['best_iteration']}")
    elif "final" in summary:
        print(f"best mIoU {100 * summary['best_miou']:.2f}% at iteration {summary['best_iteration']}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    _configure_logging(None)
    result = evaluate_weights(
        cfg, args.weights, split=args.split, out=args.out, device=args.device, progress=cfg.train.progress
    )
    if "outputs" in result:  # the main rank
        metrics = result["metrics"]
        print(format_table(metrics, result["class_names"]))
        print(
            f"images: {metrics.num_images}"
            + (f", {metrics.num_skipped} bad ones dropped" if metrics.num_skipped else "")
        )
        print("written: " + ", ".join(result["outputs"]))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    inputs = discover_inputs(args.inputs, exclude=args.out)
    out_dir = check_output_dir(args.out, args.overwrite)
    crop = tuple(args.slide_crop)
    predictor = Predictor(
        args.model,
        weights=args.weights,
        device=args.device,
        num_classes=args.num_classes,
        dataset=args.dataset,
        options=InferenceOptions(mode="slide", crop=crop) if args.slide else None,
        batch_size=args.batch_size,
        slide_crop=crop,
    )
    writer = OutputWriter(
        out_dir,
        predictor.labels,
        color=args.color,
        overlay=args.overlay,
        alpha=args.alpha,
        label_ids=args.label_ids,
        video_labels=args.video_labels,
    )
    summary = predict_files(predictor, inputs, writer)
    print(describe(summary, out_dir))
    for message in summary.skipped:
        print(f"dsnet predict: skipped {message}", file=sys.stderr)
    return 1 if summary.skipped else 0


def cmd_export(args: argparse.Namespace) -> int:
    output_files(args.output, args.format, args.overwrite)  # format, suffix, existing files: before any work
    if args.int8 or args.calib:
        return _export_int8(args)
    model = create_model(args.model, num_classes=args.num_classes, weights=args.weights)
    result = export(
        model,
        args.format,
        tuple(args.size),
        out=args.output,
        dynamic=args.dynamic,
        overwrite=args.overwrite,
        check=not args.no_check,
    )
    h, w = result.size
    shape = "dynamic batch and H, W (multiples of 8)" if result.dynamic else f"input 1x{model.in_channels}x{h}x{w}"
    print(f"{args.model} -> {result.format}: {', '.join(map(str, result.files))} ({shape})")
    print(f"  {result.folded_bn} BatchNorms folded into their convolutions, auxiliary heads dropped")
    for size, error in result.parity.items():
        print(f"  max |exported - PyTorch float64| / max |PyTorch| at {size}: {error:.2e}")
    return 0


def _export_int8(args: argparse.Namespace) -> int:
    if args.format != "openvino" or not args.int8 or not args.calib:
        raise ConfigError("INT8 export: use --format openvino --int8 --calib DATA (training images to calibrate on)")
    info = get_model_info(args.model)
    size = (args.size[0], args.size[1])
    calibration = CalibrationSet(args.calib, size, count=args.calib_count, mean=info.mean, std=info.std)
    model = create_model(args.model, num_classes=args.num_classes, weights=args.weights)
    print(f"calibrating on {len(calibration)} images of {args.calib} at {size[0]}x{size[1]}")
    result = quantize_openvino(
        model,
        calibration,
        size,
        out=args.output,
        dynamic=args.dynamic,
        preset=args.int8_preset,
        ignored_types=[t for t in args.int8_ignore_types.split(",") if t],
        overwrite=args.overwrite,
        check_images=0 if args.no_check else 8,
    )
    shape = (
        "dynamic batch and H, W (multiples of 8)"
        if result.dynamic
        else f"input 1x{model.in_channels}x{size[0]}x{size[1]}"
    )
    print(f"{args.model} -> openvino int8: {', '.join(map(str, result.files))} ({shape})")
    print(
        f"  {result.fake_quantize_ops} FakeQuantize ops, preset {result.preset}, "
        f"{result.calibration_images} calibration images, {result.seconds:.0f} s"
    )
    if result.checked_images:
        print(
            f"  against eager PyTorch on {result.checked_images} calibration images: "
            f"{100 * result.label_agreement:.2f}% of pixels keep their class, "
            f"max error {result.relative_error:.2e} of the logit scale"
        )
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


def cmd_bench(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    report = run_bench(
        args.model,
        args.size,
        backends=args.backends.split(","),
        precisions=args.precision.split(","),
        protocol=args.protocol,
        num_classes=args.num_classes,
        batch_size=args.batch_size,
        device=args.device or ("cuda" if torch.cuda.is_available() else "cpu"),
        target_seconds=args.seconds,
        progress=None if args.json else (lambda msg: print(f"bench: {msg}", file=sys.stderr)),
    )
    if args.out:
        write_json(Path(args.out), report.to_dict())
    if args.json:
        print(json.dumps(report.to_dict()["rows"], indent=1))
    else:
        print(format_report(report))
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
    p_info.add_argument("model", help=f"one of {', '.join(list_models())}")
    p_info.add_argument("--size", nargs=2, type=int, default=(1024, 2048), metavar=("H", "W"))
    p_info.add_argument("--num-classes", type=int, default=19)
    p_info.add_argument("--json", action="store_true", help="machine-readable output")
    p_info.set_defaults(func=cmd_info)

    p_train = sub.add_parser(
        "train",
        help="train with a YAML config (torchrun --nproc-per-node N -m dsnet train ... for DDP)",
    )
    p_train.add_argument(
        "config",
        nargs="?",
        help="YAML config, e.g. configs/dsnet-head128_4xb6-120k_cityscapes-1024x1024.yaml "
        "(omit it with --resume WORK_DIR)",
    )
    p_train.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. optim.lr=0.005")
    p_train.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        metavar="WORK_DIR_OR_CHECKPOINT",
        help="continue a run: from a work dir (its config.yaml and last.pth), a checkpoint, or, without a "
        "value, the config's work dir",
    )
    p_train.add_argument(
        "--overwrite", action="store_true", help="start afresh in a work dir that holds another run's files"
    )
    p_train.add_argument("--work-dir", help="output folder (default: runs/<config name>)")
    p_train.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p_train.set_defaults(func=cmd_train)

    add_ablate_parser(sub)

    p_eval = sub.add_parser("eval", help="evaluate weights on a config's validation set (mIoU)")
    p_eval.add_argument("config")
    p_eval.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. eval.flip=true")
    p_eval.add_argument("--weights", required=True, help="checkpoint: ours or the authors' (any layout)")
    p_eval.add_argument("--split", default=None, help="dataset split (default: data.val_split)")
    p_eval.add_argument("--out", default=None, help="JSON results file (default: WORK_DIR/eval_<split>.json)")
    p_eval.add_argument("--device", default=None)
    p_eval.set_defaults(func=cmd_eval)

    p_pred = sub.add_parser(
        "predict",
        help="segment images, folders (recursively), globs or videos into label/colour/overlay files",
        description="Outputs go to OUT/labels, OUT/color and OUT/overlay, named by the inputs' paths relative "
        "to the folder that holds them all. Unreadable inputs are skipped, listed at the end, and make the exit "
        "status 1; a missing path or an empty glob stops before any work.",
    )
    p_pred.add_argument("model", help=f"one of {', '.join(list_models())}")
    p_pred.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders, globs or video files")
    p_pred.add_argument("--weights", required=True, help="checkpoint (its metadata names the classes)")
    p_pred.add_argument("-o", "--out", required=True, help="output folder")
    p_pred.add_argument("--color", action="store_true", help="also write colour images (videos: a colour video)")
    p_pred.add_argument("--overlay", action="store_true", help="also write image + colour blends (videos too)")
    p_pred.add_argument("--alpha", type=float, default=0.5, help="weight of the colours in overlays (default 0.5)")
    p_pred.add_argument(
        "--label-ids",
        choices=("train", "dataset"),
        default="train",
        help="ids in label PNGs: training ids, or the dataset's own (e.g. Cityscapes labelIds for its server)",
    )
    p_pred.add_argument("--video-labels", action="store_true", help="also write a label PNG per video frame")
    p_pred.add_argument("--dataset", default=None, help="class names/colours/ids of this dataset (default: metadata)")
    p_pred.add_argument("--num-classes", type=int, default=None, help="for weights without metadata")
    p_pred.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p_pred.add_argument("--batch-size", type=int, default=4, help="images of one size per forward pass")
    p_pred.add_argument("--slide", action="store_true", help="sliding-window inference for every image")
    p_pred.add_argument("--slide-crop", nargs=2, type=int, default=(1024, 1024), metavar=("H", "W"), help="window size")
    p_pred.add_argument("--overwrite", action="store_true", help="write into an output folder that holds files")
    p_pred.set_defaults(func=cmd_predict)
    p_bench = sub.add_parser("bench", help="speed of a model on several backends, interleaved in one process")
    p_bench.add_argument("model")
    p_bench.add_argument("--size", nargs=2, type=int, default=(1024, 2048), metavar=("H", "W"))
    p_bench.add_argument("--backends", default="eager", help=f"comma-separated, from: {','.join(list_backends())}")
    p_bench.add_argument("--precision", default="fp32", help="comma-separated: fp32, fp16 (GPU), bf16")
    p_bench.add_argument("--protocol", choices=("paper", "e2e"), default="paper")
    p_bench.add_argument("--num-classes", type=int, default=19)
    p_bench.add_argument("--batch-size", type=int, default=1)
    p_bench.add_argument("--seconds", type=float, default=6.0, help="timed seconds per backend (default 6)")
    p_bench.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p_bench.add_argument("--device", default=None)
    p_bench.add_argument("--json", action="store_true", help="print the rows as JSON instead of the table")
    p_bench.add_argument("--out", default=None, help="also write the whole report as JSON to this file")
    p_bench.set_defaults(func=cmd_bench)
    p_export = sub.add_parser("export", help="export for deployment (BN folded, no aux heads): onnx, openvino, torch")
    p_export.add_argument("model", help=f"one of {', '.join(list_models())}")
    p_export.add_argument("--weights", required=True, help="checkpoint: ours or the authors' (any layout)")
    p_export.add_argument("--format", required=True, choices=["onnx", "openvino", "torch", "tensorrt"])
    p_export.add_argument("--size", nargs=2, type=int, required=True, metavar=("H", "W"), help="example input size")
    p_export.add_argument("--dynamic", action="store_true", help="batch, H and W free at run time")
    p_export.add_argument("--num-classes", type=int, default=19)
    p_export.add_argument("-o", "--output", required=True, help="file: .onnx, .xml (+ .bin) or .pt2")
    p_export.add_argument("--overwrite", action="store_true", help="replace existing output files (refused otherwise)")
    p_export.add_argument("--no-check", action="store_true", help="skip the parity check with the format's runtime")
    p_export.add_argument("--int8", action="store_true", help="INT8 post-training quantization (openvino, NNCF)")
    p_export.add_argument("--calib", metavar="DATA", help="--int8: training images (folder, glob or .txt list)")
    p_export.add_argument("--calib-count", type=int, default=300, help="--int8: images to calibrate on (random subset)")
    p_export.add_argument("--int8-preset", choices=PRESETS, default="mixed", help="--int8: NNCF preset")
    p_export.add_argument(
        "--int8-ignore-types", default="", metavar="T1,T2", help="--int8: OpenVINO op types kept in float"
    )
    p_export.set_defaults(func=cmd_export)
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
    try:
        return int(args.func(args))
    except (DSNetError, OSError, ValueError, TypeError) as e:
        _report_error(args.command, e, args.debug)
        return 2
    except KeyboardInterrupt:
        print(f"dsnet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
