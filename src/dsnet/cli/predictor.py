"""The :class:`~dsnet.predict.Predictor` of the flags ``dsnet predict`` and ``dsnet serve`` share."""

from __future__ import annotations

import argparse

from ..data.calibration import CalibrationSet
from ..deploy import export_format
from ..errors import ConfigError
from ..inference import InferenceOptions
from ..models import get_model_info
from ..predict import Predictor
from . import flags

__all__ = ["predictor_from_args"]


def _calibration(args: argparse.Namespace, precision: str) -> CalibrationSet | None:
    """``--calib``'s images (``--precision int8`` only), normalised as the model expects."""
    if not args.calib:
        return None
    if precision != "int8":
        raise ConfigError(f"--calib {args.calib}: calibration images are for --precision int8 only")
    info = get_model_info(args.model)
    return CalibrationSet(args.calib, None, count=args.calib_count, mean=info.mean, std=info.std)


def _say_what_runs(args: argparse.Namespace, predictor: Predictor) -> None:
    """The backend and precision line, and a note when the weights name no dataset."""
    reason = predictor.precision_reason
    if args.precision is None and reason == "asked for":  # nothing was asked: say where it comes from
        reason = "the default; --precision auto picks bf16 where the CPU computes it natively"
    print(f"dsnet {args.command}: {predictor.backend} backend, {predictor.precision} ({reason})")
    if predictor.label_space.names_generated:
        last = predictor.label_space.num_classes - 1
        print(
            f"dsnet {args.command}: the weights name no dataset: classes class_0..class_{last} with generated "
            "colours (--dataset NAME gives a dataset's names and colours)"
        )


def predictor_from_args(args: argparse.Namespace, options: InferenceOptions | None = None) -> Predictor:
    """The Predictor of the flags ``predict`` and ``serve`` share (weights, backend, device, threads,
    precision, calibration, dataset, class count, batch size), and the precision line printed.
    Torch's own thread count is set by the command line before the command runs."""
    runtime = args.backend not in (None, "torch") or export_format(args.weights) is not None
    precision = args.precision or flags.PREDICT_PRECISION
    calibration = _calibration(args, precision)
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
    _say_what_runs(args, predictor)
    return predictor
