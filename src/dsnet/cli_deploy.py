"""The deployment part of the ``dsnet`` command: ``predict``, ``export`` (INT8 included) and ``bench``.

Kept beside ``cli.py`` (which registers it) so the main command file stays small; like it, it only
parses, calls the library and prints.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from .bench import format_report, list_variants, run_bench
from .data.calibration import CalibrationSet
from .deploy import BACKENDS, PRESETS, export, export_format, output_files, quantize_openvino
from .engine.run_files import write_json
from .errors import ConfigError
from .fileio import LOCK_FILE, check_output_dir, check_output_files
from .hardware import PRECISION_CHOICES
from .inference import InferenceOptions
from .models import check_num_classes, create_model, get_model_info, list_models
from .predict import (
    InputFile,
    OutputWriter,
    Predictor,
    describe,
    discover_inputs,
    locked_output_dir,
    predict_files,
    rank_lock_name,
    read_weights_source,
)
from .predict.shard import Shard, shard_from_env, shard_group, take_shard

__all__ = ["add_deploy_commands", "add_precision_arguments", "predictor_from_args"]

#: ``dsnet predict``'s precision when none is asked for
PREDICT_PRECISION = "fp32"


def cmd_predict(args: argparse.Namespace) -> int:
    shard = shard_from_env()  # torchrun: this process's share of the inputs
    inputs = take_shard(discover_inputs(args.inputs, exclude=args.out), shard)
    args.new_outputs.watch(args.out)  # a folder this run creates goes again if it fails
    lock = LOCK_FILE if not shard.distributed else rank_lock_name(shard.rank)
    with shard_group(shard) as barrier, locked_output_dir(args.out, lock):  # refused before any work
        return _predict_into_locked_folder(args, inputs, shard, barrier)


def predictor_from_args(args: argparse.Namespace, options: InferenceOptions | None = None) -> Predictor:
    """The Predictor of the flags ``predict`` and ``serve`` share (weights, backend, device, threads,
    precision, calibration, dataset, class count, batch size), and the precision line printed."""
    if args.threads:
        torch.set_num_threads(args.threads)  # torch runs the model or, with a runtime, the pre/post-processing
    runtime = args.backend not in (None, "torch") or export_format(args.weights) is not None
    calibration = None
    precision = args.precision or PREDICT_PRECISION
    if args.calib:
        if precision != "int8":
            raise ConfigError(f"--calib {args.calib}: calibration images are for --precision int8 only")
        info = get_model_info(args.model)
        calibration = CalibrationSet(args.calib, None, count=args.calib_count, mean=info.mean, std=info.std)
    crop = tuple(getattr(args, "slide_crop", (1024, 1024)))
    predictor = Predictor(
        args.model,
        weights=args.weights,
        device=args.device,
        num_classes=args.num_classes,
        dataset=args.dataset,
        options=options,
        batch_size=args.batch_size,
        slide_crop=crop,
        backend=args.backend,
        threads=args.threads if runtime else None,
        precision=precision,
        calibration=calibration,
    )
    reason = predictor.precision_reason
    if args.precision is None and reason == "asked for":  # nothing was asked: say where it comes from
        reason = "the default; --precision auto picks bf16 where the CPU computes it natively"
    print(f"dsnet {args.command}: {predictor.backend} backend, {predictor.precision} ({reason})")
    if predictor.labels.names_generated:
        last = predictor.labels.num_classes - 1
        print(
            f"dsnet {args.command}: the weights name no dataset: classes class_0..class_{last} with generated "
            "colours (--dataset NAME gives a dataset's names and colours)"
        )
    return predictor


def _predict_into_locked_folder(
    args: argparse.Namespace, inputs: list[InputFile], shard: Shard, barrier: Callable[[], None]
) -> int:
    out_dir = check_output_dir(args.out, args.overwrite or args.resume)
    barrier()  # every shard has checked the folder before any writes into it
    crop = tuple(args.slide_crop)
    predictor = predictor_from_args(args, InferenceOptions(mode="slide", crop=crop) if args.slide else None)
    writer = OutputWriter(
        out_dir,
        predictor.labels,
        color=args.color,
        overlay=args.overlay,
        alpha=args.alpha,
        label_ids=args.label_ids,
        video_labels=args.video_labels,
    )
    done = [i for i in inputs if args.resume and writer.complete(i.rel, i.is_video, i.path.suffix)]
    todo = [i for i in inputs if i not in done]
    summary = predict_files(predictor, todo, writer)
    who = f" ({shard.describe()}: {len(inputs)} of the inputs)" if shard.distributed else ""
    kept = f"; {len(done)} already complete, left as they were (--resume)" if done else ""
    print(describe(summary, out_dir) + who + kept)
    barrier()
    for message in summary.skipped:
        print(f"dsnet predict: skipped {message}", file=sys.stderr)
    return 1 if summary.skipped else 0


def cmd_export(args: argparse.Namespace) -> int:
    files = output_files(args.out, args.format, args.overwrite)  # format, suffix, existing files: before any work
    args.new_outputs.watch(args.out, file=True)
    check_output_files(files, args.overwrite)
    if args.int8 or args.calib:
        return _export_int8(args)
    model, metadata = _weights_model(args)
    result = export(
        model,
        args.format,
        tuple(args.size),
        out=args.out,
        dynamic=args.dynamic,
        overwrite=args.overwrite,
        check=not args.no_check,
        name=get_model_info(args.model).name,
        metadata=metadata,
    )
    shape = _input_shape(result.dynamic, model.in_channels, result.size)
    print(f"{args.model} -> {result.format}: {', '.join(map(str, result.files))} ({shape})")
    print(f"  {result.folded_bn} BatchNorms folded into their convolutions, auxiliary heads dropped")
    for size, error in result.parity.items():
        print(f"  max |exported - PyTorch float64| / max |PyTorch| at {size}: {error:.2e}")
    return 0


def _weights_model(args: argparse.Namespace) -> tuple[torch.nn.Module, dict[str, str]]:
    """The model of ``--weights`` with their class count (``--num-classes`` may only repeat it), and the
    weights' metadata (its label space goes into the export); the file is read once."""
    source = read_weights_source(args.weights)
    num_classes = check_num_classes(source.num_classes, args.num_classes, args.weights)
    model = create_model(args.model, num_classes=num_classes, weights=source.weights, fine_tuning=False)
    return model, source.metadata


