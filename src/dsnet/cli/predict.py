"""``dsnet predict``: segment images, folders, globs and videos into label, colour and overlay files.

Under torchrun each rank predicts its shard of the inputs (:mod:`dsnet.predict.shard`); ``--resume``
leaves complete outputs as they are (:mod:`dsnet.predict.resume`). This module parses, calls and prints.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import ConfigError
from ..inference import InferenceOptions
from ..predict import OutputWriter, describe, discover_inputs, predict_files
from ..predict.live import LiveRun, LiveSource, parse_live_source, predict_live
from ..predict.resume import plan_resume
from ..predict.shard import shard_from_env, sharded_output_dir, take_shard
from . import flags
from .predictor import predictor_from_args

__all__ = ["add_predict_command"]


def _live_sources(args: argparse.Namespace, distributed: bool) -> tuple[list[LiveSource], list[str]]:
    """The live sources among the inputs (cameras, stream URLs), and the other inputs."""
    live = [source for source in map(parse_live_source, args.inputs) if source is not None]
    files = [arg for arg in args.inputs if parse_live_source(arg) is None]
    if live and distributed:
        raise ConfigError(f"{live[0].spec}: a live source runs in one process, not under torchrun")
    if live and not (args.color or args.overlay or args.video_labels):
        raise ConfigError(f"{live[0].spec}: a live source needs --color, --overlay or --video-labels to write anything")
    return live, files


def _live_line(run: LiveRun) -> str:
    rate = f" ({run.frames / run.seconds:.2f} frames/s)" if run.seconds > 0 and run.frames else ""
    how = "stopped by Ctrl-C" if run.interrupted else "the source ended"
    written = ", ".join(str(p) for p in run.outputs) or "nothing"
    return f"live {run.source}: {run.frames} frames in {run.seconds:.1f} s{rate}, {how}; written: {written}"


def cmd_predict(args: argparse.Namespace) -> int:
    shard = shard_from_env()  # torchrun: this process's share of the inputs
    live, files = _live_sources(args, shard.distributed)
    inputs = take_shard(discover_inputs(files, exclude=args.out), shard) if files else []
    args.new_outputs.watch(args.out)  # a folder this run creates goes again if it fails
    with sharded_output_dir(args.out, shard, args.overwrite or args.resume) as out_dir:  # refused before any work
        options = InferenceOptions(mode="slide", crop=tuple(args.slide_crop)) if args.slide else None
        predictor = predictor_from_args(args, options)
        writer = OutputWriter(
            out_dir,
            predictor.label_space,
            color=args.color,
            overlay=args.overlay,
            alpha=args.alpha,
            label_ids=args.label_ids,
            video_labels=args.video_labels,
        )
        plan = plan_resume(inputs, writer, args.resume)
        summary = predict_files(predictor, plan.todo, writer)
        who = f" ({shard.describe()}: {len(inputs)} of the inputs)" if shard.distributed else ""
        kept = f"; {len(plan.done)} already complete, left as they were (--resume)" if plan.done else ""
        if files:
            print(describe(summary, out_dir) + who + kept)
        for source in live:
            print(_live_line(predict_live(predictor, source, writer, args.max_frames)))
    for message in summary.skipped:
        print(f"dsnet predict: skipped {message}", file=sys.stderr)
    return 1 if summary.skipped else 0


def _add_output_arguments(p: argparse.ArgumentParser) -> None:
    """What ``predict`` writes: the folder and the kinds of file in it."""
    flags.add_out(p, "output folder (one that holds files needs --overwrite)", metavar="DIR", required=True)
    p.add_argument("--color", action="store_true", help="also write colour images (videos: a colour video)")
    p.add_argument("--overlay", action="store_true", help="also write image + colour blends (videos too)")
    p.add_argument("--alpha", type=float, default=0.5, help="weight of the colours in overlays (default 0.5)")
    p.add_argument(
        "--label-ids",
        choices=("train", "dataset"),
        default="train",
        help="ids in label PNGs: training ids, or the dataset's own (e.g. Cityscapes labelIds for its server)",
    )
    p.add_argument("--video-labels", action="store_true", help="also write a label PNG per video frame")
    p.add_argument("--max-frames", type=int, default=None, help="a live source: stop after this many frames")


def add_predict_command(sub: argparse._SubParsersAction) -> None:
    """Register ``predict`` on the ``dsnet`` sub-command parser."""
    p = sub.add_parser(
        "predict",
        help="segment images, folders (recursively), globs or videos into label/colour/overlay files",
        description="Outputs go to OUT/labels, OUT/color and OUT/overlay, named by the inputs' paths relative "
        "to the folder that holds them all. Unreadable inputs are skipped, listed at the end, and make the exit "
        "status 1; a missing path or an empty glob stops before any work.",
    )
    flags.add_model(p)
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="image files, folders, globs or video files; or a live source: camera:N, or a stream URL OpenCV "
        "opens (rtsp://, http:// ...), run until it ends, --max-frames or Ctrl-C (what was written stays playable)",
    )
    flags.add_weights(
        p,
        "checkpoint (its metadata names the classes), or a file made by dsnet export (.onnx, OpenVINO .xml)",
        required=True,
    )
    flags.add_backend(
        p,
        "runtime (default: torch; an exported file: its own); a checkpoint is exported once for "
        "onnxruntime/openvino (needs the [deploy] extra)",
    )
    flags.add_threads(p, flags.RUNTIME_THREADS_HELP)
    flags.add_predictor_precision(p)
    _add_output_arguments(p)
    flags.add_dataset(p)
    flags.add_num_classes(p, help="default: the weights' (must agree with them if given)")
    flags.add_device(p)
    flags.add_batch_size(p, 4, "images of one size per forward pass")
    p.add_argument("--slide", action="store_true", help="sliding-window inference for every image")
    p.add_argument("--slide-crop", nargs=2, type=int, default=(1024, 1024), metavar=("H", "W"), help="window size")
    flags.add_overwrite(p, "write into an output folder that holds files")
    flags.add_resume(
        p, "skip inputs whose outputs are all there (a killed run, or more inputs); implies writing into the folder"
    )
    p.set_defaults(func=cmd_predict)
