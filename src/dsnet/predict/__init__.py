"""Inference on files and arrays: :class:`Predictor` (images in, label maps out), input discovery,
output writing and the file-to-folder run behind ``dsnet predict``.

Modules: ``backends`` (torch, and the interface other runtimes plug into), ``labelspace`` (class
names, colours, dataset ids, weights metadata), ``sources`` (reading inputs, finding files),
``predictor``, ``writers`` (PNGs and videos), ``run`` (many files into one folder).
"""

from .backends import AVAILABLE_BACKENDS, LogitsFn, LogitsFnModule
from .labelspace import LabelSpace, known_label_spaces, label_space, read_weights_source
from .predictor import LARGE_IMAGE_PIXELS, Prediction, Predictor
from .run import RunSummary, describe, predict_files
from .sources import InputFile, discover_inputs, read_video, to_rgb
from .writers import LABEL_IDS, OutputWriter, blend, check_output_dir

__all__ = [
    "AVAILABLE_BACKENDS",
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
    "known_label_spaces",
    "label_space",
    "predict_files",
    "read_video",
    "read_weights_source",
    "to_rgb",
]
