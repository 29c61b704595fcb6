"""DSNet models: blocks, the network, the registered variants, the registry and checkpoint handling."""

from ..errors import CheckpointError, CheckpointMismatchError
from .blocks import MFACB, MSAF, SPASPP, AuxiliaryHead, BasicBlock, Bottleneck, ConvBNReLU, SegmentationHead
from .checkpoint import (
    LoadReport,
    checkpoint_num_classes,
    load_weights,
    normalize_state_dict,
    read_checkpoint,
    save_authors_checkpoint,
    save_weights,
    to_authors_state_dict,
)
from .classifier import ENCODER_MODULES, ClassifierHead, DSNetClassifier
from .dsnet import AUX_HEAD_PREFIXES, CLASSIFIER_PREFIXES, DECODER_PREFIXES, DSNet, DSNetArch, DSNetOutput
from .factory import create_model
from .registry import ModelInfo, PaperResult, get_model_info, list_models, register_model

__all__ = [
    "AUX_HEAD_PREFIXES",
    "CLASSIFIER_PREFIXES",
    "DECODER_PREFIXES",
    "MFACB",
    "MSAF",
    "SPASPP",
    "AuxiliaryHead",
    "BasicBlock",
    "Bottleneck",
    "ConvBNReLU",
    "SegmentationHead",
    "DSNet",
    "DSNetClassifier",
    "ClassifierHead",
    "ENCODER_MODULES",
    "DSNetArch",
    "DSNetOutput",
    "ModelInfo",
    "PaperResult",
    "checkpoint_num_classes",
    "create_model",
    "get_model_info",
    "list_models",
    "register_model",
    "CheckpointError",
    "CheckpointMismatchError",
    "LoadReport",
    "load_weights",
    "normalize_state_dict",
    "read_checkpoint",
    "save_authors_checkpoint",
    "save_weights",
    "to_authors_state_dict",
]
