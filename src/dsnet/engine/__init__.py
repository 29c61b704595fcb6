"""Training / evaluation engine: losses and metrics."""

from .losses import CITYSCAPES_CLASS_WEIGHTS, CrossEntropy, DSNetLoss, LossOutput, OhemCrossEntropy, check_labels
from .metrics import ConfusionMatrix, SegMetrics, format_table

__all__ = [
    "CITYSCAPES_CLASS_WEIGHTS",
    "ConfusionMatrix",
    "CrossEntropy",
    "DSNetLoss",
    "LossOutput",
    "OhemCrossEntropy",
    "SegMetrics",
    "check_labels",
    "format_table",
]