def _input_shape(dynamic: bool, channels: int, size: tuple[int, int]) -> str:
    return "dynamic batch and H, W (multiples of 8)" if dynamic else f"input 1x{channels}x{size[0]}x{size[1]}"


def _export_int8(args: argparse.Namespace) -> int:
    if args.format != "openvino" or not args.int8 or not args.calib:
        raise ConfigError("INT8 export: use --format openvino --int8 --calib DATA (training images to calibrate on)")
    info = get_model_info(args.model)
    size = (args.size[0], args.size[1])
    calibration = CalibrationSet(args.calib, size, count=args.calib_count, mean=info.mean, std=info.std)
    model, metadata = _weights_model(args)
    print(f"calibrating on {len(calibration)} images of {args.calib} at {size[0]}x{size[1]}")
    result = quantize_openvino(
        model,
        calibration,
        size,
        out=args.out,
        dynamic=args.dynamic,
        preset=args.int8_preset,
        ignored_types=[t for t in args.int8_ignore_types.split(",") if t],
        overwrite=args.overwrite,
        check_images=0 if args.no_check else 8,
        name=info.name,
        metadata=metadata,
    )
    shape = _input_shape(result.dynamic, model.in_channels, size)
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


def cmd_bench(args: argparse.Namespace) -> int:
    if args.out:
        if Path(args.out).suffix != ".json":
            raise ConfigError(f"-o {args.out}: bench writes its report as a .json file; name it so")
        args.new_outputs.watch(args.out, file=True)
        check_output_files([args.out], args.overwrite)  # before the benchmark, not after it
    if args.threads:
        torch.set_num_threads(args.threads)
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


def add_precision_arguments(p: argparse.ArgumentParser) -> None:
    """``--precision`` and INT8's calibration options, worded alike wherever a trained model runs."""
    p.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default=None,
        help="auto: bf16 where the CPU/GPU computes it natively (torch, openvino), else fp32; int8: openvino, "
        f"an INT8 export or --calib (default: {PREDICT_PRECISION})",
    )
    p.add_argument("--calib", metavar="DATA", help="--precision int8: images to calibrate on (folder, glob, .txt)")
    p.add_argument("--calib-count", type=int, default=300, help="--calib: images to use (random subset; default 300)")


