"""Data layer: datasets (Cityscapes, ADE20K, BDD100K, CamVid, user folders), label decoding, transforms.

Modules: ``io`` (file reading), ``labels`` (decoding, palettes), ``base`` (dataset base class and
image/label pairing), one module per dataset, ``builder`` (registry), ``transforms``, ``workers``.
"""

from ..constants import IMAGENET_MEAN, IMAGENET_STD
from ..errors import DataError
from .ade20k import ADE20K_CLASSES, ADE20K_PALETTE, ADE20KDataset, ade20k_classes
from .base import SegmentationDataset
from .bdd100k import BDD100KDataset
from .builder import DATASET_ALIASES, DATASETS, build_dataset, describe_dataset, list_datasets
from .camvid import CAMVID_CLASSES, CAMVID_PALETTE, CamVidDataset
from .cityscapes import CITYSCAPES_CLASSES, CITYSCAPES_LABEL_TO_TRAIN, CITYSCAPES_PALETTE, CityscapesDataset
from .class_balance import CLASS_BALANCE_METHODS, balanced_class_weights, class_pixel_counts
from .folder import FolderConfig, FolderDataset, load_folder_config
from .io import read_image, read_label
from .label_space import LABEL_SPACE_KEY, LabelSpace
from .labels import ColorCodec, colorize, decode_color_label, decode_index_label, generate_palette, make_lut
from .transforms import EvalTransform, TrainTransform, denormalize, normalize
from .workers import worker_init_fn

__all__ = [
    "CLASS_BALANCE_METHODS",
    "balanced_class_weights",
    "class_pixel_counts",
    "ADE20K_CLASSES",
    "ADE20K_PALETTE",
    "CAMVID_CLASSES",
    "CAMVID_PALETTE",
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_LABEL_TO_TRAIN",
    "CITYSCAPES_PALETTE",
    "DATASETS",
    "DATASET_ALIASES",
    "LABEL_SPACE_KEY",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ADE20KDataset",
    "BDD100KDataset",
    "CamVidDataset",
    "CityscapesDataset",
    "ColorCodec",
    "DataError",
    "LabelSpace",
    "EvalTransform",
    "FolderConfig",
    "FolderDataset",
    "SegmentationDataset",
    "TrainTransform",
    "ade20k_classes",
    "build_dataset",
    "colorize",
    "decode_color_label",
    "decode_index_label",
    "denormalize",
    "describe_dataset",
    "generate_palette",
    "list_datasets",
    "load_folder_config",
    "make_lut",
    "normalize",
    "read_image",
    "read_label",
    "worker_init_fn",
]
