"""ImageNet pre-training of the DSNet encoder (``dsnet pretrain``), on the segmentation engine's parts."""

from .config import PretrainConfig, validate_pretrain_config
from .evaluate import ClsMetrics, evaluate_classifier, topk_correct
from .run import evaluate_pretrain_weights, load_pretrain_config
from .trainer import PretrainTrainer, pretrain

__all__ = [
    "ClsMetrics",
    "PretrainConfig",
    "PretrainTrainer",
    "evaluate_classifier",
    "evaluate_pretrain_weights",
    "load_pretrain_config",
    "pretrain",
    "topk_correct",
    "validate_pretrain_config",
]