def add_deploy_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``predict``, ``bench`` and ``export`` on the ``dsnet`` sub-command parser."""
    p_pred = sub.add_parser(
        "predict",
        help="segment images, folders (recursively), globs or videos into label/colour/overlay files",
        description="Outputs go to OUT/labels, OUT/color and OUT/overlay, named by the inputs' paths relative "
        "to the folder that holds them all. Unreadable inputs are skipped, listed at the end, and make the exit "
        "status 1; a missing path or an empty glob stops before any work.",
    )
    p_pred.add_argument("model", help=f"one of {', '.join(list_models())}")
    p_pred.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders, globs or video files")
    p_pred.add_argument(
        "--weights",
        required=True,
        help="checkpoint (its metadata names the classes), or a file made by dsnet export (.onnx, OpenVINO .xml)",
    )
    p_pred.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help="runtime (default: torch; an exported file: its own); a checkpoint is exported once for "
        "onnxruntime/openvino (needs the [deploy] extra)",
    )
    p_pred.add_argument("--threads", type=int, default=None, help="CPU threads of torch and of the runtime")
    add_precision_arguments(p_pred)
    p_pred.add_argument(
        "-o", "--out", required=True, metavar="DIR", help="output folder (one that holds files needs --overwrite)"
    )
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
    p_pred.add_argument(
        "--num-classes", type=int, default=None, help="default: the weights' (must agree with them if given)"
    )
    p_pred.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p_pred.add_argument("--batch-size", type=int, default=4, help="images of one size per forward pass")
    p_pred.add_argument("--slide", action="store_true", help="sliding-window inference for every image")
    p_pred.add_argument("--slide-crop", nargs=2, type=int, default=(1024, 1024), metavar=("H", "W"), help="window size")
    p_pred.add_argument("--overwrite", action="store_true", help="write into an output folder that holds files")
    p_pred.add_argument(
        "--resume",
        action="store_true",
        help="skip inputs whose outputs are all there (a killed run, or more inputs); implies writing into the folder",
    )
    p_pred.set_defaults(func=cmd_predict)
    p_bench = sub.add_parser("bench", help="speed of a model on several backends, interleaved in one process")
    p_bench.add_argument("model")
    p_bench.add_argument("--size", nargs=2, type=int, default=(1024, 2048), metavar=("H", "W"))
    p_bench.add_argument("--backends", default="eager", help=f"comma-separated, from: {','.join(list_variants())}")
    p_bench.add_argument(
        "--precision",
        default="fp32",
        help="comma-separated: fp32, bf16, fp16 (GPU), auto (what predict --precision auto runs per backend); "
        "INT8 is the openvino-int8 backend",
    )
    p_bench.add_argument("--protocol", choices=("paper", "e2e"), default="paper")
    p_bench.add_argument(
        "--weights", default=None, help="time a trained checkpoint (default: random weights); sets the class count"
    )
    p_bench.add_argument("--num-classes", type=int, default=None, help="without --weights (default 19)")
    p_bench.add_argument("--batch-size", type=int, default=1)
    p_bench.add_argument(
        "--seconds",
        type=float,
        default=6.0,
        help="timed seconds per row, each (backend, precision): its warm-up gets half as much again; a "
        "row slower than this is timed once (default 6)",
    )
    p_bench.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p_bench.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p_bench.add_argument("--json", action="store_true", help="print the rows as JSON instead of the table")
    p_bench.add_argument(
        "-o", "--out", default=None, metavar="FILE", help="also write the whole report to this .json file"
    )
    p_bench.add_argument("--overwrite", action="store_true", help="replace an existing --out file (refused otherwise)")
    p_bench.set_defaults(func=cmd_bench)
    p_export = sub.add_parser("export", help="export for deployment (BN folded, no aux heads): onnx, openvino, torch")
    p_export.add_argument("model", help=f"one of {', '.join(list_models())}")
    p_export.add_argument("--weights", required=True, help="checkpoint: ours or the authors' (any layout)")
    p_export.add_argument("--format", required=True, choices=["onnx", "openvino", "torch", "tensorrt"])
    p_export.add_argument("--size", nargs=2, type=int, required=True, metavar=("H", "W"), help="example input size")
    p_export.add_argument("--dynamic", action="store_true", help="batch, H and W free at run time")
    p_export.add_argument(
        "--num-classes", type=int, default=None, help="default: the weights' (must agree with them if given)"
    )
    p_export.add_argument(
        "-o", "--out", "--output", dest="out", required=True, metavar="FILE", help="file: .onnx, .xml (+ .bin) or .pt2"
    )
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
