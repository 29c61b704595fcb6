"""Training / evaluation engine: config, build, losses, metrics, evaluator, trainer, work dirs."""

from .config import Config, ConfigError, apply_overrides, load_config
from .config_checks import validate_config
from .evaluate_run import evaluate_weights
from .evaluator import EvaluationInterrupted, evaluate, evaluate_with_config
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
    "EvaluationInterrupted",
    "LossOutput",
    "OhemCrossEntropy",
    "SegMetrics",
    "Trainer",
    "TrainingInterrupted",
    "apply_overrides",
    "check_labels",
    "evaluate",
    "evaluate_weights",
    "evaluate_with_config",
    "format_table",
    "load_config",
    "train",
    "validate_config",
]
