"""Inference on files and arrays: :class:`Predictor` (images in, label maps out), input discovery,
output writing and the file-to-folder run behind ``dsnet predict``.

Modules: ``resolve`` (weights, model, label space and the runner :func:`dsnet.deploy.build_runner` makes for
the backend and precision asked), ``weights_labels`` (the label space a set of weights describes in its metadata),
``sources`` (reading inputs, finding files), ``predictor``, ``writers`` (PNGs and videos), ``pipeline``
(background reading and writing threads), ``run`` (many files into one folder), ``resume`` (what a killed
run already wrote), ``shard`` (a collection split over torchrun's processes, their lock and barriers).
"""

from ..data.label_space import LabelSpace
from .predictor import LARGE_IMAGE_PIXELS, Prediction, Predictor
from .resolve import ResolvedModel, resolve_model
from .resume import ResumePlan, plan_resume
from .run import RunSummary, describe, predict_files
from .shard import Shard, shard_from_env, sharded_output_dir, take_shard
from .sources import InputFile, discover_inputs, read_video, to_rgb
from .weights_labels import known_label_spaces, label_space, label_space_from_metadata, read_weights_source
from .writers import LABEL_IDS, OutputWriter, blend, check_output_dir, locked_output_dir, rank_lock_name

__all__ = [
    "LABEL_IDS",
    "LARGE_IMAGE_PIXELS",
    "InputFile",
    "LabelSpace",
    "OutputWriter",
    "Prediction",
    "Predictor",
    "ResolvedModel",
    "ResumePlan",
    "Shard",
    "RunSummary",
    "blend",
    "check_output_dir",
    "describe",
    "discover_inputs",
    "known_label_spaces",
    "label_space",
    "label_space_from_metadata",
    "locked_output_dir",
    "rank_lock_name",
    "plan_resume",
    "predict_files",
    "read_video",
    "read_weights_source",
    "resolve_model",
    "shard_from_env",
    "sharded_output_dir",
    "take_shard",
    "to_rgb",
]
