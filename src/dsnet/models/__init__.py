"""DSNet models: blocks, the network, the registered variants, the registry and weights handling
(``weights_reading``, ``load_policy``, ``weights_writing``, ``authors_layout``)."""

from ..errors import CheckpointError, CheckpointMismatchError
from .ablations import ABLATION_BASE, ablation_name
from .authors_layout import save_authors_checkpoint, to_authors_state_dict
from .blocks import MFACB, MSAF, SPASPP, AuxiliaryHead, BasicBlock, Bottleneck, ConvBNReLU, SegmentationHead
from .classifier import ENCODER_MODULES, ClassifierHead, DSNetClassifier
from .context import ASPP, DAPPM
from .dsnet import AUX_HEAD_PREFIXES, CLASSIFIER_PREFIXES, DECODER_PREFIXES, DSNet, DSNetArch, DSNetOutput
from .factory import create_model, weights_part
from .fusion import AFF, IAFF, AddFusion
from .load_policy import LoadReport, load_weights
from .pretrained import PretrainedWeights, get_weights, list_weights, register_weights, resolve_weights
from .rates import arch_rates, format_rates, parse_rates, with_rates
from .registry import Ablation, ModelInfo, PaperResult, get_model_info, list_ablations, list_models, register_model
from .weights_reading import (
    check_num_classes,
    checkpoint_num_classes,
    normalize_state_dict,
    read_checkpoint,
    weights_num_classes,
)
from .weights_writing import save_weights

__all__ = [
    "PretrainedWeights",
    "get_weights",
    "list_weights",
    "register_weights",
    "resolve_weights",
    "ABLATION_BASE",
    "AFF",
    "ASPP",
    "Ablation",
    "AddFusion",
    "DAPPM",
    "IAFF",
    "ablation_name",
    "arch_rates",
    "format_rates",
    "list_ablations",
    "parse_rates",
    "weights_part",
    "with_rates",
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
    "check_num_classes",
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
    "weights_num_classes",
]
