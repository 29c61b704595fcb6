"""``dsnet export``: a model for deployment (BatchNorm folded, no auxiliary heads), INT8 included."""

from __future__ import annotations

import argparse

import torch

from ..data.calibration import CalibrationSet
from ..deploy import PRESETS, export, output_files, quantize_openvino
from ..errors import ConfigError
from ..fileio import check_output_files
from ..models import check_num_classes, create_model, get_model_info
from ..predict import read_weights_source
from . import flags

__all__ = ["add_export_command"]


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


def add_export_command(sub: argparse._SubParsersAction) -> None:
    """Register ``export`` on the ``dsnet`` sub-command parser."""
    p = sub.add_parser("export", help="export for deployment (BN folded, no aux heads): onnx, openvino, torch")
    flags.add_model(p)
    flags.add_weights(p, "checkpoint: ours or the authors' (any layout)", required=True)
    p.add_argument("--format", required=True, choices=["onnx", "openvino", "torch", "tensorrt"])
    flags.add_size(p, help="example input size", required=True)
    p.add_argument("--dynamic", action="store_true", help="batch, H and W free at run time")
    flags.add_num_classes(p, help="default: the weights' (must agree with them if given)")
    flags.add_out(p, "file: .onnx, .xml (+ .bin) or .pt2", metavar="FILE", required=True, aliases=("--output",))
    flags.add_overwrite(p, "replace existing output files (refused otherwise)")
    p.add_argument("--no-check", action="store_true", help="skip the parity check with the format's runtime")
    flags.add_threads(p)
    p.add_argument("--int8", action="store_true", help="INT8 post-training quantization (openvino, NNCF)")
    flags.add_calibration(
        p, "--int8: training images (folder, glob or .txt list)", "--int8: images to calibrate on (random subset)"
    )
    p.add_argument("--int8-preset", choices=PRESETS, default="mixed", help="--int8: NNCF preset")
    p.add_argument("--int8-ignore-types", default="", metavar="T1,T2", help="--int8: OpenVINO op types kept in float")
    p.set_defaults(func=cmd_export)
