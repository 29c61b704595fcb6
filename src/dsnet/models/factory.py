"""``create_model``: a registered variant, built and optionally loaded with weights."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import ConfigError
from . import ablations as _ablations  # noqa: F401  (registers the ablation variants)
from . import classifier_variants as _classifier_variants  # noqa: F401  (registers the ImageNet classifiers)
from . import variants as _variants  # noqa: F401  (registers the variants)
from .load_policy import load_weights
from .pretrained import get_weights, list_weights
from .registry import get_model_constructor, get_model_info, resolve_model_name

__all__ = ["create_model", "weights_part"]


def weights_part(name: str) -> str:
    """How weights load into ``name``: ``"compatible"`` for an ablation variant (the base network's
    checkpoints fill every module the two share), else ``"auto"`` (strict)."""
    return "compatible" if get_model_info(name).ablation is not None else "auto"


def create_model(
    name: str,
    num_classes: int | None = None,
    weights: str | Path | Mapping[str, Any] | None = None,
    *,
    reset_classifier: bool = False,
    fine_tuning: bool = True,
    **overrides: Any,
) -> nn.Module:
    """Build a registered model, optionally loading weights.

    Args:
        name: a name from :func:`dsnet.list_models` (``'dsnet_head128'`` ...).
        num_classes: output classes (19 Cityscapes/BDD100K, 150 ADE20K, 11 CamVid, 1000 ImageNet);
            default: the variant's (19 for the segmentation networks, 1000 for the classifiers).
        weights: a checkpoint path (``.pth``/``.pt``/``.pth.tar``/``.safetensors``), the name of weights
            shipped with the package (:func:`dsnet.list_weights`, e.g. ``"camvid-cpu60min"``; the class
            count then comes from them) or an in-memory state dict, in the authors' layout or ours; see
            :func:`dsnet.load_weights`.
        reset_classifier: load ``weights`` trained for another number of classes, keeping the
            classifier layers at their initialisation (fine-tuning); see :func:`dsnet.load_weights`.
            An ablation variant loads the keys it shares with the weights (:func:`weights_part`).
        fine_tuning: False where the caller cannot fine-tune (inference, export): a class-count mismatch
            then does not suggest ``reset_classifier`` (see :func:`dsnet.load_weights`).
        **overrides: architecture fields of ``DSNetArch`` or ``aux_heads`` / ``in_channels``.
    """
    if isinstance(weights, str) and weights in list_weights() and not Path(weights).exists():
        shipped = get_weights(weights)
        if resolve_model_name(name) != shipped.model:
            raise ConfigError(f"weights {weights!r} are {shipped.model}'s, not {name}'s")
        num_classes = shipped.num_classes if num_classes is None else num_classes
    if num_classes is None:
        num_classes = get_model_info(name).default_num_classes
    model = get_model_constructor(name)(num_classes=num_classes, **overrides)
    if weights is not None:
        load_weights(  # type: ignore[arg-type]
            model, weights, part=weights_part(name), reset_classifier=reset_classifier, fine_tuning=fine_tuning
        )
    return model
