"""Loading normalised weights into a model: which keys must match (full, encoder, compatible), the
fine-tuning rule for the classifier, and the diagnosis when they do not fit.

After the key mapping (:mod:`dsnet.models.weights_reading`) loading is strict: any missing,
unexpected or wrongly shaped key is an error that lists them and says which variant the weights fit.
"""

from __future__ import annotations

import logging
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from ..errors import CheckpointMismatchError
from .dsnet import AUX_HEAD_PREFIXES, CLASSIFIER_PREFIXES, DECODER_PREFIXES
from .pretrained import resolve_weights
from .registry import get_model_constructor, list_models
from .weights_reading import WeightsLike, checkpoint_num_classes, describe_weights, read_state_dict

__all__ = ["LoadPart", "LoadReport", "load_weights"]

logger = logging.getLogger(__name__)

LoadPart = Literal["auto", "full", "encoder", "compatible"]
ShapeMismatch = tuple[str, tuple[int, ...], tuple[int, ...]]


@dataclass
class LoadReport:
    """What :func:`load_weights` did."""

    source: str
    loaded: list[str] = field(default_factory=list)
    left_at_init: list[str] = field(default_factory=list)  # model keys the checkpoint did not cover
    ignored: list[str] = field(default_factory=list)  # checkpoint keys deliberately not used
    kind: str = "full"  # "full", "full-without-aux", "encoder"
    reinitialized: list[str] = field(default_factory=list)  # classifier keys reset for other classes

    def __str__(self) -> str:
        parts = [f"loaded {len(self.loaded)} tensors from {self.source} ({self.kind})"]
        if self.reinitialized:
            parts.append(f"re-initialised for the new classes: {', '.join(self.reinitialized)}")
        if self.left_at_init:
            parts.append(f"left at initialisation: {', '.join(_summarise(self.left_at_init))}")
        if self.ignored:
            parts.append(f"ignored checkpoint keys: {', '.join(_summarise(self.ignored))}")
        return "; ".join(parts)


def _summarise(keys: Iterable[str]) -> list[str]:
    """Group keys by their top-level module: ``['spp.* (29)', ...]``."""
    groups: OrderedDict[str, int] = OrderedDict()
    for k in keys:
        top = k.split(".", 1)[0]
        groups[top] = groups.get(top, 0) + 1
    return [f"{top}.* ({n})" for top, n in groups.items()]


def _format_list(items: list[str], limit: int = 40) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


# --------------------------------------------------------------------------------------------------
# diagnosis: which registered variant the weights fit


def _guess_variant(sd: Mapping[str, Tensor]) -> tuple[str, int] | None:
    """The registered variant and class count whose shapes this state dict fits."""
    num_classes = checkpoint_num_classes(sd) or 19
    for name in list_models():
        with torch.device("meta"):
            ref = get_model_constructor(name)(num_classes=num_classes).state_dict()
        body = {k: v for k, v in sd.items() if not k.startswith(AUX_HEAD_PREFIXES)}
        ref_body = {k: v for k, v in ref.items() if not k.startswith(AUX_HEAD_PREFIXES)}
        if body.keys() == ref_body.keys() and all(body[k].shape == ref_body[k].shape for k in body):
            return name, num_classes
    return None


def _fit_hint(sd: Mapping[str, Tensor], own: Mapping[str, Tensor]) -> str | None:
    """Which variant the checkpoint fits, and whether only the variant or only the class count differs."""
    fits = _guess_variant(sd)
    if fits is None:
        return None
    name, num_classes = fits
    hint = f"the checkpoint fits {name} with num_classes={num_classes}"
    model = _guess_variant(own)
    if model is not None and model[0] != name and model[1] == num_classes:
        return f"{hint} (the model is {model[0]}, with the same class count): these weights fit {name}"
    if model is not None and model[0] == name and model[1] != num_classes:
        return f"{hint} (the model has {model[1]} classes)"
    return hint


def _guess_encoder(sd: Mapping[str, Tensor]) -> str | None:
    """Names of the segmentation variants whose encoder (every non-decoder key) this checkpoint holds."""
    fits = []
    for name in list_models():
        with torch.device("meta"):
            ref = get_model_constructor(name)(num_classes=1, aux_heads=False).state_dict()
        enc = {k: v.shape for k, v in ref.items() if not k.startswith(DECODER_PREFIXES)}
        if all(k in sd and sd[k].shape == shape for k, shape in enc.items()):
            fits.append(name)
    return f"the checkpoint fits the encoder of {', '.join(fits)}" if fits else None


