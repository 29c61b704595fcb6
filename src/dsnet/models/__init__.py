"""DSNet models: blocks, the network, the registry and checkpoint handling."""

from .blocks import MFACB, MSAF, SPASPP, AuxiliaryHead, BasicBlock, Bottleneck, ConvBNReLU, SegmentationHead
from .checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    LoadReport,
    load_weights,
    normalize_state_dict,
    read_checkpoint,
    save_authors_checkpoint,
    save_weights,
    to_authors_state_dict,
)
from .dsnet import DSNet, DSNetArch, DSNetOutput
from .registry import ModelInfo, PaperResult, create_model, get_model_info, list_models, register_model

__all__ = [
    "MFACB",
    "MSAF",
    "SPASPP",
    "AuxiliaryHead",
    "BasicBlock",
    "Bottleneck",
    "ConvBNReLU",
    "SegmentationHead",
    "DSNet",
    "DSNetArch",
    "DSNetOutput",
    "ModelInfo",
    "PaperResult",
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
