"""Inference on files and arrays: :class:`Predictor` (images in, label maps out), input discovery,
output writing and the file-to-folder run behind ``dsnet predict``.

Modules: ``backends`` (backend names, and the interface other runtimes plug into), ``runtimes`` (the
module each backend runs: torch's deploy form, ONNX Runtime/OpenVINO on an export), ``weights_labels``
(the label space a set of weights describes in its metadata), ``sources`` (reading inputs, finding files),
``predictor``, ``writers`` (PNGs and videos), ``pipeline`` (background reading and writing threads),
``run`` (many files into one folder).
"""

from ..data.label_space import LabelSpace
from .backends import AVAILABLE_BACKENDS, LogitsFn, LogitsFnModule
from .predictor import LARGE_IMAGE_PIXELS, Prediction, Predictor
from .run import RunSummary, describe, predict_files
from .runtimes import EXPORT_SUFFIXES, export_format
from .sources import InputFile, discover_inputs, read_video, to_rgb
from .weights_labels import known_label_spaces, label_space, label_space_from_metadata, read_weights_source
from .writers import LABEL_IDS, OutputWriter, blend, check_output_dir, locked_output_dir, rank_lock_name

__all__ = [
    "AVAILABLE_BACKENDS",
    "EXPORT_SUFFIXES",
    "LABEL_IDS",
    "LARGE_IMAGE_PIXELS",
    "InputFile",
    "LabelSpace",
    "LogitsFn",
    "LogitsFnModule",
    "OutputWriter",
    "Prediction",
    "Predictor",
    "RunSummary",
    "blend",
    "check_output_dir",
    "describe",
    "discover_inputs",
    "export_format",
    "known_label_spaces",
    "label_space",
    "label_space_from_metadata",
    "locked_output_dir",
    "rank_lock_name",
    "predict_files",
    "read_video",
    "read_weights_source",
    "to_rgb",
]