# --------------------------------------------------------------------------------------------------
# the policy: which keys a load expects, tolerates and ignores


@dataclass
class _KeyPlan:
    """The keys of one load: those the model needs from the checkpoint, those it may lack (aux heads), the
    checkpoint keys deliberately not used, and the classifier keys kept at initialisation."""

    part: str
    expected: list[str]
    optional: list[str]
    ignored: list[str]
    reinitialized: list[str]


def _resolve_part(part: str, sd: Mapping[str, Tensor]) -> str:
    """``auto``: ``full`` when the checkpoint has a (non-auxiliary) decoder key, else ``encoder``."""
    if part == "auto":
        has_decoder = any(k.startswith(DECODER_PREFIXES) and not k.startswith(AUX_HEAD_PREFIXES) for k in sd)
        part = "full" if has_decoder else "encoder"
    if part not in ("full", "encoder", "compatible"):
        raise ValueError(f"part must be 'auto', 'full', 'encoder' or 'compatible', got {part!r}")
    return part


def _classifier_keys_to_reset(own: Mapping[str, Tensor], sd: Mapping[str, Tensor]) -> list[str]:
    """The classifier keys whose class count differs from the checkpoint's (fine-tuning to other classes)."""
    return [k for k in own if k.startswith(CLASSIFIER_PREFIXES) and k in sd and sd[k].shape[:1] != own[k].shape[:1]]


def _plan_keys(
    part: str,
    own: Mapping[str, Tensor],
    sd: Mapping[str, Tensor],
    reinitialized: list[str],
    model: nn.Module,
    source: str,
) -> _KeyPlan:
    if part == "compatible":
        if not any(k in own for k in sd):
            raise CheckpointMismatchError(
                f"checkpoint {source} shares no key with {type(model).__name__}", [], list(sd), []
            )
        return _KeyPlan(part, [k for k in own if k in sd], [], [k for k in sd if k not in own], reinitialized)
    if part == "encoder":
        expected = [k for k in own if not k.startswith(DECODER_PREFIXES)]
        ignored = [k for k in sd if k not in own or k.startswith(DECODER_PREFIXES)]
        return _KeyPlan(part, expected, [], ignored, reinitialized)
    expected = [k for k in own if not k.startswith(AUX_HEAD_PREFIXES) and k not in reinitialized]
    optional = [k for k in own if k.startswith(AUX_HEAD_PREFIXES)]
    # aux-head keys are ignored (not unexpected) when the model has no aux heads
    ignored = [k for k in sd if k.startswith(AUX_HEAD_PREFIXES) and k not in own]
    return _KeyPlan(part, expected, optional, ignored, reinitialized)


@dataclass
class _Mismatch:
    missing: list[str]
    unexpected: list[str]
    shapes: list[ShapeMismatch]

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.shapes)


def _find_mismatch(plan: _KeyPlan, own: Mapping[str, Tensor], sd: Mapping[str, Tensor]) -> _Mismatch:
    usable = [k for k in sd if k not in plan.ignored]
    missing = [k for k in plan.expected if k not in sd]
    unexpected = [k for k in usable if k not in own]
    if missing and plan.part == "encoder":
        # a foreign state dict: what it holds instead of the encoder is part of the diagnosis
        unexpected = [k for k in sd if k not in own]
    shapes = [(k, tuple(sd[k].shape), tuple(own[k].shape)) for k in usable if k in own and sd[k].shape != own[k].shape]
    return _Mismatch(missing, unexpected, shapes)


def _mismatch_message(
    mismatch: _Mismatch,
    plan: _KeyPlan,
    own: Mapping[str, Tensor],
    sd: Mapping[str, Tensor],
    header: str,
    suggest_reset: bool,
) -> str:
    """The lines of a :class:`CheckpointMismatchError`: what differs and which variant the weights fit."""
    lines = [header]
    if plan.part == "encoder":
        fitting = sum(1 for k in plan.expected if k in sd and sd[k].shape == own[k].shape)
        lines[0] += f" {fitting} of the model's {len(plan.expected)} encoder tensors match"
    if mismatch.missing:
        lines.append(f"  missing keys ({len(mismatch.missing)}): {_format_list(mismatch.missing)}")
    if mismatch.unexpected:
        lines.append(f"  unexpected keys ({len(mismatch.unexpected)}): {_format_list(mismatch.unexpected)}")
    if mismatch.shapes:
        shown = [f"{k}: checkpoint {list(a)} vs model {list(b)}" for k, a, b in mismatch.shapes]
        lines.append(f"  wrongly shaped keys ({len(mismatch.shapes)}): {_format_list(shown, 20)}")
        classifier = any(k.startswith(CLASSIFIER_PREFIXES) for k, _, _ in mismatch.shapes)
        if classifier and suggest_reset:
            lines.append(
                "  to fine-tune to another number of classes, pass reset_classifier=True "
                "(config: model.reset_classifier=true)"
            )
    guess = _fit_hint(sd, own) if plan.part == "full" else _guess_encoder(sd)
    if guess:
        lines.append(f"  {guess}")
    return "\n".join(lines)


