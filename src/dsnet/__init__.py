"""dsnet: DSNet real-time semantic segmentation (models, training, evaluation, deployment)."""

from . import deploy
from .analysis import count_parameters, profile
from .data.label_space import LabelSpace
from .errors import (
    CheckpointError,
    CheckpointMismatchError,
    ConfigError,
    DataError,
    DSNetError,
    OutputError,
    WorkDirError,
)
from .inference import InferenceOptions, predict_labels, predict_probs
from .models import (
    DSNet,
    DSNetArch,
    DSNetOutput,
    create_model,
    get_model_info,
    get_weights,
    list_ablations,
    list_models,
    list_weights,
    load_weights,
    save_authors_checkpoint,
    save_weights,
    to_authors_state_dict,
)
from .predict import Prediction, Predictor

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "CheckpointMismatchError",
    "ConfigError",
    "DataError",
    "DSNetError",
    "InferenceOptions",
    "LabelSpace",
    "OutputError",
    "WorkDirError",
    "deploy",
    "predict_labels",
    "predict_probs",
    "Prediction",
    "Predictor",
    "DSNet",
    "DSNetArch",
    "DSNetOutput",
    "count_parameters",
    "create_model",
    "get_model_info",
    "list_ablations",
    "list_models",
    "list_weights",
    "get_weights",
    "load_weights",
    "profile",
    "save_authors_checkpoint",
    "save_weights",
    "to_authors_state_dict",
    "__version__",
]
