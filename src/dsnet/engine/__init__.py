"""Training / evaluation engine: config, losses, metrics, inference modes, trainer, evaluator."""

from .config import Config, ConfigError, apply_overrides, load_config
from .evaluator import evaluate
from .inference import predict_logits, slide_logits, whole_logits
from .losses import CITYSCAPES_CLASS_WEIGHTS, CrossEntropy, DSNetLoss, LossOutput, OhemCrossEntropy, check_labels
from .metrics import ConfusionMatrix, SegMetrics, format_table
from .trainer import Trainer, TrainingInterrupted, train

__all__ = [
    "CITYSCAPES_CLASS_WEIGHTS",
    "Config",
    "ConfigError",
    "ConfusionMatrix",
    "CrossEntropy",
    "DSNetLoss",
    "LossOutput",
    "OhemCrossEntropy",
    "SegMetrics",
    "Trainer",
    "TrainingInterrupted",
    "apply_overrides",
    "check_labels",
    "evaluate",
    "format_table",
    "load_config",
    "predict_logits",
    "slide_logits",
    "train",
    "whole_logits",
]