def _load_planned(
    model: nn.Module, own: Mapping[str, Tensor], sd: Mapping[str, Tensor], plan: _KeyPlan, source: str
) -> LoadReport:
    """Load the planned keys (already checked) and report what stays at initialisation."""
    to_load = {k: v for k, v in sd.items() if k not in plan.ignored}
    result = model.load_state_dict(to_load, strict=False)
    assert not result.unexpected_keys, result.unexpected_keys
    left = [k for k in own if k not in to_load and k not in plan.reinitialized]
    kind = plan.part
    if plan.part == "full" and any(k in left for k in plan.optional):
        kind = "full-without-aux"
    report = LoadReport(
        source=source,
        loaded=list(to_load),
        left_at_init=left,
        ignored=plan.ignored,
        kind=kind,
        reinitialized=plan.reinitialized,
    )
    if left:
        warnings.warn(
            f"{source}: {kind} checkpoint; these modules stay at their initialisation: {', '.join(_summarise(left))}",
            stacklevel=3,
        )
    logger.info("%s", report)
    return report


def load_weights(
    model: nn.Module,
    weights: WeightsLike,
    *,
    part: LoadPart = "auto",
    reset_classifier: bool = False,
    source: str | None = None,
    fine_tuning: bool = True,
) -> LoadReport:
    """Load weights into ``model`` strictly after mapping the keys.

    Args:
        model: a DSNet (with or without auxiliary heads).
        weights: a checkpoint path or a mapping (see :mod:`dsnet.models.weights_reading`).
        part: ``"full"`` expects every non-auxiliary key; ``"encoder"`` expects everything except
            the decoder (``spp``, ``layer1_a``, ``up8``, ``lastlayer``) and the auxiliary heads, as
            in the authors' ImageNet checkpoints, and ignores checkpoint keys outside the model
            (their classifier); ``"auto"`` picks ``"encoder"`` when no decoder key is present;
            ``"compatible"`` (ablation variants, which change modules of the base network) loads
            every key the checkpoint and the model share, strictly (a shared key with another shape
            is an error), ignores the checkpoint's other keys and reports the model's keys left at
            initialisation.
        reset_classifier: fine-tuning to other classes: the classifier layers (the last 1x1
            convolution of the main and auxiliary heads) keep their fresh initialisation when the
            checkpoint's class count differs; the report lists them. Without it a class-count
            mismatch is an error.
        source: how to name the weights in messages (default: the path, or "<in-memory state dict>").
        fine_tuning: whether the caller can fine-tune (train): only then does a class-count mismatch
            suggest ``reset_classifier``; inference and export pass False.

    A checkpoint without auxiliary heads loads into a model with them (the heads keep their
    initialisation and a warning says so); auxiliary keys are ignored by a model built with
    ``aux_heads=False``. Anything else that does not match raises
    :class:`CheckpointMismatchError` listing missing, unexpected and wrongly shaped keys.
    """
    weights = resolve_weights(weights)
    source = source or describe_weights(weights)
    sd = read_state_dict(weights, source)
    own = model.state_dict()
    part = _resolve_part(part, sd)
    reinitialized = _classifier_keys_to_reset(own, sd) if reset_classifier else []
    sd = OrderedDict((k, v) for k, v in sd.items() if k not in reinitialized)
    plan = _plan_keys(part, own, sd, reinitialized, model, source)
    mismatch = _find_mismatch(plan, own, sd)
    if mismatch:
        header = f"checkpoint {source} does not fit {type(model).__name__} ({part} load):"
        message = _mismatch_message(mismatch, plan, own, sd, header, fine_tuning and not reset_classifier)
        raise CheckpointMismatchError(message, mismatch.missing, mismatch.unexpected, mismatch.shapes)
    return _load_planned(model, own, sd, plan, source)
